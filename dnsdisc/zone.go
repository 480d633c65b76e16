package dnsdisc

// The zone is a Snapshot compiled for one server: every name the server
// answers, lower-cased and fully qualified, mapped to prebuilt records, so
// that answering is one map lookup and copying a few pointers. Records are
// shared by every answer that contains them, which is safe because nothing
// in miekg/dns writes to an RR while packing (packRR writes RDLENGTH into
// the output buffer, not into the header), and every slice the zone holds
// is clipped (cap == len): an append by the answer path or by
// dns.Msg.Truncate (which appends the OPT record back) always copies
// instead of writing into the zone.

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// zone is immutable once compile returns.
type zone struct {
	apex   string // "orch."
	suffix string // ".orch.", to test membership with HasSuffix
	ttl    uint32
	names  map[string]*entry
	// soa is the zone's SOA alone, for the authority section of negative
	// answers (RFC 2308: its TTL and MINIMUM give the negative TTL).
	soa []dns.RR
}

// entry is one name and its records by type. A name with no records at
// all exists as an empty non-terminal (NODATA, not NXDOMAIN).
type entry struct {
	a, aaaa, srv, ptr, ns, soa []dns.RR
	// extra is the additional section for srv (the targets' addresses) or
	// ns (the name server's glue); a name never has both.
	extra []dns.RR
	// reverse marks names under in-addr.arpa or ip6.arpa, which the zone
	// does not own: only their PTR records are ours.
	reverse bool
}

// rrs returns the entry's records of type t and the additional records
// that go with them. ANY is handled by the caller.
func (e *entry) rrs(t uint16) (ans, extra []dns.RR) {
	switch t {
	case dns.TypeA:
		return e.a, nil
	case dns.TypeAAAA:
		return e.aaaa, nil
	case dns.TypeSRV:
		return e.srv, e.extra
	case dns.TypePTR:
		return e.ptr, nil
	case dns.TypeNS:
		return e.ns, e.extra
	case dns.TypeSOA:
		return e.soa, nil
	}
	return nil, nil
}

const (
	srvPriority = 0
	// srvWeight is the same for every replica: they are equals, and
	// RFC 2782 clients pick among equal weights at random.
	srvWeight = 10
	// SOA timers. Nothing transfers this zone (every agent builds its own
	// from the replicated state), so refresh, retry and expire only need
	// to be plausible.
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 86400
)

// Suffixes of the reverse trees.
const (
	arpa4 = "in-addr.arpa."
	arpa6 = "ip6.arpa."
)

// compile builds the zone of snap for domain (normalised, "orch."), with
// every record's TTL set to ttl and ns.<domain> at nsAddr if valid.
func compile(snap *Snapshot, domain string, ttl uint32, nsAddr netip.Addr) *zone {
	z := &zone{apex: domain, suffix: "." + domain, ttl: ttl, names: make(map[string]*entry)}
	hdr := func(name string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	addr := func(name string, a netip.Addr) dns.RR {
		if a.Is4() {
			return &dns.A{Hdr: hdr(name, dns.TypeA), A: a.AsSlice()}
		}
		return &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA), AAAA: a.AsSlice()}
	}
	addTo := func(e *entry, rr dns.RR) {
		if rr.Header().Rrtype == dns.TypeA {
			e.a = append(e.a, rr)
		} else {
			e.aaaa = append(e.aaaa, rr)
		}
	}
	ptr := func(a netip.Addr, target string) {
		rev, err := dns.ReverseAddr(a.String())
		if err != nil {
			return // NewSnapshot admits only addresses ReverseAddr takes
		}
		e := z.get(rev)
		for _, rr := range e.ptr {
			if rr.(*dns.PTR).Ptr == target {
				return
			}
		}
		e.ptr = append(e.ptr, &dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: target})
	}

	// Apex. The serial only has to change when the data does; nothing
	// compares serials across agents.
	ns := "ns." + domain
	apex := z.get(domain)
	soa := &dns.SOA{
		Hdr: hdr(domain, dns.TypeSOA), Ns: ns, Mbox: "hostmaster." + domain,
		Serial: uint32(time.Now().Unix()), Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: ttl,
	}
	apex.soa = []dns.RR{soa}
	z.soa = apex.soa
	apex.ns = []dns.RR{&dns.NS{Hdr: hdr(domain, dns.TypeNS), Ns: ns}}
	if nsAddr.IsValid() {
		glue := addr(ns, nsAddr.Unmap())
		addTo(z.get(ns), glue)
		apex.extra = []dns.RR{glue}
	}
	z.get("svc." + domain)
	z.get("node." + domain)

	for _, svc := range snap.services {
		svcName := svc.Name + ".svc." + domain
		se := z.get(svcName)
		slotRRs := make([]dns.RR, 0, len(svc.Replicas))
		for _, r := range svc.Replicas {
			slotName := strconv.Itoa(r.Slot) + "." + svcName
			slotRR := addr(slotName, r.Addr)
			slotRRs = append(slotRRs, slotRR)
			addTo(z.get(slotName), slotRR)
			addTo(se, addr(svcName, r.Addr))
			ptr(r.Addr, slotName)
		}
		for _, p := range svc.Ports {
			srvName := "_" + p.Name + "._" + p.Proto + "." + svcName
			pe := z.get(srvName)
			for _, r := range svc.Replicas {
				pe.srv = append(pe.srv, &dns.SRV{
					Hdr: hdr(srvName, dns.TypeSRV), Priority: srvPriority, Weight: srvWeight,
					Port: p.Port, Target: strconv.Itoa(r.Slot) + "." + svcName,
				})
			}
			pe.extra = slotRRs
		}
	}
	for _, n := range snap.nodes {
		nodeName := n.Name + ".node." + domain
		addTo(z.get(nodeName), addr(nodeName, n.Addr))
		ptr(n.Addr, nodeName)
	}

	for _, e := range z.names {
		e.a, e.aaaa, e.srv, e.ptr = slices.Clip(e.a), slices.Clip(e.aaaa), slices.Clip(e.srv), slices.Clip(e.ptr)
		e.ns, e.soa, e.extra = slices.Clip(e.ns), slices.Clip(e.soa), slices.Clip(e.extra)
	}
	return z
}

// get returns name's entry, creating it and the empty non-terminals
// between it and the zone apex (or, for reverse names, the top of the
// reverse tree) so that they answer NODATA rather than NXDOMAIN. A false
// NXDOMAIN for svc.orch would tell a resolver with RFC 8020 semantics that
// nothing exists below it.
func (z *zone) get(name string) *entry {
	if e, ok := z.names[name]; ok {
		return e
	}
	e := &entry{reverse: isReverse(name)}
	z.names[name] = e
	if name == z.apex {
		return e
	}
	_, parent, ok := strings.Cut(name, ".")
	if !ok || parent == "" || parent == arpa4 || parent == arpa6 || !e.reverse && !z.inZone(parent) {
		return e
	}
	z.get(parent)
	return e
}

// inZone reports whether the lower-cased name is the apex or below it.
func (z *zone) inZone(name string) bool {
	return name == z.apex || strings.HasSuffix(name, z.suffix)
}

// isReverse reports whether the lower-cased name is in a reverse tree.
func isReverse(name string) bool {
	return strings.HasSuffix(name, "."+arpa4) || strings.HasSuffix(name, "."+arpa6)
}

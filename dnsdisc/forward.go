package dnsdisc

// Forwarding. Names outside the zone, asked by a client in
// Config.ForwardFrom, go to the upstreams in order: each gets one UDP
// exchange bounded by Config.ForwardTimeout, repeated over TCP when the
// answer is truncated; SERVFAIL, REFUSED, a timeout or an answer to
// another question moves on to the next upstream. The first usable answer
// is cached (see cacheTTL) and returned with RA set; when none answers,
// the client gets SERVFAIL. The question is sent lower-cased with our own
// EDNS size (1232) and the client's DO and CD bits, so one cache entry
// serves every spelling of a name. Each exchange uses a fresh socket (a
// random source port), which with the random ID is the usual defence
// against spoofed answers.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errOnlySelf says every upstream is one of the server's own listeners.
var errOnlySelf = errors.New("every upstream is this server's own address")

// fromCache returns the reply to req built from the cache, or nil.
func (s *Server) fromCache(req *dns.Msg, name string) *dns.Msg {
	up, age, ok := s.cache.get(keyOf(req, name), time.Now())
	if !ok {
		return nil
	}
	s.stats.cacheHits.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	copyUpstream(m, up, age)
	return m
}

// forward asks the upstreams for req's question and returns the reply to
// send: their answer, or SERVFAIL.
func (s *Server) forward(ctx context.Context, req *dns.Msg) *dns.Msg {
	q := req.Question[0]
	k := keyOf(req, strings.ToLower(q.Name))
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	s.stats.forwarded.Add(1)
	up, err := s.exchange(ctx, k)
	if err != nil {
		s.stats.forwardFailures.Add(1)
		s.log.Debug("forward failed", "name", q.Name, "type", dns.TypeToString[q.Qtype], "err", err)
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	s.cache.put(k, up, time.Now())
	copyUpstream(m, up, 0)
	return m
}

// exchange returns the first usable answer of the upstreams to k. The
// answer has no OPT record and its sections are clipped, so the caller
// may share it (it is cached) and append to copies of its slices.
func (s *Server) exchange(ctx context.Context, k cacheKey) (*dns.Msg, error) {
	query := new(dns.Msg)
	query.Id = dns.Id()
	query.RecursionDesired = true
	query.CheckingDisabled = k.cd
	query.Question = []dns.Question{{Name: k.name, Qtype: k.qtype, Qclass: k.qclass}}
	query.SetEdns0(maxUDPSize, k.do)

	var errs []error
	for _, up := range s.cfg.Upstreams {
		if s.isOwnAddr(up) {
			continue // forwarding to ourselves would loop until timeout
		}
		r, err := s.exchangeOne(ctx, query, up)
		if err != nil {
			errs = append(errs, fmt.Errorf("ask upstream %s: %w", up, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		r.Extra = slices.DeleteFunc(slices.Clone(r.Extra), func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
		r.Answer, r.Ns, r.Extra = slices.Clip(r.Answer), slices.Clip(r.Ns), slices.Clip(r.Extra)
		return r, nil
	}
	if len(errs) == 0 {
		return nil, errOnlySelf
	}
	return nil, errors.Join(errs...)
}

// exchangeOne asks one upstream, over UDP and then TCP if the answer was
// truncated, and checks that the answer is usable.
func (s *Server) exchangeOne(ctx context.Context, query *dns.Msg, up string) (*dns.Msg, error) {
	r, _, err := s.udpClient.ExchangeContext(ctx, query, up)
	if err == nil && r.Truncated {
		r, _, err = s.tcpClient.ExchangeContext(ctx, query, up)
	}
	if err != nil {
		return nil, err
	}
	q := query.Question[0]
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, q.Name) ||
		r.Question[0].Qtype != q.Qtype || r.Question[0].Qclass != q.Qclass {
		return nil, errors.New("answer is for another question")
	}
	switch r.Rcode {
	case dns.RcodeServerFailure, dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented:
		return nil, fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
	}
	if r.Truncated {
		return nil, errors.New("answer truncated over TCP")
	}
	return r, nil
}

// copyUpstream puts up's rcode and records into m. Records are shared
// when age is 0; otherwise they are copied with their TTLs reduced by age
// (seconds spent in the cache), so clients do not cache them longer than
// the upstream allowed.
func copyUpstream(m, up *dns.Msg, age uint32) {
	m.Rcode = up.Rcode
	m.AuthenticatedData = up.AuthenticatedData
	m.Answer, m.Ns, m.Extra = aged(up.Answer, age), aged(up.Ns, age), aged(up.Extra, age)
}

func aged(rrs []dns.RR, age uint32) []dns.RR {
	if age == 0 || len(rrs) == 0 {
		return rrs
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		h := c.Header()
		h.Ttl -= min(h.Ttl, age)
		out[i] = c
	}
	return out
}

// isOwnAddr reports whether the upstream up is one of the server's
// listeners (or reaches one: a wildcard listener answers on loopback).
func (s *Server) isOwnAddr(up string) bool {
	ap, err := netip.ParseAddrPort(up)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		b := l.addr
		if b == ap || b.Port() == ap.Port() && b.Addr().IsUnspecified() && ap.Addr().IsLoopback() {
			return true
		}
	}
	return false
}

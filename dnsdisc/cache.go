package dnsdisc

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cacheKey identifies a forwarded question. The DO and CD bits are part of
// it: an answer fetched without DNSSEC records (or with validation) must
// not be served to a client that asked otherwise.
type cacheKey struct {
	name          string // lower-cased
	qtype, qclass uint16
	do, cd        bool
}

// keyOf returns the cache key of req, which has exactly one question.
func keyOf(req *dns.Msg, name string) cacheKey {
	q := req.Question[0]
	k := cacheKey{name: name, qtype: q.Qtype, qclass: q.Qclass, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		k.do = opt.Do()
	}
	return k
}

// cache is a small LRU of upstream answers, each kept until the smallest
// TTL in it runs out. Entries are never modified once stored; readers copy
// the records they serve. It is only touched on the forwarding path, so a
// mutex is cheap enough.
type cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // of *cacheEntry, most recently used first
	m   map[cacheKey]*list.Element
}

type cacheEntry struct {
	key     cacheKey
	msg     *dns.Msg // without OPT; shared, read-only
	stored  time.Time
	expires time.Time
}

// newCache returns a cache of max entries, or nil (no caching) if max < 1.
func newCache(max int) *cache {
	if max < 1 {
		return nil
	}
	return &cache{max: max, ll: list.New(), m: make(map[cacheKey]*list.Element)}
}

// get returns the answer cached for k and its age in whole seconds, or
// false if there is none or it has expired.
func (c *cache) get(k cacheKey, now time.Time) (*dns.Msg, uint32, bool) {
	if c == nil {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return nil, 0, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.m, k)
		return nil, 0, false
	}
	c.ll.MoveToFront(el)
	return e.msg, uint32(now.Sub(e.stored) / time.Second), true
}

// put stores m for k if it is cacheable (see cacheTTL), evicting the least
// recently used entry when full. m must not be modified afterwards.
func (c *cache) put(k cacheKey, m *dns.Msg, now time.Time) {
	if c == nil {
		return
	}
	ttl, ok := cacheTTL(m)
	if !ok {
		return
	}
	e := &cacheEntry{key: k, msg: m, stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	c.m[k] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

// len returns the number of entries, expired ones included.
func (c *cache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// cacheTTL returns how long m may be cached: positive answers for the
// smallest TTL of their answer and authority records (at most
// maxCacheTTL); NXDOMAIN and NODATA for their SOA's negative TTL, the
// smaller of its TTL and MINIMUM (RFC 2308 §5; at most maxNegativeTTL).
// Other rcodes, truncated answers, negative answers without an SOA and
// TTLs of 0 are not cached.
func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	if m.Truncated {
		return 0, false
	}
	var ttl uint32
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		ttl = maxCacheTTL
		for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
			for _, rr := range sec {
				ttl = min(ttl, rr.Header().Ttl)
			}
		}
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		soa := findSOA(m.Ns)
		if soa == nil {
			return 0, false
		}
		ttl = min(soa.Hdr.Ttl, soa.Minttl, maxNegativeTTL)
	default:
		return 0, false
	}
	if ttl == 0 {
		return 0, false
	}
	return time.Duration(ttl) * time.Second, true
}

func findSOA(rrs []dns.RR) *dns.SOA {
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa
		}
	}
	return nil
}

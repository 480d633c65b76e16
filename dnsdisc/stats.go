package dnsdisc

import (
	"sync/atomic"

	"github.com/miekg/dns"
)

// Stats are the server's counters since New. Every field only grows.
type Stats struct {
	// Queries counts well-formed queries by type: "A", "AAAA", "SRV",
	// "PTR", "SOA", "NS", "ANY" and "other".
	Queries map[string]uint64
	// Responses counts responses sent by rcode: "NOERROR", "NXDOMAIN",
	// "REFUSED", "SERVFAIL", "FORMERR", "NOTIMP" and "other".
	Responses map[string]uint64
	// Forwarded counts queries sent to an upstream (cache misses).
	Forwarded uint64
	// CacheHits counts queries answered from the forward cache.
	CacheHits uint64
	// ForwardFailures counts forwarded queries no upstream answered; the
	// client got SERVFAIL.
	ForwardFailures uint64
	// Truncated counts UDP answers sent with TC set.
	Truncated uint64
	// Malformed counts packets that were not a query the server could
	// parse: unparseable, a response, or not exactly one question.
	Malformed uint64
	// Dropped counts queries and TCP connections refused for lack of
	// capacity (too many forwards in flight or connections open).
	Dropped uint64
}

// Names of the counted query types and rcodes, in index order.
var (
	qtypeNames = [...]string{"A", "AAAA", "SRV", "PTR", "SOA", "NS", "ANY", "other"}
	rcodeNames = [...]string{"NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", "FORMERR", "NOTIMP", "other"}
)

// counters are the live counters. Plain atomics: a handful of adds per
// query, no lock, no map on the query path.
type counters struct {
	queries                               [len(qtypeNames)]atomic.Uint64
	responses                             [len(rcodeNames)]atomic.Uint64
	forwarded, cacheHits, forwardFailures atomic.Uint64
	truncated, malformed, dropped         atomic.Uint64
}

func (c *counters) query(t uint16) {
	i := len(qtypeNames) - 1
	switch t {
	case dns.TypeA:
		i = 0
	case dns.TypeAAAA:
		i = 1
	case dns.TypeSRV:
		i = 2
	case dns.TypePTR:
		i = 3
	case dns.TypeSOA:
		i = 4
	case dns.TypeNS:
		i = 5
	case dns.TypeANY:
		i = 6
	}
	c.queries[i].Add(1)
}

func (c *counters) response(rcode int) {
	i := len(rcodeNames) - 1
	switch rcode {
	case dns.RcodeSuccess:
		i = 0
	case dns.RcodeNameError:
		i = 1
	case dns.RcodeRefused:
		i = 2
	case dns.RcodeServerFailure:
		i = 3
	case dns.RcodeFormatError:
		i = 4
	case dns.RcodeNotImplemented:
		i = 5
	}
	c.responses[i].Add(1)
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Queries:         make(map[string]uint64, len(qtypeNames)),
		Responses:       make(map[string]uint64, len(rcodeNames)),
		Forwarded:       c.forwarded.Load(),
		CacheHits:       c.cacheHits.Load(),
		ForwardFailures: c.forwardFailures.Load(),
		Truncated:       c.truncated.Load(),
		Malformed:       c.malformed.Load(),
		Dropped:         c.dropped.Load(),
	}
	for i, n := range qtypeNames {
		st.Queries[n] = c.queries[i].Load()
	}
	for i, n := range rcodeNames {
		st.Responses[n] = c.responses[i].Load()
	}
	return st
}

// Stats returns the counters. It is cheap (a few dozen atomic loads) and
// safe to call at any time.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

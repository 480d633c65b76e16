// Package dnsdisc is orch's service discovery over DNS: every agent
// answers, for its own replicas and for the host, the names of the
// cluster's services and nodes, and forwards other names to the host's
// resolvers for the clients it trusts.
//
// The agent builds a [Snapshot] from its replicated state (the running,
// healthy replicas of each service, the nodes) and passes it to
// [Server.Update] on every change; the server compiles it into prebuilt
// records and swaps them in atomically. dnsdisc knows nothing of gossip,
// placement or containers, and imports only the standard library,
// github.com/miekg/dns (its one home in orch) and orch's internal/...;
// never agent/..., cmd/... or the other leaves (internal/deps enforces
// this).
//
// # Names
//
// With domain D (default "orch"; every name case-insensitive):
//
//	<service>.svc.D                     A/AAAA of the service's replicas, rotated per answer
//	<slot>.<service>.svc.D              A/AAAA of the replica in that slot
//	_<port>._<proto>.<service>.svc.D    SRV per replica (priority 0, weight 10), target
//	                                    <slot>.<service>.svc.D, addresses in the additional section
//	<node>.node.D                       A/AAAA of the node
//	D                                   SOA and NS (ns.D; its address if Config.NSAddr is set)
//	reverse names of those addresses    PTR to <slot>.<service>.svc.D or <node>.node.D
//
// A name that exists without records of the asked type (an AAAA query for
// an IPv4 service; svc.D, node.D, or a service asked for TXT; a service
// with no announceable replica) gets NOERROR with no answer (NODATA); a
// name that does not exist NXDOMAIN; both with the SOA, whose TTL and
// minimum are the zone's TTL, for negative caching. A service with no
// running replica keeps existing: a client learns "no address now", not
// "no such service", and a negative cache of NXDOMAIN cannot outlive the
// replica's return. ANY gets one HINFO "RFC8482" record (RFC 8482), so
// the server cannot be used to amplify.
//
// # Clients and forwarding
//
// Names in D are answered for every client: the agent chooses where the
// server listens (the host's loopback, the node's bridge gateway for its
// replicas), and the data is the cluster's own. Every other name is
// forwarded to Config.Upstreams, with a small cache, only for clients in
// Config.ForwardFrom; anyone else gets REFUSED, so the server is never an
// open resolver. Reverse names of addresses the zone does not know are
// forwarded for those clients too, and get NXDOMAIN for the others.
//
// # Sizes
//
// EDNS(0) is honoured: an answer to a query with an OPT record has one,
// advertising 1232 bytes (the DNS Flag Day 2020 size, unfragmented on any
// path). UDP answers are cut to the client's size (512 without EDNS) with
// TC set, and the client retries over TCP, where answers are whole.
//
// # Concurrency
//
// Queries read the current zone through an atomic pointer and take no
// lock; Update, Listen, Unlisten, Close and Stats are safe to call from
// any goroutine at any time. The server's goroutines (UDP readers, TCP
// accept loops and connections, forwards) belong to the server: Unlisten
// and Close wait for them.
package dnsdisc

// Package gossip is orch's cluster membership: the gossip port, the cluster
// secrets and join handshake, and a serf instance that detects joins,
// departures and failures.
//
// Every member holds the same secrets (cluster identity, join secret, gossip
// keyring), so any member can admit a node that shows the join token; there
// is no leader. Gossip is always encrypted (AES-GCM keyring) and labelled
// with the cluster ID, so two clusters on one network ignore each other.
//
// The gossip port multiplexes memberlist's UDP and TCP traffic with orch's
// own TCP streams (see transport.go).
//
// gossip imports serf and memberlist and nothing else of orch but internal
// helpers; it knows nothing of services, containers or networks. Member
// events are handed to a callback that must not block.
package gossip

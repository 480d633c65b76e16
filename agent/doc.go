// Package agent is the composition root of an orch node: it owns the
// gossip membership, the event bus and the local API, and is the only
// package that knows them all.
//
// Data flows one way: gossip reports member events, the agent publishes
// them on its bus, and API clients read snapshots (members) or subscribe
// to the bus (events). The agent never blocks on a consumer: the bus drops
// events for a slow subscriber and tells it so.
//
// agent may import every orch package except cmd/...; no leaf imports it.
package agent

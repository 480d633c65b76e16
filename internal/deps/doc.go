// Package deps holds no code. Its test enforces who may import whom, the
// table in section 1 ("Layout and boundaries") of the house style,
// STYLE.md:
//
//   - the leaves (gossip, netplane, dnsdisc, healthcheck) never import each
//     other, agent/... or cmd/...;
//   - agent/runtime imports neither the leaves nor agent;
//   - agent/api imports no orch package outside internal/...;
//   - nothing outside cmd/ imports cmd/...;
//   - each third-party library has one home: serf and memberlist in gossip,
//     netlink in netplane, miekg/dns in dnsdisc, containerd in agent/runtime;
//   - in cmd/orch only agent.go imports agent; the other verbs are clients
//     of agent/api.
//
// The rules are written for packages that do not exist yet, too, and apply
// as soon as they appear. The test runs "go list -deps" from the repository
// root, so it needs the go command; it imports nothing but the standard
// library and internal/testenv.
package deps

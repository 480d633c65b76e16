// Package e2e holds end-to-end tests: real orch agents, built from this
// tree, on test hosts made of network namespaces (internal/lab), driven
// through the orch CLI and the agent API exactly as a user would.
//
// The tests need root and skip with a reason elsewhere; CI runs them.
package e2e

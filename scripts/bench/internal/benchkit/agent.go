package benchkit

import (
	"net/netip"
	"os/exec"
	"strings"
)

// GossipPort is the port the benchmarks' agents bind gossip to, on their
// lab host's address.
const GossipPort = "7946"

// Agent is an `orch agent` command line, as the benchmarks run it.
type Agent struct {
	// Bin is the orch binary.
	Bin string
	// Name is the node name (--name).
	Name string
	// Addr is the address gossip binds to (--bind Addr:7946).
	Addr netip.Addr
	// DataDir and Socket are --data-dir and the API's --socket.
	DataDir, Socket string
	// Profile is the failure-detection profile (--profile): lan or fast.
	Profile string
	// Extra are more flags, after the ones above.
	Extra []string
	// Join, if valid, is the founder's address to join with Token
	// (--token, --join); a restarted agent rejoins from its data dir
	// without them.
	Join  netip.Addr
	Token string
}

// Argv is the command line.
func (a Agent) Argv() []string {
	argv := []string{a.Bin, "agent",
		"--name", a.Name,
		"--bind", a.Addr.String() + ":" + GossipPort,
		"--data-dir", a.DataDir,
		"--socket", a.Socket,
		"--profile", a.Profile,
	}
	argv = append(argv, a.Extra...)
	if a.Join.IsValid() {
		argv = append(argv, "--token", a.Token, "--join", a.Join.String())
	}
	return argv
}

// NoContainerdFlags returns the flags that make an agent of the orch
// binary bin a node without workloads: "--containerd none" where the
// binary has that flag, so that agents do not retry an absent containerd
// (and log a warning every reconcile pass) during the measurements;
// nothing for older binaries, which --rev can build.
func NoContainerdFlags(bin string) []string {
	out, err := exec.Command(bin, "agent", "--help").CombinedOutput()
	if err == nil && strings.Contains(string(out), "--containerd") {
		return []string{"--containerd", "none"}
	}
	return nil
}

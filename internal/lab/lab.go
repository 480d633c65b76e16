package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/testenv"
)

const (
	// netnsDir is where `ip netns add` bind-mounts named namespaces.
	netnsDir = "/run/netns"

	// scriptTimeout bounds one run of scripts/lab; up and down of a few
	// hosts take well under a second, down waits up to ~5s for processes.
	scriptTimeout = time.Minute

	// maxHosts matches the limit scripts/lab enforces.
	maxHosts = 999
)

// prefixRE is what scripts/lab accepts as --prefix.
var prefixRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,19}$`)

// Config describes a lab. The zero value is a valid three-host lab.
type Config struct {
	// Hosts is the number of hosts, named h1..hN. Zero means 3.
	Hosts int

	// Prefix is prepended to every namespace name: the switch is
	// Prefix+"sw", hosts are Prefix+"h1" and so on. Empty means a fresh
	// prefix of the form "o" + 4 hex digits + "-" for each Lab, which is
	// what tests should use. An explicit prefix must not overlap (be a
	// prefix of, or start with) the prefix of another live lab, and any
	// unowned namespaces starting with it are torn down.
	Prefix string

	// Subnet is the IPv4 lab network; host K gets the K-th address in it
	// (10.47.0.1 for h1 by default). Labs are separate L2 domains, so
	// concurrent labs may use the same subnet. Zero means 10.47.0.0/24.
	Subnet netip.Prefix

	// MTU of every veth, in bytes. Zero means the MTU of the root
	// namespace's default-route interface (1500 without a default route),
	// as scripts/lab chooses it.
	MTU int

	// StopGrace is how long a process started with [Host.Start] gets
	// between SIGTERM and SIGKILL when it is stopped at cleanup.
	// Zero means 3s.
	StopGrace time.Duration
}

// DefaultSubnet is the lab subnet used when [Config.Subnet] is zero.
var DefaultSubnet = netip.MustParsePrefix("10.47.0.0/24")

// withDefaults fills zero fields and reports every invalid one.
func (c Config) withDefaults() (Config, error) {
	if c.Hosts == 0 {
		c.Hosts = 3
	}
	if !c.Subnet.IsValid() {
		c.Subnet = DefaultSubnet
	}
	if c.StopGrace == 0 {
		c.StopGrace = 3 * time.Second
	}
	var errs []error
	if c.Hosts < 0 || c.Hosts > maxHosts {
		errs = append(errs, fmt.Errorf("hosts %d: want 1..%d", c.Hosts, maxHosts))
	}
	if c.Prefix != "" && !prefixRE.MatchString(c.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q: want 1-20 of [A-Za-z0-9_.-], starting with a letter or digit", c.Prefix))
	}
	if !c.Subnet.Addr().Is4() || c.Subnet.Bits() < 8 || c.Subnet.Bits() > 30 {
		errs = append(errs, fmt.Errorf("subnet %s: want IPv4 with a prefix length of 8..30", c.Subnet))
	} else if size := 1 << (32 - c.Subnet.Bits()); c.Hosts > size-2 {
		errs = append(errs, fmt.Errorf("subnet %s holds at most %d hosts, not %d", c.Subnet, size-2, c.Hosts))
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		errs = append(errs, fmt.Errorf("mtu %d: want 68..65535", c.MTU))
	}
	if c.StopGrace < 0 {
		errs = append(errs, fmt.Errorf("stop grace %v: must not be negative", c.StopGrace))
	}
	c.Subnet = c.Subnet.Masked()
	return c, errors.Join(errs...)
}

// Lab is a running lab: a switch namespace and [Config.Hosts] host
// namespaces. It is torn down by the cleanup [New] registers, or earlier by
// [Lab.Close].
type Lab struct {
	cfg    Config
	prefix string
	script string // absolute path of scripts/lab
	hosts  []*Host

	mu    sync.Mutex
	procs []*Process // every process started with Host.Start

	closeOnce sync.Once
	closeErr  error
}

// Host is one machine of the lab: a network namespace whose eth0 is plugged
// into the lab switch.
type Host struct {
	// Name is the host's name within the lab: "h1", "h2", ….
	Name string
	// NetNS is the full namespace name, under /run/netns.
	NetNS string
	// Addr is the host's address on eth0.
	Addr netip.Addr
	// Dir is a directory of the host's own, under the test's t.TempDir(),
	// for data directories, sockets and process logs.
	Dir string

	lab  *Lab
	nlog atomic.Int64 // numbers log files per host
}

// New builds a lab for the test, after removing labs left behind by
// crashed test processes, and registers a cleanup that tears it down. It
// skips the test unless it runs as root with ip and nsenter on PATH, and
// fails it if the lab cannot be built.
func New(t testing.TB, cfg Config) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "nsenter")
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatalf("lab config: %v", err)
	}
	l := &Lab{
		cfg:    cfg,
		script: filepath.Join(testenv.RepoRoot(t), "scripts", "lab"),
	}
	// Before the cleanup below: t.TempDir's own cleanup then runs after
	// ours, so the logs still exist when their tails are printed.
	base := t.TempDir()

	prefix, err := claimPrefix(t, l.script, cfg.Prefix)
	if err != nil {
		t.Fatalf("claim a lab prefix: %v", err)
	}
	l.prefix = prefix
	t.Cleanup(func() {
		l.logTails(t)
		if err := l.Close(); err != nil {
			t.Errorf("tear down lab %s: %v", l.prefix, err)
		}
	})

	args := []string{"up", "--prefix", prefix, "--hosts", strconv.Itoa(cfg.Hosts), "--subnet", cfg.Subnet.String()}
	if cfg.MTU != 0 {
		args = append(args, "--mtu", strconv.Itoa(cfg.MTU))
	}
	if _, err := l.run(args...); err != nil {
		t.Fatalf("build lab: %v", err)
	}

	addr := cfg.Subnet.Addr()
	for k := 1; k <= cfg.Hosts; k++ {
		addr = addr.Next()
		h := &Host{
			Name:  "h" + strconv.Itoa(k),
			NetNS: prefix + "h" + strconv.Itoa(k),
			Addr:  addr,
			Dir:   filepath.Join(base, "h"+strconv.Itoa(k)),
			lab:   l,
		}
		if err := os.Mkdir(h.Dir, 0o755); err != nil {
			t.Fatalf("create host directory: %v", err)
		}
		l.hosts = append(l.hosts, h)
	}
	return l
}

// Prefix returns the namespace name prefix of the lab.
func (l *Lab) Prefix() string { return l.prefix }

// Subnet returns the lab subnet.
func (l *Lab) Subnet() netip.Prefix { return l.cfg.Subnet }

// Hosts returns the hosts h1..hN in order. The slice is the caller's.
func (l *Lab) Hosts() []*Host {
	return append([]*Host(nil), l.hosts...)
}

// Host returns host i, counting from 1 like the names (Host(1) is "h1").
// It panics if there is no such host.
func (l *Lab) Host(i int) *Host {
	if i < 1 || i > len(l.hosts) {
		panic(fmt.Sprintf("lab: Host(%d) of a lab with hosts 1..%d", i, len(l.hosts)))
	}
	return l.hosts[i-1]
}

// Isolate cuts h off the switch: its switch port leaves the bridge, so
// every frame to or from h is dropped while both ends keep carrier, as in
// a network partition. It fails the test on error.
func (l *Lab) Isolate(t testing.TB, h *Host) {
	t.Helper()
	if _, err := l.run("isolate", "--prefix", l.prefix, h.Name); err != nil {
		t.Fatalf("isolate %s: %v", h.Name, err)
	}
}

// Heal plugs h back into the switch after [Lab.Isolate]. It fails the
// test on error.
func (l *Lab) Heal(t testing.TB, h *Host) {
	t.Helper()
	if _, err := l.run("heal", "--prefix", l.prefix, h.Name); err != nil {
		t.Fatalf("heal %s: %v", h.Name, err)
	}
}

// Close stops every process started with [Host.Start], runs
// `scripts/lab down` (which kills whatever else runs inside the lab and
// deletes its namespaces), and releases the prefix. It is idempotent; the
// cleanup registered by [New] calls it, so tests call it only to check
// what teardown leaves behind.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		procs := append([]*Process(nil), l.procs...)
		l.mu.Unlock()
		var wg sync.WaitGroup
		errs := make([]error, len(procs))
		for i, p := range procs {
			wg.Go(func() { errs[i] = p.stop(l.cfg.StopGrace) })
		}
		wg.Wait()
		if _, err := l.run("down", "--prefix", l.prefix); err != nil {
			errs = append(errs, err)
		} else if err := releasePrefix(l.prefix); err != nil {
			// Only after down succeeded: a marker with a dead owner is
			// what lets a later New sweep a half-removed lab.
			errs = append(errs, err)
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// track records a started process so that Close stops it.
func (l *Lab) track(p *Process) {
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
}

// logTails prints the log tail of every process not yet printed, if the
// test failed.
func (l *Lab) logTails(t testing.TB) {
	if !t.Failed() {
		return
	}
	l.mu.Lock()
	procs := append([]*Process(nil), l.procs...)
	l.mu.Unlock()
	for _, p := range procs {
		p.logTail(t)
	}
}

// run runs scripts/lab with args and returns its combined output.
func (l *Lab) run(args ...string) ([]byte, error) {
	return runScript(l.script, args...)
}

func runScript(script string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	// Through bash, so a checkout that lost the executable bit still works.
	out, err := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("scripts/lab %v: %w\n%s", args, err, out)
	}
	return out, nil
}

// netnsPath is the file nsenter --net= takes for a named namespace.
func netnsPath(name string) string {
	return filepath.Join(netnsDir, name)
}

// Command returns a command that runs name with args inside the host's
// network namespace, via `nsenter --net=/run/netns/NETNS -- name args...`.
// nsenter execs name in place, so the command's PID is name's own and ctx
// cancellation kills name itself. Everything but the network (filesystem,
// working directory, environment, cgroups) is the caller's; /sys/class/net
// still shows the root namespace, so inspect interfaces with ip.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{"--net=" + netnsPath(h.NetNS), "--", name}, args...)
	return exec.CommandContext(ctx, "nsenter", argv...)
}

// String returns the host's name.
func (h *Host) String() string { return h.Name }

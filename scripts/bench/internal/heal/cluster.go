package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

const (
	// service is the benchmark's service; port its HTTP port.
	service = "web"
	port    = 8080
	// replicas of the service.
	replicas = 3
	// apiTimeout bounds one API call of the harness.
	apiTimeout = 10 * time.Second
	// ctdLabel marks the agents that run a containerd when not all do.
	ctdLabel = "ctd"
)

// host is one lab host: its containerd and its agent.
type host struct {
	k       int
	name    string // hK, the agent's name
	addr    netip.Addr
	netns   string // /run/netns/PREFIXhK
	dir     string // work/run/hK
	runsCtd bool

	ctdConfig, ctdSock string
	dataDir, apiSock   string
	client             *api.Client
	dns                *dnsProber // used by one goroutine at a time

	ctd, agent *benchkit.Daemon
}

// cluster is one lab of hosts with their containerds and agents.
type cluster struct {
	o       *options
	profile string
	tag     string // names this cluster's log files: PROFILE-nN
	lab     *benchkit.Lab
	hosts   []*host // hosts[k-1] is hK
	token   string
	events  *eventLog

	stopWatch context.CancelFunc
	watchers  sync.WaitGroup
	niceAdj   int
	formedAt  time.Time
	mem       memSample // after the service was deployed
}

func (c *cluster) host(k int) *host { return c.hosts[k-1] }

// logPath is a log file of this cluster.
func (c *cluster) logPath(name string) string {
	return filepath.Join(c.o.work, "logs", c.tag+"-"+name)
}

// formCluster builds a lab of n hosts, starts a containerd and an agent on
// each (containerd only on the first o.ctdHosts when that is fewer), joins
// them, imports the image everywhere and deploys the service; it returns
// once the service runs 3 replicas on 3 hosts that every host's DNS
// announces and that answer HTTP.
func formCluster(ctx context.Context, o *options, profile string, n int, tag string) (_ *cluster, err error) {
	c := &cluster{o: o, profile: profile, tag: tag, niceAdj: -benchkit.HarnessNice(), stopWatch: func() {},
		lab: &benchkit.Lab{Script: o.labScript, Prefix: o.prefix, Subnet: o.subnet, PinNeighbours: true}}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if err := reap(o.work); err != nil {
		return nil, fmt.Errorf("removing an earlier cluster's leftovers: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(o.work, "logs"), 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := c.lab.Up(ctx, n); err != nil {
		return nil, err
	}
	ctdHosts := n
	if o.ctdHosts > 0 && o.ctdHosts < n {
		ctdHosts = o.ctdHosts
	}
	for k := 1; k <= n; k++ {
		dir := filepath.Join(o.work, "run", "h"+strconv.Itoa(k))
		h := &host{k: k, name: "h" + strconv.Itoa(k), addr: c.lab.Addr(k), netns: c.lab.NetNS(k), dir: dir,
			runsCtd: k <= ctdHosts, dataDir: filepath.Join(dir, "data"), apiSock: filepath.Join(dir, "orch.sock")}
		h.client = api.NewClient(h.apiSock)
		h.dns = newDNSProber(h.netns, "127.0.0.1:8600")
		if err := os.MkdirAll(h.dataDir, 0o700); err != nil {
			return nil, err
		}
		c.hosts = append(c.hosts, h)
	}

	// containerds: all started, then each waited for.
	for _, h := range c.hosts {
		if !h.runsCtd {
			continue
		}
		if h.ctdConfig, h.ctdSock, err = benchkit.WriteContainerdConfig(filepath.Join(h.dir, "ctd")); err != nil {
			return nil, err
		}
		if err := c.startContainerd(h); err != nil {
			return nil, err
		}
	}
	for _, h := range c.hosts {
		if h.runsCtd {
			if err := benchkit.WaitContainerd(ctx, h.ctdSock, h.ctd, 60*time.Second); err != nil {
				return nil, fmt.Errorf("%s: %w", h.name, err)
			}
		}
	}
	logf("%s: lab and %d containerds up in %s", tag, ctdHosts, time.Since(start).Round(time.Millisecond))

	// agents: h1 founds, the others join it with the token.
	if err := c.startAgent(c.host(1), false); err != nil {
		return nil, err
	}
	if err := c.poll(ctx, 60*time.Second, 20*time.Millisecond, func(ctx context.Context) error {
		tok, err := c.host(1).client.Token(ctx)
		c.token = tok
		return err
	}); err != nil {
		return nil, fmt.Errorf("wait for h1: %w", err)
	}
	for _, h := range c.hosts[1:] {
		if err := benchkit.Sleep(ctx, o.stagger); err != nil {
			return nil, err
		}
		if err := c.startAgent(h, true); err != nil {
			return nil, err
		}
	}
	if err := c.poll(ctx, 2*time.Minute, 250*time.Millisecond, c.allAlive); err != nil {
		c.dumpStuck(ctx)
		return nil, fmt.Errorf("wait for %d agents to list each other alive: %w", n, err)
	}
	c.formedAt = time.Now()
	logf("%s: %d agents (%s) formed in %s", tag, n, profile, c.formedAt.Sub(start).Round(time.Millisecond))

	var wctx context.Context
	wctx, c.stopWatch = context.WithCancel(context.WithoutCancel(ctx))
	if c.events, err = newEventLog(c.logPath("events.jsonl")); err != nil {
		return nil, err
	}
	for _, h := range c.hosts {
		c.watchers.Add(1)
		go func() {
			defer c.watchers.Done()
			c.events.watch(wctx, h.k, h.client)
		}()
	}

	for _, h := range c.hosts {
		if !h.runsCtd {
			continue
		}
		if out, err := c.orch(ctx, h, "image", "import", o.image); err != nil {
			return nil, fmt.Errorf("%s: orch image import: %v: %s", h.name, err, out)
		}
	}
	args := []string{"service", "create", "--name", service, "--replicas", strconv.Itoa(replicas),
		"--port", "http:" + strconv.Itoa(port) + "/tcp",
		"--health-http", "/:" + strconv.Itoa(port), "--health-interval", "1s", "--health-timeout", "1s", "--health-retries", "2"}
	if ctdHosts < n {
		args = append(args, "--constraint", "node.label."+ctdLabel+"==yes")
	}
	args = append(args, o.imageName, "httpd", "-f", "-p", strconv.Itoa(port), "-h", "/www")
	t0 := time.Now()
	if out, err := c.orch(ctx, c.host(1), args...); err != nil {
		return nil, fmt.Errorf("orch service create: %v: %s", err, out)
	}
	if err := c.poll(ctx, 3*time.Minute, 200*time.Millisecond, c.deployed); err != nil {
		c.dumpStuck(ctx)
		return nil, fmt.Errorf("deploy %s: %w", service, err)
	}
	logf("%s: %s deployed (3 replicas on 3 hosts, in every host's DNS, answering HTTP) in %s", tag, service, time.Since(t0).Round(time.Millisecond))
	if err := benchkit.Sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	c.mem = c.memory()
	logf("%s: memory %s", tag, c.mem)
	return c, nil
}

func (c *cluster) startContainerd(h *host) error {
	d, err := c.startDaemon(h, "containerd", "containerd", "--config", h.ctdConfig)
	h.ctd = d
	return err
}

// startDaemon starts argv in h's network namespace at the default priority
// (see [benchkit.HarnessNice]), its output appended to the cluster's log
// PROFILE-nN-hK-WHAT.log: a restarted daemon continues its log.
func (c *cluster) startDaemon(h *host, what string, argv ...string) (*benchkit.Daemon, error) {
	return benchkit.StartDaemon(benchkit.DaemonOptions{
		Name:      h.name + " " + what,
		Log:       c.logPath(h.name + "-" + what + ".log"),
		AppendLog: true,
		NetNS:     h.netns,
		Nice:      c.niceAdj,
	}, argv...)
}

// startAgent starts h's agent; join adds the token and h1's address (a
// restarted agent gets neither: it rejoins from its data dir).
func (c *cluster) startAgent(h *host, join bool) error {
	a := benchkit.Agent{Bin: c.o.orch, Name: h.name, Addr: h.addr, DataDir: h.dataDir, Socket: h.apiSock, Profile: c.profile}
	ctd := "none"
	if h.runsCtd {
		ctd = h.ctdSock
		if c.o.ctdHosts > 0 && c.o.ctdHosts < len(c.hosts) {
			a.Extra = append(a.Extra, "--label", ctdLabel+"=yes")
		}
	}
	a.Extra = append(a.Extra, "--containerd", ctd)
	if join {
		a.Join, a.Token = c.host(1).addr, c.token
	}
	d, err := c.startDaemon(h, "agent", a.Argv()...)
	h.agent = d
	return err
}

// orch runs the CLI against h's agent.
func (c *cluster) orch(ctx context.Context, h *host, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, c.o.orch, append([]string{"--socket", h.apiSock}, args...)...).CombinedOutput()
}

// poll calls f every interval until it succeeds, timeout passes, ctx
// ends, or a daemon exits on its own.
func (c *cluster) poll(ctx context.Context, timeout, interval time.Duration, f func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := c.checkRunning(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, apiTimeout)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if s := (benchkit.StopRetry{}); errors.As(err, &s) {
			return s.Err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		if err := benchkit.Sleep(ctx, interval); err != nil {
			return err
		}
	}
}

// checkRunning fails if a daemon that should run has exited.
func (c *cluster) checkRunning() error {
	for _, h := range c.hosts {
		if h.ctd != nil && h.ctd.Exited() {
			return h.ctd.ExitError()
		}
		if h.agent != nil && h.agent.Exited() {
			return h.agent.ExitError()
		}
	}
	return nil
}

// allAlive checks that every agent lists every host alive.
func (c *cluster) allAlive(ctx context.Context) error {
	for _, h := range c.hosts {
		ms, err := h.client.Members(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		alive := 0
		var other []string
		for _, m := range ms {
			if m.Status == "alive" {
				alive++
			} else {
				other = append(other, m.Name+"="+m.Status)
			}
		}
		if alive != len(c.hosts) {
			return fmt.Errorf("%s lists %d of %d alive (%s)", h.name, alive, len(c.hosts), strings.Join(other, " "))
		}
	}
	return nil
}

// placed is the service's replicas as h1 reports them once they are all
// running: node → address.
func (c *cluster) placed(ctx context.Context) (map[string]netip.Addr, []api.Task, error) {
	ts, err := c.host(1).client.ServiceTasks(ctx, service)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]netip.Addr{}
	var bad []string
	for _, t := range ts {
		a, perr := netip.ParseAddr(t.Addr)
		if t.State != "running" || !t.Current || perr != nil {
			bad = append(bad, fmt.Sprintf("%s.%d on %s: %s addr %q", t.Service, t.Slot, t.Node, t.State, t.Addr))
			continue
		}
		if _, dup := out[t.Node]; dup {
			bad = append(bad, fmt.Sprintf("two replicas on %s", t.Node))
		}
		out[t.Node] = a
	}
	if len(ts) != replicas || len(bad) > 0 || len(out) != replicas {
		return nil, ts, fmt.Errorf("%d tasks, want %d running on distinct hosts: %s", len(ts), replicas, strings.Join(bad, "; "))
	}
	return out, ts, nil
}

// deployed checks that 3 replicas run on 3 hosts, that every host's DNS
// answers exactly their addresses, and that each answers HTTP from h1.
func (c *cluster) deployed(ctx context.Context) error {
	byNode, _, err := c.placed(ctx)
	if err != nil {
		return err
	}
	var want []netip.Addr
	for _, a := range byNode {
		want = append(want, a)
	}
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	for _, h := range c.hosts {
		got, err := h.dns.query(time.Second)
		if err != nil {
			return fmt.Errorf("DNS on %s: %w", h.name, err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("DNS on %s answers %v, want %v", h.name, got, want)
		}
	}
	for _, a := range want {
		if err := httpGet(ctx, c.host(1).netns, a, port, 2*time.Second); err != nil {
			return fmt.Errorf("from h1: %w", err)
		}
	}
	return nil
}

// settled is deployed, every agent lists every host alive, and h's
// containerd holds containers of no slot it does not hold (the replica it
// ran before it was killed is gone).
func (c *cluster) settled(h *host) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := c.allAlive(ctx); err != nil {
			return err
		}
		if err := c.deployed(ctx); err != nil {
			return err
		}
		if !h.runsCtd {
			return nil
		}
		_, ts, _ := c.placed(ctx)
		var held []string
		for _, t := range ts {
			if t.Node == h.name {
				held = append(held, fmt.Sprintf("%s.%d.", t.Service, t.Slot))
			}
		}
		out, err := exec.CommandContext(ctx, "ctr", "-a", h.ctdSock, "-n", "orch", "containers", "ls", "-q").Output()
		if err != nil {
			return fmt.Errorf("ctr containers ls on %s: %w", h.name, err)
		}
		for id := range strings.FieldsSeq(string(out)) {
			if !slices.ContainsFunc(held, func(p string) bool { return strings.HasPrefix(id, p) }) {
				return fmt.Errorf("%s's containerd still holds %s", h.name, id)
			}
		}
		return nil
	}
}

// victimProcs lists every process in h's network namespace (its agent,
// containerd and shims) with their descendants (the containers, which
// live in the replicas' own namespaces).
func victimProcs(h *host) ([]benchkit.Proc, error) {
	pids, err := benchkit.PidsInNetns(h.netns)
	if err != nil {
		return nil, err
	}
	return benchkit.TreeOf(benchkit.ListProcs(false), pids), nil
}

// killHost SIGKILLs everything of h (pre is a list taken just before, so
// the first signal goes out at once) and waits until it is gone.
func (c *cluster) killHost(h *host, pre []benchkit.Proc) error {
	benchkit.SigKill(pre)
	for range 20 {
		v, err := victimProcs(h)
		if err != nil {
			return err
		}
		v = slices.DeleteFunc(v, func(p benchkit.Proc) bool { return p.State == "Z" })
		if len(v) == 0 {
			break
		}
		benchkit.SigKill(v)
		if left := benchkit.WaitDead(v, 2*time.Second); len(left) == 0 {
			break
		}
	}
	h.agent.WaitGone(10 * time.Second)
	if h.ctd != nil {
		h.ctd.WaitGone(10 * time.Second)
	}
	return nil
}

// restore heals h's link, restarts its containerd and its agent (from its
// data dir, no join flags), and waits until the cluster has settled.
func (c *cluster) restore(ctx context.Context, h *host) error {
	if err := c.lab.Heal(ctx, h.k); err != nil {
		return err
	}
	if h.runsCtd {
		if err := c.startContainerd(h); err != nil {
			return err
		}
		if err := benchkit.WaitContainerd(ctx, h.ctdSock, h.ctd, 60*time.Second); err != nil {
			return fmt.Errorf("%s: restart containerd: %w", h.name, err)
		}
	}
	h.dns.close()
	if err := c.startAgent(h, false); err != nil {
		return err
	}
	if err := c.poll(ctx, c.o.settleTimeout, 250*time.Millisecond, c.settled(h)); err != nil {
		c.dumpStuck(ctx)
		return err
	}
	return nil
}

// dumpStuck sends SIGQUIT to every agent whose API does not answer within
// 5 s: the Go runtime then writes every goroutine's stack to the agent's
// log and exits, which is the evidence a hang needs.
func (c *cluster) dumpStuck(ctx context.Context) {
	for _, h := range c.hosts {
		if h.agent.Exited() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := h.client.Info(cctx)
		cancel()
		if err == nil {
			continue
		}
		logf("%s: %s's API does not answer (%v): SIGQUIT, its goroutines go to %s", c.tag, h.name, err, h.agent.LogPath())
		h.agent.Signal(syscall.SIGQUIT)
		h.agent.WaitGone(5 * time.Second)
	}
}

// reap removes everything a run with work directory work left but its
// logs (see [benchkit.Reap]): each host's containerd keeps its state in
// work/run/hK/ctd/state. The containerd namespace "orch" is shared with
// every other containerd on the machine (tests use it too), so its
// parents (/run/containerd/runc/orch, the cgroup /orch) are left alone.
func reap(work string) error {
	return benchkit.Reap(work, benchkit.ReapOptions{ContainerdStates: []string{"run/*/ctd/state"}})
}

// stop stops the watchers, the agents and the containerds, removes the lab
// and everything under the work directory but the logs.
func (c *cluster) stop() {
	c.stopWatch()
	c.watchers.Wait()
	if c.events != nil {
		c.events.close()
	}
	var wg sync.WaitGroup
	for _, h := range c.hosts {
		h.dns.close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.agent.Stop(10 * time.Second)
		}()
	}
	wg.Wait()
	for _, h := range c.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.ctd.Stop(5 * time.Second)
		}()
	}
	wg.Wait()
	// reap before the lab goes: it finds the containers as descendants of
	// their shims, which lab down would kill on its own.
	if err := reap(c.o.work); err != nil {
		logf("warning: cleanup: %v", err)
	}
	if err := c.lab.Down(context.Background()); err != nil {
		logf("warning: %v", err)
	}
}

// memSample is the resident memory of the cluster's processes.
type memSample struct {
	agents, ctds, shims    int   // how many
	agentKiB, ctdKiB       int64 // summed
	shimKiB                int64
	availKiB, availBaseKiB int64 // MemAvailable now and before the run
}

func (c *cluster) memory() memSample {
	var m memSample
	for _, h := range c.hosts {
		if !h.agent.Exited() {
			m.agents++
			m.agentKiB += rssOf(h.agent.Pid())
		}
		if h.ctd != nil && !h.ctd.Exited() {
			m.ctds++
			m.ctdKiB += rssOf(h.ctd.Pid())
		}
	}
	for _, p := range benchkit.ListProcs(true) {
		if strings.HasPrefix(strings.TrimPrefix(benchkit.ShimAddress(p.Argv), "unix://"), c.o.work+"/") {
			m.shims++
			m.shimKiB += rssOf(p.PID)
		}
	}
	m.availKiB = benchkit.MemAvailable()
	m.availBaseKiB = c.o.memBase
	return m
}

// rssOf is pid's VmRSS in KiB; 0 if it has exited.
func rssOf(pid int) int64 {
	m, _ := benchkit.ProcMem(pid)
	return m.RSS
}

func (m memSample) total() int64 { return m.agentKiB + m.ctdKiB + m.shimKiB }

func (m memSample) String() string {
	per := func(sum int64, n int) float64 {
		if n == 0 {
			return 0
		}
		return benchkit.MiB(sum) / float64(n)
	}
	return fmt.Sprintf("%d agents %.0f MiB (%.1f each), %d containerds %.0f MiB (%.1f each), %d shims %.0f MiB; total %.0f MiB RSS; MemAvailable %.1f GiB (%.1f GiB before the run)",
		m.agents, benchkit.MiB(m.agentKiB), per(m.agentKiB, m.agents), m.ctds, benchkit.MiB(m.ctdKiB), per(m.ctdKiB, m.ctds),
		m.shims, benchkit.MiB(m.shimKiB), benchkit.MiB(m.total()), benchkit.MiB(m.availKiB)/1024, benchkit.MiB(m.availBaseKiB)/1024)
}

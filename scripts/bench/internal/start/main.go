package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// ctrNS is the containerd namespace of the ctr containers; the agent uses
// its default, orch.
const ctrNS = "orchbench-start"

type options struct {
	orch, work, results, image, imageName, source string
	runs                                          int
	scales                                        []int
	poll, settle, scaleTimeout                    time.Duration
	reapOnly                                      bool
}

func main() {
	var o options
	var scales string
	flag.StringVar(&o.orch, "orch", "", "orch binary (set by the script)")
	flag.StringVar(&o.work, "work", "/tmp/orch-bench-start", "work directory: containerd, agent data, logs/")
	flag.StringVar(&o.results, "results", "scripts/bench/results", "directory for the CSV files")
	flag.StringVar(&o.image, "image", "", "OCI archive to import (set by the script)")
	flag.StringVar(&o.imageName, "image-name", "docker.io/orch/busybox:test", "name of the image in the archive")
	flag.StringVar(&o.source, "orch-source", "", "where orch was built from, for the report")
	flag.IntVar(&o.runs, "runs", 10, "latency runs of each of orch and ctr")
	flag.StringVar(&scales, "scales", "10,100", "replica counts for the memory figures (0 is always measured)")
	flag.DurationVar(&o.poll, "poll", 10*time.Millisecond, "polling interval of the latency runs")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait before sampling RSS")
	flag.DurationVar(&o.scaleTimeout, "scale-timeout", 20*time.Minute, "limit for a scale-up to be all running")
	flag.BoolVar(&o.reapOnly, "reap", false, "only remove what a run with --work left behind, then exit")
	flag.Parse()
	for s := range strings.SplitSeq(scales, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fatalf("--scales: bad value %q", s)
		}
		o.scales = append(o.scales, n)
	}
	if o.reapOnly {
		if err := reap(o.work); err != nil {
			fatalf("reap: %v", err)
		}
		return
	}
	if o.orch == "" || o.image == "" {
		fatalf("--orch and --image are required (run scripts/bench/start)")
	}
	if o.runs < 1 {
		fatalf("--runs must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{o: o}
	err := b.run(ctx)
	b.teardown()
	if rerr := reap(o.work); rerr != nil {
		logf("cleanup: %v", rerr)
		if err == nil {
			err = rerr
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			logf("interrupted")
			os.Exit(130)
		}
		fatalf("%v", err)
	}
}

// reap removes everything a run with work directory work left but its
// logs (see the package comment and [benchkit.Reap]). The namespaces'
// cgroup parents and runc state directories go too if empty (rmdir leaves
// one that another containerd on the machine is using): the agent's
// namespace orch and the ctr one, ctrNS.
func reap(work string) error {
	return benchkit.Reap(work, benchkit.ReapOptions{ContainerdStates: []string{"ctd/state"}, OwnNamespaces: []string{"orch", ctrNS}})
}

// waitQuiet waits while another benchmark runs.
func waitQuiet(ctx context.Context) error {
	_, _, err := benchkit.WaitIdle(ctx, time.Duration(math.MaxInt64), 10*time.Second, func() []string {
		return benchkit.OtherLoad(benchkit.LoadFilter{Own: []string{"scripts/bench/start", "internal/start"}})
	}, func(others []string) {
		logf("another benchmark is running, waiting:\n  %s", strings.Join(others, "\n  "))
	})
	return err
}

func logf(format string, args ...any) { benchkit.Logf("start", format, args...) }

func fatalf(format string, args ...any) { benchkit.Fatalf("start", format, args...) }

type bench struct {
	o          options
	ctd, agent *benchkit.Daemon
	ctdSock    string
	apiSock    string
	client     *api.Client
	image      string // name as imported
	logs       string

	orchRuns, ctrRuns []sample
	latencyBusy       float64 // host CPU % over the latency runs
	mem               []memRow
	started           time.Time
}

type sample struct {
	run              int
	cliMS, runningMS float64
	first            bool // this implementation went first in its pair
}

type memRow struct {
	replicas           int
	scaleSec           float64 // time until all running (0 for 0)
	agentRSS, agentHWM int64   // KiB
	ctdRSS, shimRSS    int64
	shims              int
	hostBusy           float64
}

func (b *bench) run(ctx context.Context) error {
	b.started = time.Now()
	o := b.o
	if err := reap(o.work); err != nil {
		return fmt.Errorf("removing an earlier run's leftovers: %w", err)
	}
	b.logs = filepath.Join(o.work, "logs")
	os.RemoveAll(b.logs)
	if err := os.MkdirAll(b.logs, 0o755); err != nil {
		return err
	}
	if err := waitQuiet(ctx); err != nil {
		return err
	}

	// containerd
	config, sock, err := benchkit.WriteContainerdConfig(filepath.Join(o.work, "ctd"))
	if err != nil {
		return err
	}
	b.ctdSock = sock
	if b.ctd, err = benchkit.StartDaemon(benchkit.DaemonOptions{Name: "containerd", Log: filepath.Join(b.logs, "containerd.log")}, "containerd", "--config", config); err != nil {
		return err
	}
	if err := benchkit.WaitContainerd(ctx, sock, b.ctd, 30*time.Second); err != nil {
		return err
	}
	logf("containerd up (pid %d, %s)", b.ctd.Pid(), sock)

	// agent
	data := filepath.Join(o.work, "n1")
	b.apiSock = filepath.Join(data, "api.sock")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if b.agent, err = benchkit.StartDaemon(benchkit.DaemonOptions{Name: "agent", Log: filepath.Join(b.logs, "agent.log")}, o.orch, "agent", "--name", "n1",
		"--bind", "127.0.0.1:17946", "--data-dir", data, "--socket", b.apiSock, "--containerd", sock, "--profile", "fast",
		// Loopback only, like the ctr baseline: no overlay to program.
		"--overlay", "none", "--dns", "none"); err != nil {
		return err
	}
	b.client = api.NewClient(b.apiSock)
	if err := b.waitAgent(ctx); err != nil {
		return err
	}
	logf("agent up (pid %d)", b.agent.Pid())

	// image, into both namespaces
	if out, err := b.orchCmd(ctx, "image", "import", o.image); err != nil {
		return fmt.Errorf("orch image import: %v: %s", err, out)
	}
	if out, err := b.ctr(ctx, "images", "import", o.image); err != nil {
		return fmt.Errorf("ctr images import: %v: %s", err, out)
	}
	b.image = o.imageName
	logf("image %s imported", b.image)

	// Warm-up: one of each, not recorded (first snapshot unpack, first shim).
	logf("warm-up")
	if _, err := b.orchOnce(ctx, "bstart-warm"); err != nil {
		return fmt.Errorf("warm-up orch: %w", err)
	}
	if _, err := b.ctrOnce(ctx, "bstart-warm"); err != nil {
		return fmt.Errorf("warm-up ctr: %w", err)
	}

	if err := waitQuiet(ctx); err != nil {
		return err
	}
	cpu0, _ := benchkit.ReadHostCPU()
	for i := range o.runs {
		orchFirst := i%2 == 0
		for k := range 2 {
			if (k == 0) == orchFirst {
				s, err := b.orchOnce(ctx, fmt.Sprintf("bstart-%d", i))
				if err != nil {
					return fmt.Errorf("run %d orch: %w", i+1, err)
				}
				s.run, s.first = i+1, k == 0
				b.orchRuns = append(b.orchRuns, s)
			} else {
				s, err := b.ctrOnce(ctx, fmt.Sprintf("bstart-%d", i))
				if err != nil {
					return fmt.Errorf("run %d ctr: %w", i+1, err)
				}
				s.run, s.first = i+1, k == 0
				b.ctrRuns = append(b.ctrRuns, s)
			}
		}
		logf("run %d/%d: orch %.0f ms, ctr %.0f ms", i+1, o.runs, b.orchRuns[i].runningMS, b.ctrRuns[i].runningMS)
	}

	cpu1, _ := benchkit.ReadHostCPU()
	b.latencyBusy = cpu0.BusyPct(cpu1)

	// Memory.
	if err := waitQuiet(ctx); err != nil {
		return err
	}
	row, err := b.memory(ctx, 0, 0)
	if err != nil {
		return err
	}
	b.mem = append(b.mem, row)
	const svc = "bstart-rss"
	for i, n := range o.scales {
		cpu0, _ := benchkit.ReadHostCPU()
		t0 := time.Now()
		var out []byte
		if i == 0 {
			out, err = b.orchCmd(ctx, "service", "create", "--name", svc, "--replicas", strconv.Itoa(n), b.image, "sh", "-c", "exec sleep 100000")
		} else {
			out, err = b.orchCmd(ctx, "service", "scale", fmt.Sprintf("%s=%d", svc, n))
		}
		if err != nil {
			return fmt.Errorf("scale to %d: %v: %s", n, err, out)
		}
		logf("scaling %s to %d", svc, n)
		if err := b.waitRunning(ctx, svc, n, 250*time.Millisecond, o.scaleTimeout, true); err != nil {
			return fmt.Errorf("scale to %d: %w", n, err)
		}
		took := time.Since(t0)
		cpu1, _ := benchkit.ReadHostCPU()
		logf("%d replicas running after %.1f s", n, took.Seconds())
		if got, err := b.ctrRunning(ctx, "orch"); err != nil || got != n {
			return fmt.Errorf("scale to %d: ctr -n orch tasks ls shows %d RUNNING (%v)", n, got, err)
		}
		row, err := b.memory(ctx, n, took)
		if err != nil {
			return err
		}
		row.hostBusy = cpu0.BusyPct(cpu1)
		b.mem = append(b.mem, row)
	}
	return b.report()
}

func (b *bench) waitAgent(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b.agent.Exited() {
			return b.agent.ExitError()
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.client.Info(c)
		cancel()
		if err == nil {
			return nil
		}
		if err := benchkit.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("agent API did not answer within 60 s")
}

func (b *bench) orchCmd(ctx context.Context, args ...string) ([]byte, error) {
	c, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return exec.CommandContext(c, b.o.orch, append([]string{"--socket", b.apiSock}, args...)...).CombinedOutput()
}

func (b *bench) ctr(ctx context.Context, args ...string) ([]byte, error) {
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return exec.CommandContext(c, "ctr", append([]string{"-a", b.ctdSock, "-n", ctrNS}, args...)...).CombinedOutput()
}

// orchOnce times one create until running, then removes the service and
// waits until its containers are gone.
func (b *bench) orchOnce(ctx context.Context, name string) (sample, error) {
	t0 := time.Now()
	out, err := b.orchCmd(ctx, "service", "create", "--name", name, "--replicas", "1", b.image, "sh", "-c", "exec sleep 100000")
	cli := time.Since(t0)
	if err != nil {
		return sample{}, fmt.Errorf("orch service create: %v: %s", err, out)
	}
	if err := b.waitRunning(ctx, name, 1, b.o.poll, 2*time.Minute, false); err != nil {
		return sample{}, err
	}
	s := sample{cliMS: benchkit.Ms(cli), runningMS: benchkit.Ms(time.Since(t0))}
	if out, err := b.orchCmd(ctx, "service", "rm", name); err != nil {
		return s, fmt.Errorf("orch service rm: %v: %s", err, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := exec.CommandContext(ctx, "ctr", "-a", b.ctdSock, "-n", "orch", "containers", "ls", "-q").Output()
		if err == nil && strings.TrimSpace(string(out)) == "" {
			break
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("containers of %s still there 2 min after rm: %s", name, out)
		}
		if err := benchkit.Sleep(ctx, 200*time.Millisecond); err != nil {
			return s, err
		}
	}
	return s, benchkit.Sleep(ctx, time.Second)
}

// waitRunning polls the API until name has want slots, all running on the
// current version.
func (b *bench) waitRunning(ctx context.Context, name string, want int, every, timeout time.Duration, progress bool) error {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	var last string
	for {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		tasks, err := b.client.ServiceTasks(c, name)
		cancel()
		running := 0
		states := map[string]int{}
		for _, t := range tasks {
			states[t.State]++
			if t.State == "running" && t.Current {
				running++
			}
		}
		if err == nil && running == want && len(tasks) == want {
			return nil
		}
		last = fmt.Sprintf("%d/%d running, states %v, err %v", running, want, states, err)
		if progress && time.Since(lastLog) > 15*time.Second {
			logf("  %s: %s", name, last)
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not running after %v: %s", name, timeout, last)
		}
		if b.agent.Exited() {
			return b.agent.ExitError()
		}
		if err := benchkit.Sleep(ctx, every); err != nil {
			return err
		}
	}
}

// ctrOnce times one `ctr run -d` until its task is RUNNING, then removes it.
func (b *bench) ctrOnce(ctx context.Context, id string) (sample, error) {
	t0 := time.Now()
	out, err := b.ctr(ctx, "run", "-d", b.image, id, "sh", "-c", "exec sleep 100000")
	cli := time.Since(t0)
	if err != nil {
		return sample{}, fmt.Errorf("ctr run: %v: %s", err, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := b.ctr(ctx, "tasks", "ls")
		if err == nil && taskRunning(string(out), id) {
			break
		}
		if time.Now().After(deadline) {
			return sample{}, fmt.Errorf("task %s not RUNNING after 2 min: %s", id, out)
		}
		if err := benchkit.Sleep(ctx, b.o.poll); err != nil {
			return sample{}, err
		}
	}
	s := sample{cliMS: benchkit.Ms(cli), runningMS: benchkit.Ms(time.Since(t0))}
	b.ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id)
	for range 200 {
		out, _ := b.ctr(ctx, "tasks", "ls")
		if !strings.Contains(string(out), id+" ") || strings.Contains(string(out), "STOPPED") {
			break
		}
		benchkit.Sleep(ctx, 25*time.Millisecond)
	}
	if out, err := b.ctr(ctx, "tasks", "rm", "-f", id); err != nil {
		return s, fmt.Errorf("ctr tasks rm: %v: %s", err, out)
	}
	if out, err := b.ctr(ctx, "containers", "rm", id); err != nil {
		return s, fmt.Errorf("ctr containers rm: %v: %s", err, out)
	}
	return s, benchkit.Sleep(ctx, time.Second)
}

func taskRunning(ls, id string) bool {
	for line := range strings.Lines(ls) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			return true
		}
	}
	return false
}

// ctrRunning counts RUNNING tasks in namespace ns.
func (b *bench) ctrRunning(ctx context.Context, ns string) (int, error) {
	out, err := exec.CommandContext(ctx, "ctr", "-a", b.ctdSock, "-n", ns, "tasks", "ls").Output()
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "RUNNING" {
			n++
		}
	}
	return n, nil
}

// memory samples the agent's RSS (median of 5, 1 s apart) after settling.
func (b *bench) memory(ctx context.Context, n int, took time.Duration) (memRow, error) {
	if err := benchkit.Sleep(ctx, b.o.settle); err != nil {
		return memRow{}, err
	}
	cpu0, _ := benchkit.ReadHostCPU()
	var rss []int64
	var row memRow
	for range 5 {
		m, err := benchkit.ProcMem(b.agent.Pid())
		if err != nil {
			return row, fmt.Errorf("agent RSS: %w", err)
		}
		rss = append(rss, m.RSS)
		row.agentHWM = m.HWM
		if err := benchkit.Sleep(ctx, time.Second); err != nil {
			return row, err
		}
	}
	slices.Sort(rss)
	row.replicas, row.scaleSec, row.agentRSS = n, took.Seconds(), rss[len(rss)/2]
	ctd, _ := benchkit.ProcMem(b.ctd.Pid())
	row.ctdRSS = ctd.RSS
	for _, p := range benchkit.ListProcs(true) {
		if strings.TrimPrefix(benchkit.ShimAddress(p.Argv), "unix://") == b.ctdSock {
			m, _ := benchkit.ProcMem(p.PID)
			row.shimRSS += m.RSS
			row.shims++
		}
	}
	cpu1, _ := benchkit.ReadHostCPU()
	row.hostBusy = cpu0.BusyPct(cpu1)
	logf("%d replicas: agent RSS %.1f MiB (HWM %.1f), containerd %.1f MiB, %d shims %.1f MiB",
		n, benchkit.MiB(row.agentRSS), benchkit.MiB(row.agentHWM), benchkit.MiB(row.ctdRSS), row.shims, benchkit.MiB(row.shimRSS))
	return row, nil
}

// teardown stops the agent, then containerd; reap does the rest.
func (b *bench) teardown() {
	if b.agent != nil {
		b.agent.Stop(10 * time.Second)
	}
	if b.ctd != nil {
		b.ctd.Stop(5 * time.Second)
	}
}

func col(ss []sample, f func(sample) float64) []float64 {
	var out []float64
	for _, s := range ss {
		out = append(out, f(s))
	}
	return out
}

// report prints the tables and writes the CSV files.
func (b *bench) report() error {
	run := func(s sample) float64 { return s.runningMS }
	cli := func(s sample) float64 { return s.cliMS }
	om, ox := benchkit.Median(col(b.orchRuns, run)), slices.Max(col(b.orchRuns, run))
	cm, cx := benchkit.Median(col(b.ctrRuns, run)), slices.Max(col(b.ctrRuns, run))
	w := os.Stdout
	fmt.Fprintf(w, "\n%s\n", benchkit.Header(b.o.source, b.started))
	fmt.Fprintf(w, "\nCreate to running, ms (%d runs each, alternating order):\n\n", len(b.orchRuns))
	fmt.Fprintln(w, "| impl | median | min | max | CLI returned, median |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
	fmt.Fprintf(w, "| orch service create | %.0f | %.0f | %.0f | %.0f |\n", om, slices.Min(col(b.orchRuns, run)), ox, benchkit.Median(col(b.orchRuns, cli)))
	fmt.Fprintf(w, "| ctr run -d | %.0f | %.0f | %.0f | %.0f |\n", cm, slices.Min(col(b.ctrRuns, run)), cx, benchkit.Median(col(b.ctrRuns, cli)))
	fmt.Fprintf(w, "| ratio orch/ctr | %.2f | | %.2f | |\n", om/cm, ox/cx)
	fmt.Fprintf(w, "\nHost CPU busy during the latency runs (both CPUs, every source): %.0f%%\n", b.latencyBusy)
	fmt.Fprintln(w, "\nAgent memory by local replicas:")
	fmt.Fprintln(w, "\n| replicas | scale-up to all running, s | agent RSS MiB | agent HWM MiB | containerd RSS MiB | shims | shims RSS MiB | host % |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range b.mem {
		up := "–"
		if r.replicas > 0 {
			up = fmt.Sprintf("%.1f", r.scaleSec)
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %.1f | %.1f | %d | %.1f | %.0f |\n", r.replicas, up, benchkit.MiB(r.agentRSS), benchkit.MiB(r.agentHWM), benchkit.MiB(r.ctdRSS), r.shims, benchkit.MiB(r.shimRSS), r.hostBusy)
	}
	fmt.Fprintf(w, "\ntotal %s\n", time.Since(b.started).Round(time.Second))

	if err := os.MkdirAll(b.o.results, 0o755); err != nil {
		return err
	}
	stamp := b.started.UTC().Format(time.RFC3339)
	var runs strings.Builder
	runs.WriteString("time,orch_source,impl,run,went_first,cli_ms,running_ms\n")
	for _, pair := range []struct {
		impl string
		ss   []sample
	}{{"orch", b.orchRuns}, {"ctr", b.ctrRuns}} {
		for _, s := range pair.ss {
			fmt.Fprintf(&runs, "%s,%q,%s,%d,%t,%.1f,%.1f\n", stamp, b.o.source, pair.impl, s.run, s.first, s.cliMS, s.runningMS)
		}
	}
	var sum strings.Builder
	sum.WriteString("time,orch_source,metric,replicas,value,unit\n")
	add := func(metric string, n int, v float64, unit string) {
		fmt.Fprintf(&sum, "%s,%q,%s,%d,%.2f,%s\n", stamp, b.o.source, metric, n, v, unit)
	}
	add("orch_running_median", 1, om, "ms")
	add("orch_running_max", 1, ox, "ms")
	add("ctr_running_median", 1, cm, "ms")
	add("ctr_running_max", 1, cx, "ms")
	add("ratio_median", 1, om/cm, "x")
	add("ratio_max", 1, ox/cx, "x")
	add("host_busy_latency", 1, b.latencyBusy, "%")
	for _, r := range b.mem {
		add("agent_rss", r.replicas, benchkit.MiB(r.agentRSS), "MiB")
		add("agent_hwm", r.replicas, benchkit.MiB(r.agentHWM), "MiB")
		add("containerd_rss", r.replicas, benchkit.MiB(r.ctdRSS), "MiB")
		add("shims_rss", r.replicas, benchkit.MiB(r.shimRSS), "MiB")
		if r.replicas > 0 {
			add("scale_up", r.replicas, r.scaleSec, "s")
		}
		add("host_busy", r.replicas, r.hostBusy, "%")
	}
	for name, body := range map[string]string{"start.csv": runs.String(), "start-summary.csv": sum.String()} {
		if err := benchkit.AppendCSV(filepath.Join(b.o.results, name), body); err != nil {
			return err
		}
	}
	logf("CSV appended to %s/start.csv and start-summary.csv", b.o.results)
	return nil
}

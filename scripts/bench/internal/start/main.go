package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orchproject/orch/agent/api"
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
		if err := reap(o.work, ctrNS); err != nil {
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
	if rerr := reap(o.work, ctrNS); rerr != nil {
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

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s start: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "start: %s\n", fmt.Sprintf(format, args...))
	os.Exit(1)
}

type bench struct {
	o          options
	ctd, agent *daemon
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
	if err := reap(o.work, ctrNS); err != nil {
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
	config, sock, err := writeContainerdConfig(filepath.Join(o.work, "ctd"))
	if err != nil {
		return err
	}
	b.ctdSock = sock
	if b.ctd, err = startDaemon("containerd", filepath.Join(b.logs, "containerd.log"), "containerd", "--config", config); err != nil {
		return err
	}
	if err := waitCtr(ctx, sock, b.ctd, 30*time.Second); err != nil {
		return err
	}
	logf("containerd up (pid %d, %s)", b.ctd.pid(), sock)

	// agent
	data := filepath.Join(o.work, "n1")
	b.apiSock = filepath.Join(data, "api.sock")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if b.agent, err = startDaemon("agent", filepath.Join(b.logs, "agent.log"), o.orch, "agent", "--name", "n1",
		"--bind", "127.0.0.1:17946", "--data-dir", data, "--socket", b.apiSock, "--containerd", sock, "--profile", "fast"); err != nil {
		return err
	}
	b.client = api.NewClient(b.apiSock)
	if err := b.waitAgent(ctx); err != nil {
		return err
	}
	logf("agent up (pid %d)", b.agent.pid())

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
	busy0, total0 := cpuTicks()
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

	busy1, total1 := cpuTicks()
	b.latencyBusy = pct(busy1-busy0, total1-total0)

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
		busy0, total0 := cpuTicks()
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
		busy1, total1 := cpuTicks()
		logf("%d replicas running after %.1f s", n, took.Seconds())
		if got, err := b.ctrRunning(ctx, "orch"); err != nil || got != n {
			return fmt.Errorf("scale to %d: ctr -n orch tasks ls shows %d RUNNING (%v)", n, got, err)
		}
		row, err := b.memory(ctx, n, took)
		if err != nil {
			return err
		}
		row.hostBusy = pct(busy1-busy0, total1-total0)
		b.mem = append(b.mem, row)
	}
	return b.report()
}

// waitQuiet waits while another benchmark runs.
func waitQuiet(ctx context.Context) error {
	for said := false; ; said = true {
		others := otherBenchmarks()
		if len(others) == 0 {
			return nil
		}
		if !said {
			logf("another benchmark is running, waiting:\n  %s", strings.Join(others, "\n  "))
		}
		if err := sleep(ctx, 10*time.Second); err != nil {
			return err
		}
	}
}

func (b *bench) waitAgent(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b.agent.exited() {
			return fmt.Errorf("agent exited: %v (see %s)", b.agent.cmd.ProcessState, filepath.Join(b.logs, "agent.log"))
		}
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.client.Info(c)
		cancel()
		if err == nil {
			return nil
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
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
	s := sample{cliMS: ms(cli), runningMS: ms(time.Since(t0))}
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
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return s, err
		}
	}
	return s, sleep(ctx, time.Second)
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
		if b.agent.exited() {
			return fmt.Errorf("agent exited: %v", b.agent.cmd.ProcessState)
		}
		if err := sleep(ctx, every); err != nil {
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
		if err := sleep(ctx, b.o.poll); err != nil {
			return sample{}, err
		}
	}
	s := sample{cliMS: ms(cli), runningMS: ms(time.Since(t0))}
	b.ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id)
	for range 200 {
		out, _ := b.ctr(ctx, "tasks", "ls")
		if !strings.Contains(string(out), id+" ") || strings.Contains(string(out), "STOPPED") {
			break
		}
		sleep(ctx, 25*time.Millisecond)
	}
	if out, err := b.ctr(ctx, "tasks", "rm", "-f", id); err != nil {
		return s, fmt.Errorf("ctr tasks rm: %v: %s", err, out)
	}
	if out, err := b.ctr(ctx, "containers", "rm", id); err != nil {
		return s, fmt.Errorf("ctr containers rm: %v: %s", err, out)
	}
	return s, sleep(ctx, time.Second)
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
	if err := sleep(ctx, b.o.settle); err != nil {
		return memRow{}, err
	}
	busy0, total0 := cpuTicks()
	var rss []int64
	var row memRow
	for range 5 {
		r, hwm, err := vmRSS(b.agent.pid())
		if err != nil {
			return row, fmt.Errorf("agent RSS: %w", err)
		}
		rss = append(rss, r)
		row.agentHWM = hwm
		if err := sleep(ctx, time.Second); err != nil {
			return row, err
		}
	}
	slices.Sort(rss)
	row.replicas, row.scaleSec, row.agentRSS = n, took.Seconds(), rss[len(rss)/2]
	row.ctdRSS, _, _ = vmRSS(b.ctd.pid())
	for _, p := range listProcs() {
		if strings.TrimPrefix(shimAddress(p.argv), "unix://") == b.ctdSock {
			r, _, _ := vmRSS(p.pid)
			row.shimRSS += r
			row.shims++
		}
	}
	busy1, total1 := cpuTicks()
	row.hostBusy = pct(busy1-busy0, total1-total0)
	logf("%d replicas: agent RSS %.1f MiB (HWM %.1f), containerd %.1f MiB, %d shims %.1f MiB",
		n, mib(row.agentRSS), mib(row.agentHWM), mib(row.ctdRSS), row.shims, mib(row.shimRSS))
	return row, nil
}

// teardown stops the agent, then containerd; reap does the rest.
func (b *bench) teardown() {
	if b.agent != nil {
		b.agent.stop(10 * time.Second)
	}
	if b.ctd != nil {
		b.ctd.stop(5 * time.Second)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mib(kib int64) float64      { return float64(kib) / 1024 }
func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
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
	om, ox := median(col(b.orchRuns, run)), slices.Max(col(b.orchRuns, run))
	cm, cx := median(col(b.ctrRuns, run)), slices.Max(col(b.ctrRuns, run))
	w := os.Stdout
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n# orch %s, %s, %d CPUs, %s, %s\n", b.o.source, runtime.Version(), runtime.NumCPU(), host, b.started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "\nCreate to running, ms (%d runs each, alternating order):\n\n", len(b.orchRuns))
	fmt.Fprintln(w, "| impl | median | min | max | CLI returned, median |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
	fmt.Fprintf(w, "| orch service create | %.0f | %.0f | %.0f | %.0f |\n", om, slices.Min(col(b.orchRuns, run)), ox, median(col(b.orchRuns, cli)))
	fmt.Fprintf(w, "| ctr run -d | %.0f | %.0f | %.0f | %.0f |\n", cm, slices.Min(col(b.ctrRuns, run)), cx, median(col(b.ctrRuns, cli)))
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
		fmt.Fprintf(w, "| %d | %s | %.1f | %.1f | %.1f | %d | %.1f | %.0f |\n", r.replicas, up, mib(r.agentRSS), mib(r.agentHWM), mib(r.ctdRSS), r.shims, mib(r.shimRSS), r.hostBusy)
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
		add("agent_rss", r.replicas, mib(r.agentRSS), "MiB")
		add("agent_hwm", r.replicas, mib(r.agentHWM), "MiB")
		add("containerd_rss", r.replicas, mib(r.ctdRSS), "MiB")
		add("shims_rss", r.replicas, mib(r.shimRSS), "MiB")
		if r.replicas > 0 {
			add("scale_up", r.replicas, r.scaleSec, "s")
		}
		add("host_busy", r.replicas, r.hostBusy, "%")
	}
	for name, body := range map[string]string{"start.csv": runs.String(), "start-summary.csv": sum.String()} {
		if err := appendCSV(filepath.Join(b.o.results, name), body); err != nil {
			return err
		}
	}
	logf("CSV appended to %s/start.csv and start-summary.csv", b.o.results)
	return nil
}

// appendCSV appends body to path, without its header line if the file
// already has content.
func appendCSV(path, body string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, _ := f.Stat(); st != nil && st.Size() > 0 {
		_, body, _ = strings.Cut(body, "\n")
	}
	_, err = io.WriteString(f, body)
	return err
}

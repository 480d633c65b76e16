package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
	"github.com/orchproject/orch/internal/testimage"
)

// wnode is an agent with its own containerd on a lab host.
type wnode struct {
	*node
	ctd *testenv.Containerd
}

// ctr runs ctr against the node's containerd in orch's namespace.
func (w *wnode) ctr(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"-a", w.ctd.Socket, "-n", "orch"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %v on %s: %v: %s", args, w.name, err, out)
	}
	return string(out)
}

// containers lists the node's orch containers.
func (w *wnode) containers(t *testing.T) []string {
	return strings.Fields(w.ctr(t, "containers", "ls", "-q"))
}

// taskPIDs maps running container IDs to PIDs on the node.
func (w *wnode) taskPIDs(t *testing.T) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(w.ctr(t, "tasks", "ls"), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "RUNNING" {
			pid, _ := strconv.Atoi(f[1])
			out[f[0]] = pid
		}
	}
	return out
}

// startAgent starts the node's agent with the LAN profile: the test kills
// and restarts agents and expects their replicas to stay, which holds when
// the agent is back before failure detection (about 5 s with lan, 1 s with
// fast, which a loaded CI machine could miss).
func (w *wnode) startAgent(t *testing.T, extra ...string) {
	t.Helper()
	w.start(t, append([]string{"--profile", "lan", "--containerd", w.ctd.Socket, "--insecure-registry", registryAddr}, extra...)...)
	w.waitReady(t)
}

// tasksEverywhere polls until f accepts the service's tasks as h1 sees them.
func tasksUntil(t *testing.T, n *node, svc string, timeout time.Duration, f func([]api.Task) error) []api.Task {
	t.Helper()
	var got []api.Task
	lab.Eventually(t, timeout, 100*time.Millisecond, func() error {
		ts, err := tasksOn(t, n, svc)
		if err != nil {
			return err
		}
		got = ts
		return f(ts)
	})
	return got
}

func allRunningOn(want int, distinct bool) func([]api.Task) error {
	return func(ts []api.Task) error {
		if len(ts) != want {
			return fmt.Errorf("%d tasks, want %d", len(ts), want)
		}
		nodes := map[string]bool{}
		for _, tk := range ts {
			if tk.State != "running" || !tk.Current {
				return fmt.Errorf("%s.%d on %s is %s (%s)", tk.Service, tk.Slot, tk.Node, tk.State, tk.Message)
			}
			nodes[tk.Node] = true
		}
		if distinct && len(nodes) != want {
			return fmt.Errorf("tasks on %d nodes, want %d", len(nodes), want)
		}
		return nil
	}
}

// allRunningWithAddr is allRunningOn(want, true) where every task also
// has its overlay address.
func allRunningWithAddr(want int) func([]api.Task) error {
	return func(ts []api.Task) error {
		if err := allRunningOn(want, true)(ts); err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.Addr == "" {
				return fmt.Errorf("%s.%d has no address yet", tk.Service, tk.Slot)
			}
		}
		return nil
	}
}

// registryAddr is where the test's registry listens: on h1, inside the lab.
const registryAddr = "10.47.0.1:5000"

// startRegistry runs Debian's docker-registry on h1 and pushes an image
// variant (its own digest) into it with skopeo. It returns the reference
// and the manifest digest.
func startRegistry(t *testing.T, h *lab.Host) (string, string) {
	t.Helper()
	testenv.RequireCommand(t, "docker-registry", "skopeo")
	dir := t.TempDir()
	cfg := writeFile(t, dir, "registry.yml", fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: %s\n", dir, registryAddr))
	h.Start(t, "docker-registry", "serve", cfg)
	path, digest := testimage.Build(t, testimage.Options{Name: "docker.io/orch/busybox:pulled", Env: []string{"PULLED=1"}})
	ref := registryAddr + "/orch/busybox:pull"
	lab.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		out, err := h.Command(t.Context(), "skopeo", "copy", "--dest-tls-verify=false", "oci-archive:"+path, "docker://"+ref).CombinedOutput()
		if err != nil {
			return fmt.Errorf("skopeo copy: %v: %s", err, out)
		}
		return nil
	})
	return ref, digest
}

// TestWorkloads runs replicas in containerd on three lab hosts, each with
// its own containerd.
func TestWorkloads(t *testing.T) {
	testenv.RequireContainerd(t)
	l := lab.New(t, lab.Config{Hosts: 3})
	image := testimage.Busybox(t)
	// Replicas' network namespaces are bind mounts in the agents' data
	// dirs; unmount what a failed run leaves before the dirs are removed.
	root := l.Host(1).Dir
	t.Cleanup(func() { unmountUnder(t, strings.TrimSuffix(root, "/h1")) })
	var ws []*wnode
	for i := 1; i <= 3; i++ {
		h := l.Host(i)
		w := &wnode{node: newNode(h, h.Name), ctd: testenv.StartContainerd(t, testenv.ContainerdOptions{NetNS: "/run/netns/" + h.NetNS, Namespace: "orch"})}
		ws = append(ws, w)
	}
	ns := []*node{ws[0].node, ws[1].node, ws[2].node}
	h1 := ws[0]
	ws[0].startAgent(t)
	token := strings.TrimSpace(mustCLI(t, h1.node, "token"))
	for _, w := range ws[1:] {
		w.startAgent(t, "--token", token, "--join", h1.host.Addr.String())
	}
	allSee(t, 10*time.Second, ns, statusMap("alive", ns...))
	step := func(name string) { t.Logf("step: %s", name) }

	step("orch image import on every node; image ls shows it by digest")
	_, digest := testimage.Build(t, testimage.Options{})
	for _, w := range ws {
		out := mustCLI(t, w.node, "image", "import", image)
		if !strings.Contains(out, testimage.DefaultName) || !strings.Contains(out, digest) {
			t.Errorf("image import on %s printed %q, want %s %s", w.name, out, testimage.DefaultName, digest)
		}
		if ls := mustCLI(t, w.node, "image", "ls"); !strings.Contains(ls, digest) {
			t.Errorf("image ls on %s: %q lacks %s", w.name, ls, digest)
		}
	}

	step("a 3-replica httpd service: one running container per host within 5 s")
	mustCLI(t, h1.node, "service", "create", "--name", "web", "--replicas", "3", "--restart-delay", "200ms",
		"--env", "V=1", testimage.DefaultName, "httpd", "-f", "-p", "8080", "-h", "/www")
	tasksUntil(t, h1.node, "web", 5*time.Second, allRunningOn(3, true))
	for _, w := range ws {
		if got := len(w.taskPIDs(t)); got != 1 {
			t.Errorf("%s runs %d containers, want 1", w.name, got)
		}
	}

	step("SIGKILL a container's process: back within its backoff, restart count 1")
	victim := ws[1]
	var pid int
	for _, p := range victim.taskPIDs(t) {
		pid = p
	}
	victimEvents := victim.streamEvents(t, "--filter", "type=task")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ts := tasksUntil(t, h1.node, "web", 15*time.Second, func(ts []api.Task) error {
		if err := allRunningOn(3, true)(ts); err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.Node == victim.name && tk.Restarts != 1 {
				return fmt.Errorf("%s.%d has %d restarts", tk.Service, tk.Slot, tk.Restarts)
			}
		}
		return nil
	})
	t.Logf("after the kill: %+v", ts)
	lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		var seen []string
		for _, line := range victimEvents.lines() {
			for _, want := range []string{`"action":"restarting"`, `"action":"starting"`, `"action":"running"`} {
				if strings.Contains(line, want) && strings.Contains(line, `"subject":"web.`) {
					seen = append(seen, want)
				}
			}
		}
		for _, want := range []string{`"action":"restarting"`, `"action":"running"`} {
			if !slices.Contains(seen, want) {
				return fmt.Errorf("no task %s event on %s after the kill: %q", want, victim.name, victimEvents.lines())
			}
		}
		return nil
	})
	out, _, _ := h1.cli(t, "service", "ps", "web")
	if !strings.Contains(out, "RESTARTS") {
		t.Errorf("ps shows no restarts column:\n%s", out)
	}

	step("a two-container replica: the sidecar reaches the web container on 127.0.0.1")
	pair := writeFile(t, h1.host.Dir, "pair.yaml", `name: pair
placement:
  constraints: ["node.name==h3"]
containers:
  - name: web
    image: `+testimage.DefaultName+`
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
  - name: sidecar
    image: `+testimage.DefaultName+`
    command: ["sh", "-c", "until wget -q -O - http://127.0.0.1:8080/; do sleep 0.2; done; exec sleep 100000"]
`)
	mustCLI(t, h1.node, "service", "create", "-f", pair)
	lab.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		out, errOut, code := ws[2].cli(t, "logs", "pair", "--tail", "20")
		if code != 0 || !strings.Contains(out, "pair.0/sidecar | <p>hello from orch busybox</p>") {
			return fmt.Errorf("orch logs pair on h3: exit %d, %q %q", code, out, errOut)
		}
		return nil
	})
	mustCLI(t, h1.node, "service", "rm", "pair")

	step("orch logs prints a replica's output on its node")
	mustCLI(t, h1.node, "service", "create", "--name", "talker", "--constraint", "node.name==h1", "--env", "WHO=orch",
		testimage.DefaultName, "sh", "-c", "echo hello $WHO; exec sleep 100000")
	lab.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		out, errOut, code := h1.cli(t, "logs", "talker", "--tail", "5")
		if code != 0 || !strings.Contains(out, "talker.0/talker | hello orch") {
			return fmt.Errorf("orch logs: exit %d, %q %q", code, out, errOut)
		}
		return nil
	})
	if _, errOut, code := ws[1].cli(t, "logs", "talker"); code == 0 || !strings.Contains(errOut, "no replica of talker runs on this node") {
		t.Errorf("orch logs on a node without the replica: exit %d, %q", code, errOut)
	}
	mustCLI(t, h1.node, "service", "rm", "talker")

	step("SIGKILL the agent and restart it: same containers, same PIDs, no restarts")
	before := victim.taskPIDs(t)
	if err := victim.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.startAgent(t)
	allSee(t, 20*time.Second, ns, statusMap("alive", ns...))
	tasksUntil(t, h1.node, "web", 10*time.Second, allRunningOn(3, true))
	if after := victim.taskPIDs(t); !mapsEqual(before, after) {
		t.Errorf("containers after the agent restart: %v, before: %v", after, before)
	}

	step("update of env rolls one replica at a time")
	mustCLI(t, h1.node, "service", "update", "web", "--env-add", "V=2")
	info, err := h1.client().GetService(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	maxDown := 0
	lab.Eventually(t, 60*time.Second, 50*time.Millisecond, func() error {
		ts, err := tasksOn(t, h1.node, "web")
		if err != nil {
			return err
		}
		down, done := 0, 0
		for _, tk := range ts {
			if tk.State != "running" {
				down++
			}
			if tk.State == "running" && tk.SpecVersion == info.Version {
				done++
			}
		}
		if down > maxDown {
			t.Logf("%d down: %+v", down, ts)
		}
		maxDown = max(maxDown, down)
		if done != 3 {
			return fmt.Errorf("%d of 3 replicas on version %s", done, info.Version)
		}
		return nil
	})
	if maxDown > 1 {
		t.Errorf("%d replicas were down at once during a rolling update with parallelism 1", maxDown)
	}

	step("start-first: the old replica runs until the new one does")
	mustCLI(t, h1.node, "service", "create", "--name", "sf", "--update-order", "start-first", "--constraint", "node.name==h3",
		testimage.DefaultName, "sh", "-c", "exec sleep 100000")
	tasksUntil(t, h1.node, "sf", 20*time.Second, allRunningOn(1, false))
	mustCLI(t, h1.node, "service", "update", "sf", "--env-add", "X=2")
	sfInfo, err := h1.client().GetService(t.Context(), "sf")
	if err != nil {
		t.Fatal(err)
	}
	minUp := 99
	lab.Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		up := 0
		for id := range ws[2].taskPIDs(t) {
			if strings.HasPrefix(id, "sf.") {
				up++
			}
		}
		minUp = min(minUp, up)
		ts, err := tasksOn(t, h1.node, "sf")
		if err != nil {
			return err
		}
		if len(ts) != 1 || ts[0].State != "running" || ts[0].SpecVersion != sfInfo.Version || up != 1 {
			return fmt.Errorf("sf: %+v, %d running containers", ts, up)
		}
		return nil
	})
	if minUp < 1 {
		t.Error("start-first: no sf container ran at some point of the update")
	}
	mustCLI(t, h1.node, "service", "rm", "sf")

	step("scale 3 -> 6 -> 1: containers follow, removed ones are gone")
	mustCLI(t, h1.node, "service", "scale", "web=6")
	tasksUntil(t, h1.node, "web", 20*time.Second, allRunningOn(6, false))
	mustCLI(t, h1.node, "service", "scale", "web=1")
	tasksUntil(t, h1.node, "web", 20*time.Second, allRunningOn(1, false))
	lab.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		total := 0
		for _, w := range ws {
			total += len(w.containers(t))
		}
		if total != 1 {
			return fmt.Errorf("%d containers in containerd across the hosts, want 1", total)
		}
		return nil
	})

	step("stop containerd on a host: its replicas move within 10 s; back: no churn")
	mustCLI(t, h1.node, "service", "scale", "web=3")
	tasksUntil(t, h1.node, "web", 20*time.Second, allRunningOn(3, true))
	down := ws[1]
	if err := down.ctd.Stop(); err != nil {
		t.Fatal(err)
	}
	moved := tasksUntil(t, h1.node, "web", 10*time.Second, func(ts []api.Task) error {
		if err := allRunningOn(3, false)(ts); err != nil {
			return err
		}
		for _, tk := range ts {
			if tk.Node == down.name {
				return fmt.Errorf("web.%d still on %s", tk.Slot, down.name)
			}
		}
		return nil
	})
	if err := down.ctd.Start(); err != nil {
		t.Fatal(err)
	}
	// Back: it becomes eligible again, its stale containers are removed,
	// and nothing moves back.
	lab.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		if n := len(down.containers(t)); n != 0 {
			return fmt.Errorf("%s still has %d stale containers", down.name, n)
		}
		return nil
	})
	after := tasksUntil(t, h1.node, "web", 10*time.Second, allRunningOn(3, false))
	for i := range after {
		if after[i].Node != moved[i].Node {
			t.Errorf("web.%d moved from %s to %s after containerd came back", i, moved[i].Node, after[i].Node)
		}
	}

	step("an image that exists nowhere: ps shows the reason; retries back off")
	ghostEvents := h1.streamEvents(t, "--filter", "type=task", "--filter", "action=unavailable")
	ghostStart := time.Now()
	mustCLI(t, h1.node, "service", "create", "--name", "ghost", "--constraint", "node.name==h1", registryAddr+"/orch/nosuch:1", "sh")
	tasksUntil(t, h1.node, "ghost", 15*time.Second, func(ts []api.Task) error {
		if len(ts) != 1 || ts[0].State != "unavailable" || !strings.Contains(ts[0].Message, "image") {
			return fmt.Errorf("ghost tasks: %+v", ts)
		}
		return nil
	})

	// Retries back off (2 s, 4 s, 8 s, ...): a storm would show dozens.
	time.Sleep(time.Until(ghostStart.Add(10 * time.Second)))
	if n := len(ghostEvents.lines()); n > 5 {
		t.Errorf("%d unavailable events for ghost in 10 s: retries do not back off", n)
	}

	step("pull from a registry: every replica runs the same digest")
	ref, pdigest := startRegistry(t, h1.host)
	mustCLI(t, h1.node, "service", "create", "--name", "pulled", "--replicas", "3", ref, "sh", "-c", "exec sleep 100000")
	tasksUntil(t, h1.node, "pulled", 60*time.Second, allRunningOn(3, true))
	info, err = h1.client().GetService(t.Context(), "pulled")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(info.Spec), ref+"@"+pdigest) {
		t.Errorf("the stored spec does not pin %s to %s: %s", ref, pdigest, info.Spec)
	}
	for _, w := range ws {
		for _, id := range w.containers(t) {
			if !strings.HasPrefix(id, "pulled.") {
				continue
			}
			if out := w.ctr(t, "containers", "info", id); !strings.Contains(out, pdigest) {
				t.Errorf("%s on %s does not run %s", id, w.name, pdigest)
			}
		}
	}

	step("an update that fails to start rolls back when the service says so")
	mustCLI(t, h1.node, "service", "create", "--name", "rb", "--update-failure-action", "rollback", "--constraint", "node.name==h1",
		testimage.DefaultName, "sh", "-c", "exec sleep 100000")
	tasksUntil(t, h1.node, "rb", 20*time.Second, allRunningOn(1, false))
	rbBefore, err := h1.client().GetService(t.Context(), "rb")
	if err != nil {
		t.Fatal(err)
	}
	rbEvents := h1.streamEvents(t, "--filter", "type=service", "--filter", "subject=rb")
	mustCLI(t, h1.node, "service", "update", "rb", "--image", registryAddr+"/orch/nosuch:2")
	lab.Eventually(t, 60*time.Second, 200*time.Millisecond, func() error {
		now, err := h1.client().GetService(t.Context(), "rb")
		if err != nil {
			return err
		}
		if !strings.Contains(string(now.Spec), testimage.DefaultName) || now.Version == rbBefore.Version {
			return fmt.Errorf("rb is at %s: %s", now.Version, now.Spec)
		}
		if !slices.ContainsFunc(rbEvents.lines(), func(l string) bool { return strings.Contains(l, `"action":"rolledback"`) }) {
			return fmt.Errorf("no rolledback event: %q", rbEvents.lines())
		}
		return nil
	})
	tasksUntil(t, h1.node, "rb", 30*time.Second, allRunningOn(1, false))

	step("a replica left behind by a crashed agent is cleaned when it starts")
	mustCLI(t, h1.node, "service", "create", "--name", "orphan", "--constraint", "node.name==h3", testimage.DefaultName, "sh", "-c", "exec sleep 100000")
	tasksUntil(t, h1.node, "orphan", 20*time.Second, allRunningOn(1, false))
	h3 := ws[2]
	if err := h3.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, h1.node, "service", "rm", "orphan")
	if n := countPrefix(h3.containers(t), "orphan."); n != 1 {
		t.Fatalf("h3 has %d orphan containers while its agent is down, want 1", n)
	}
	h3.startAgent(t)
	lab.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		if n := countPrefix(h3.containers(t), "orphan."); n != 0 {
			return fmt.Errorf("h3 still has %d orphan containers", n)
		}
		out, _ := exec.Command("pgrep", "-f", "containerd-shim.*-id orphan\\.").Output()
		if len(strings.TrimSpace(string(out))) > 0 {
			return fmt.Errorf("shims of orphan still run: %s", out)
		}
		return nil
	})

	step("rm: nothing left in containerd on any host")
	mustCLI(t, h1.node, "service", "rm", "web", "ghost", "pulled", "rb")
	lab.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		for _, w := range ws {
			if c := w.containers(t); len(c) > 0 {
				return fmt.Errorf("%s still has containers %v", w.name, c)
			}
			if s := strings.TrimSpace(w.ctr(t, "snapshots", "ls")); strings.Count(s, "\n") > 0 {
				// Only the image's layer snapshots may remain.
				for _, line := range strings.Split(s, "\n")[1:] {
					if strings.HasPrefix(line, "web.") {
						return fmt.Errorf("%s still has snapshot %s", w.name, line)
					}
				}
			}
		}
		return nil
	})
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// unmountUnder lazily unmounts every mount point below dir.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	slices.Sort(points)
	slices.Reverse(points)
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

func countPrefix(ids []string, prefix string) int {
	n := 0
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

// workCluster gives each host of l a private containerd and an agent, h1
// founding the cluster (with h1Flags) and the others joining it by token;
// it waits until all are alive and imports the busybox image on each. The
// replicas' network namespaces (mounts in the agents' data dirs) are
// unmounted at cleanup, also after a failure.
func workCluster(t *testing.T, l *lab.Lab, h1Flags ...string) (ws []*wnode, ns []*node) {
	t.Helper()
	image := testimage.Busybox(t)
	root := l.Host(1).Dir
	t.Cleanup(func() { unmountUnder(t, strings.TrimSuffix(root, "/h1")) })
	for _, h := range l.Hosts() {
		w := &wnode{node: newNode(h, h.Name), ctd: testenv.StartContainerd(t, testenv.ContainerdOptions{NetNS: "/run/netns/" + h.NetNS, Namespace: "orch"})}
		ws = append(ws, w)
		ns = append(ns, w.node)
	}
	ws[0].startAgent(t, h1Flags...)
	token := strings.TrimSpace(mustCLI(t, ws[0].node, "token"))
	for _, w := range ws[1:] {
		w.startAgent(t, "--token", token, "--join", ws[0].host.Addr.String())
	}
	allSee(t, 20*time.Second, ns, statusMap("alive", ns...))
	for _, w := range ws {
		mustCLI(t, w.node, "image", "import", image)
	}
	return ws, ns
}

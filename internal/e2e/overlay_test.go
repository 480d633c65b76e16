package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
	"github.com/orchproject/orch/internal/testimage"
)

var defaultOverlay = netip.MustParsePrefix("10.213.0.0/16")

// TestOverlay runs a service on three hosts, each with its own containerd,
// and checks the overlay end to end: replicas reach each other by address
// across hosts, the kernel holds exactly the expected entries, a failed
// host's entries go and come back, a long transfer survives agent
// restarts, the largest DF packet the derived MTU allows crosses hosts,
// and a node that leaves removes everything it made.
func TestOverlay(t *testing.T) {
	testenv.RequireContainerd(t)
	testenv.RequireCommand(t, "ping", "bridge")
	const mtu = 1400
	l := lab.New(t, lab.Config{Hosts: 3, MTU: mtu})
	t.Cleanup(func() { rootHasNoOrchDevices(t) })
	ws, ns := workCluster(t, l)
	h1, h3 := ws[0], ws[2]
	step := func(name string) { t.Logf("step: %s", name) }

	step("every host holds exactly its devices and one route, neighbour and FDB entry per peer")
	waitOverlay(t, 20*time.Second, ns, mtu)
	ms, err := h1.members(t)
	if err != nil {
		t.Fatal(err)
	}
	subnets := map[string]netip.Prefix{}
	for _, m := range ms {
		p := netip.MustParsePrefix(m.Subnet)
		for other, q := range subnets {
			if q.Overlaps(p) {
				t.Errorf("%s and %s claim overlapping subnets %v, %v", m.Name, other, p, q)
			}
		}
		subnets[m.Name] = p
	}

	step("a 3-replica httpd service: each replica has an address of its node's subnet")
	mustCLI(t, h1.node, "service", "create", "--name", "web", "--replicas", "3", testimage.DefaultName, "httpd", "-f", "-p", "8080", "-h", "/www")
	tasks := tasksUntil(t, h1.node, "web", 20*time.Second, allRunningWithAddr(3))
	addrs := map[string]netip.Addr{} // node → replica address
	for _, tk := range tasks {
		a := netip.MustParseAddr(tk.Addr)
		if !subnets[tk.Node].Contains(a) {
			t.Errorf("web.%d on %s has %v, outside the node's subnet %v", tk.Slot, tk.Node, a, subnets[tk.Node])
		}
		addrs[tk.Node] = a
	}
	if out := mustCLI(t, h1.node, "service", "ps", "web"); !strings.Contains(out, "ADDRESS") || !strings.Contains(out, tasks[0].Addr) {
		t.Errorf("service ps does not show addresses:\n%s", out)
	}

	step("from inside each replica, wget of every other replica's address succeeds")
	reps := map[string]replicaInfo{}
	for _, w := range ws {
		rs := w.replicasOf(t, "web")
		if len(rs) != 1 {
			t.Fatalf("%s runs %d web replicas, want 1", w.name, len(rs))
		}
		reps[w.name] = rs[0]
		if rs[0].Addr != addrs[w.name] {
			t.Errorf("%s: container label says %v, task record %v", w.name, rs[0].Addr, addrs[w.name])
		}
	}
	for _, from := range ws {
		for _, to := range ws {
			if from == to {
				continue
			}
			url := fmt.Sprintf("http://%s:8080/", addrs[to.name])
			out, err := from.execIn(t, reps[from.name].Container, "timeout", "5", "wget", "-q", "-O", "-", url)
			if err != nil || !strings.Contains(out, testimage.IndexHTML) {
				t.Errorf("wget %s from the replica on %s: %v: %q", url, from.name, err, out)
			}
		}
		// And /etc/resolv.conf points at the node's gateway with the
		// search domain.
		out, err := from.execIn(t, reps[from.name].Container, "cat", "/etc/resolv.conf")
		gw := subnets[from.name].Addr().Next()
		if err != nil || !strings.Contains(out, "nameserver "+gw.String()) || !strings.Contains(out, "search svc.orch") {
			t.Errorf("resolv.conf in the replica on %s: %v: %q", from.name, err, out)
		}
	}

	step("the largest DF ping the derived MTU allows crosses hosts; one byte more does not")
	payload := mtu - 50 - 28
	if err := pingDF(t, reps["h1"].NetNS, addrs["h2"], payload); err != nil {
		t.Errorf("replica h1 → h2: %v", err)
	}
	if err := pingDF(t, reps["h1"].NetNS, addrs["h2"], payload+1); err == nil {
		t.Errorf("replica h1 → h2 with %d bytes and DF set: want a failure (MTU %d)", payload+1, mtu-50)
	}

	step("a long transfer between replicas on h1 and h2 survives restarts of both agents")
	transfer := startTransfer(t, reps["h2"].NetNS, addrs["h2"], reps["h1"].NetNS, 8*time.Second)
	time.Sleep(time.Second)
	for _, w := range ws[:2] {
		if err := w.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if _, err := w.proc.Wait(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		w.startAgent(t)
	}
	if err := transfer.wait(30 * time.Second); err != nil {
		t.Errorf("transfer across agent restarts: %v", err)
	}
	waitOverlay(t, 20*time.Second, ns, mtu)

	step("kill host 3 (agent, containerd, link): its entries leave h1 and h2")
	evs := h1.streamEvents(t, "--filter", "type=network")
	if err := h3.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := h3.ctd.Kill(); err != nil {
		t.Fatal(err)
	}
	l.Isolate(t, h3.host)
	lab.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error { return wantStatusOf(t, h1.node, "h3", "failed") })
	waitOverlay(t, 10*time.Second, ns[:2], mtu)
	lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		for _, line := range evs.lines() {
			if strings.Contains(line, `"action":"peer-removed"`) && strings.Contains(line, `"subject":"h3"`) {
				return nil
			}
		}
		return fmt.Errorf("no network peer-removed h3 event on h1: %q", evs.lines())
	})

	step("host 3 returns: entries come back everywhere, traffic to it flows")
	l.Heal(t, h3.host)
	if err := h3.ctd.Start(); err != nil {
		t.Fatal(err)
	}
	h3.startAgent(t)
	allSee(t, 30*time.Second, ns, statusMap("alive", ns...))
	waitOverlay(t, 20*time.Second, ns, mtu)
	lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		for _, line := range evs.lines() {
			if strings.Contains(line, `"action":"peer-added"`) && strings.Contains(line, `"subject":"h3"`) {
				return nil
			}
		}
		return fmt.Errorf("no network peer-added h3 event on h1: %q", evs.lines())
	})
	mustCLI(t, h1.node, "service", "create", "--name", "probe", "--constraint", "node.name==h3", testimage.DefaultName, "httpd", "-f", "-p", "8080", "-h", "/www")
	probe := tasksUntil(t, h1.node, "probe", 30*time.Second, func(ts []api.Task) error {
		if len(ts) != 1 || ts[0].State != "running" || ts[0].Addr == "" {
			return fmt.Errorf("probe: %+v", ts)
		}
		return nil
	})
	lab.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		url := fmt.Sprintf("http://%s:8080/", probe[0].Addr)
		out, err := h1.execIn(t, h1.replicasOf(t, "web")[0].Container, "timeout", "3", "wget", "-q", "-O", "-", url)
		if err != nil || !strings.Contains(out, testimage.IndexHTML) {
			return fmt.Errorf("wget %s from h1's replica: %v: %q", url, err, out)
		}
		return nil
	})

	step("orch leave on h3: no orch device or route remains there, nor h3's entries elsewhere")
	mustCLI(t, h3.node, "leave")
	if _, err := h3.proc.Wait(60 * time.Second); err != nil {
		t.Fatalf("agent after leave: %v", err)
	}
	if err := noOrchLeft(t, h3.host, defaultOverlay); err != nil {
		t.Error(err)
	}
	if n := len(h3.containers(t)); n != 0 {
		t.Errorf("h3 still has %d containers after leaving", n)
	}
	lab.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error { return wantStatusOf(t, h1.node, "h3", "left") })
	waitOverlay(t, 10*time.Second, ns[:2], mtu)
}

// transfer is a TCP stream between two network namespaces, sent slowly.
type transfer struct {
	want int
	done chan error
}

// startTransfer sends about 64 KiB every 100 ms for d from a socket opened
// in fromNS to a listener opened in toNS on addr, and checks every byte
// arrives in order.
func startTransfer(t *testing.T, toNS string, addr netip.Addr, fromNS string, d time.Duration) *transfer {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(toNS, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 9000).String())
		return err
	}); err != nil {
		t.Fatalf("listen in the receiving replica: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	var conn net.Conn
	if err := inNetNS(fromNS, func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, 9000).String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial from the sending replica: %v", err)
	}
	chunk := bytes.Repeat([]byte("orch-overlay-transfer-0123456789"), 2048) // 64 KiB
	n := int(d / (100 * time.Millisecond))
	tr := &transfer{want: n * len(chunk), done: make(chan error, 2)}
	go func() {
		defer conn.Close()
		for i := range n {
			if _, err := conn.Write(chunk); err != nil {
				tr.done <- fmt.Errorf("write chunk %d: %w", i, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			tr.done <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(d + 30*time.Second))
		got, err := io.ReadAll(c)
		switch {
		case err != nil:
			tr.done <- fmt.Errorf("read after %d bytes: %w", len(got), err)
		case len(got) != tr.want:
			tr.done <- fmt.Errorf("received %d bytes, want %d", len(got), tr.want)
		case !bytes.Equal(got[:len(chunk)], chunk) || !bytes.Equal(got[len(got)-len(chunk):], chunk):
			tr.done <- fmt.Errorf("received bytes differ from those sent")
		default:
			tr.done <- nil
		}
	}()
	return tr
}

func (tr *transfer) wait(timeout time.Duration) error {
	select {
	case err := <-tr.done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("the transfer did not finish within %s", timeout)
	}
}

// TestOverlaySubnets starts 20 agents at once (no containerd) and checks
// that their subnets end up distinct, each routed by every other host.
func TestOverlaySubnets(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "nsenter", "bridge")
	const n = 20
	l := lab.New(t, lab.Config{Hosts: n, MTU: 1400})
	t.Cleanup(func() { rootHasNoOrchDevices(t) })
	var ns []*node
	for _, h := range l.Hosts() {
		ns = append(ns, newNode(h, h.Name))
	}
	ns[0].start(t, "--profile", "lan")
	ns[0].waitReady(t)
	token := strings.TrimSpace(mustCLI(t, ns[0], "token"))
	for _, nd := range ns[1:] {
		nd.start(t, "--profile", "lan", "--token", token, "--join", ns[0].host.Addr.String())
	}
	allSee(t, 60*time.Second, ns, statusMap("alive", ns...))
	lab.Eventually(t, 60*time.Second, 500*time.Millisecond, func() error {
		seen := map[string]string{}
		for _, nd := range ns {
			ms, err := nd.members(t)
			if err != nil {
				return err
			}
			for _, m := range ms {
				if m.Subnet == "" {
					return fmt.Errorf("%s sees %s without a subnet", nd.name, m.Name)
				}
				if prev, ok := seen[m.Name]; ok && prev != m.Subnet {
					return fmt.Errorf("views differ on %s: %s and %s", m.Name, prev, m.Subnet)
				}
				seen[m.Name] = m.Subnet
			}
		}
		owner := map[string]string{}
		for name, sn := range seen {
			if o, dup := owner[sn]; dup {
				return fmt.Errorf("%s and %s both hold %s", name, o, sn)
			}
			owner[sn] = name
		}
		return nil
	})
	waitOverlay(t, 30*time.Second, ns, 1400)
}

// TestOverlayMTU checks, for an underlay MTU of 1500 and of 1400, that the
// overlay's MTU is derived from it: the largest DF ping that fits crosses
// hosts, one byte more does not. It also checks `orch agent --cleanup`.
func TestOverlayMTU(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip", "nsenter", "ping")
	for _, mtu := range []int{1500, 1400} {
		t.Run(fmt.Sprint(mtu), func(t *testing.T) {
			l := lab.New(t, lab.Config{Hosts: 2, MTU: mtu})
			ns := []*node{newNode(l.Host(1), "h1"), newNode(l.Host(2), "h2")}
			formCluster(t, ns, "--profile", "fast")
			lab.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
				ms, err := ns[0].members(t)
				if err != nil {
					return err
				}
				for _, m := range ms {
					if m.Subnet == "" {
						return fmt.Errorf("%s has no subnet", m.Name)
					}
				}
				return nil
			})
			waitOverlay(t, 20*time.Second, ns, mtu)
			ms, _ := ns[0].members(t)
			var gw2 netip.Addr
			for _, m := range ms {
				if m.Name == "h2" {
					gw2 = netip.MustParsePrefix(m.Subnet).Addr().Next()
				}
			}
			// From h1's host namespace to h2's bridge address: through
			// orchvx on both ends.
			h1ns := "/run/netns/" + l.Host(1).NetNS
			payload := mtu - 50 - 28
			if err := pingDF(t, h1ns, gw2, payload); err != nil {
				t.Errorf("DF ping of %d bytes: %v", payload, err)
			}
			if err := pingDF(t, h1ns, gw2, payload+1); err == nil {
				t.Errorf("DF ping of %d bytes crossed an overlay of MTU %d", payload+1, mtu-50)
			}

			if err := ns[1].proc.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if _, err := ns[1].proc.Wait(15 * time.Second); err != nil {
				t.Fatal(err)
			}
			if err := noOrchLeft(t, l.Host(2), defaultOverlay); err == nil {
				t.Error("a stopped agent (not left) removed its overlay; it must keep it for its replicas")
			}
			out, err := l.Host(2).Command(t.Context(), orchBin(t), "agent", "--cleanup", "--name", "h2", "--data-dir", ns[1].dataDir).CombinedOutput()
			if err != nil {
				t.Fatalf("orch agent --cleanup: %v: %s", err, out)
			}
			if err := noOrchLeft(t, l.Host(2), defaultOverlay); err != nil {
				t.Errorf("after orch agent --cleanup: %v", err)
			}
		})
	}
}

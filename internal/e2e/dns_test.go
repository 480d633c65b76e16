package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
	"github.com/orchproject/orch/internal/testimage"
)

// dig runs dig inside a host and returns its output.
func dig(t *testing.T, h *lab.Host, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	out, err := h.Command(ctx, "dig", append([]string{"+time=2", "+tries=1"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v on %s: %v: %s", args, h.Name, err, out)
	}
	return string(out)
}

// digShort returns the sorted lines of dig +short.
func digShort(t *testing.T, h *lab.Host, args ...string) []string {
	t.Helper()
	out := strings.Fields(dig(t, h, append([]string{"+short"}, args...)...))
	sort.Strings(out)
	return out
}

// hostResolver resolves through the DNS at server, with sockets opened in
// the network namespace at ns.
func hostResolver(ns, server string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var c net.Conn
		err := inNetNS(ns, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, server)
			return err
		})
		return c, err
	}}
}

// TestDNS checks service discovery end to end on three hosts: the names
// from the host (dig) and from inside a replica (busybox nslookup, the bare
// name too), forwarding through an upstream only for local clients, UDP
// truncation and TCP with 60 replicas, and that a failed node's replica
// leaves the answers within 100 ms of the failure reaching the agent.
func TestDNS(t *testing.T) {
	testenv.RequireContainerd(t)
	testenv.RequireCommand(t, "dig", "dnsmasq")
	l := lab.New(t, lab.Config{Hosts: 3, MTU: 1400})
	// An upstream resolver on h1's loopback that knows one name.
	l.Host(1).Start(t, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=127.0.0.1", "--port=5399", "--address=/known.example/192.0.2.7", "--address=/known.example/2001:db8::7", "--log-facility=-")
	ws, _ := workCluster(t, l, "--dns-upstream", "127.0.0.1:5399")
	h1, h2, h3 := ws[0], ws[1], ws[2]
	step := func(name string) { t.Logf("step: %s", name) }

	mustCLI(t, h1.node, "service", "create", "--name", "web", "--replicas", "3", "--port", "http:8080/tcp",
		testimage.DefaultName, "httpd", "-f", "-p", "8080", "-h", "/www")
	tasks := tasksUntil(t, h1.node, "web", 30*time.Second, allRunningWithAddr(3))
	var want []string
	bySlot := map[int]string{}
	byNode := map[string]string{}
	for _, tk := range tasks {
		want = append(want, tk.Addr)
		bySlot[tk.Slot] = tk.Addr
		byNode[tk.Node] = tk.Addr
	}
	sort.Strings(want)

	step("from every host, dig: service, slot, SRV, node and PTR names")
	for _, w := range ws {
		h := w.host
		lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
			if got := digShort(t, h, "@127.0.0.1", "-p", "8600", "web.svc.orch"); !slices.Equal(got, want) {
				return fmt.Errorf("web.svc.orch on %s = %v, want %v", h.Name, got, want)
			}
			return nil
		})
		if got := digShort(t, h, "@127.0.0.1", "-p", "8600", "1.WEB.svc.orch"); !slices.Equal(got, []string{bySlot[1]}) {
			t.Errorf("1.WEB.svc.orch on %s = %v, want [%s]", h.Name, got, bySlot[1])
		}
		srv := dig(t, h, "@127.0.0.1", "-p", "8600", "_http._tcp.web.svc.orch", "SRV")
		for slot, addr := range bySlot {
			target := fmt.Sprintf("%d.web.svc.orch.", slot)
			if !strings.Contains(srv, "8080 "+target) || !strings.Contains(srv, addr) {
				t.Errorf("SRV on %s lacks %s:8080 with its address %s in the additional section:\n%s", h.Name, target, addr, srv)
			}
		}
		if got := digShort(t, h, "@127.0.0.1", "-p", "8600", "h2.node.orch"); !slices.Equal(got, []string{h2.host.Addr.String()}) {
			t.Errorf("h2.node.orch on %s = %v, want %s", h.Name, got, h2.host.Addr)
		}
		if got := digShort(t, h, "@127.0.0.1", "-p", "8600", "-x", bySlot[0]); !slices.Equal(got, []string{"0.web.svc.orch."}) {
			t.Errorf("PTR of %s on %s = %v, want 0.web.svc.orch.", bySlot[0], h.Name, got)
		}
		if out := dig(t, h, "@127.0.0.1", "-p", "8600", "nothere.svc.orch"); !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("nothere.svc.orch on %s is not NXDOMAIN:\n%s", h.Name, out)
		}
	}

	step("inside a replica: busybox nslookup of the full name, the bare name and a slot")
	// busybox applies the search domain only to names without a dot, so
	// the slot is asked by its full name (glibc would try 0.web.svc.orch
	// first: the resolv.conf says ndots:3).
	rep := h2.replicasOf(t, "web")[0]
	for _, name := range []string{"web.svc.orch", "web", "0.web.svc.orch"} {
		out, err := h2.execIn(t, rep.Container, "nslookup", name)
		if err != nil {
			t.Errorf("nslookup %s in a replica: %v: %s", name, err, out)
			continue
		}
		wantAddrs := want
		if name == "0.web.svc.orch" {
			wantAddrs = []string{bySlot[0]}
		}
		for _, a := range wantAddrs {
			if !strings.Contains(out, a) {
				t.Errorf("nslookup %s in a replica lacks %s:\n%s", name, a, out)
			}
		}
	}

	step("forwarding: a name outside the domain through the upstream, for local clients only")
	if got := digShort(t, l.Host(1), "@127.0.0.1", "-p", "8600", "known.example"); !slices.Equal(got, []string{"192.0.2.7"}) {
		t.Errorf("known.example from h1's loopback = %v, want 192.0.2.7", got)
	}
	if out, err := h1.execIn(t, h1.replicasOf(t, "web")[0].Container, "nslookup", "known.example"); err != nil || !strings.Contains(out, "192.0.2.7") {
		t.Errorf("known.example from a replica on h1: %v: %s", err, out)
	}
	info, err := h1.client().Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gw1 := netip.MustParsePrefix(info.Subnet).Addr().Next()
	if out := dig(t, l.Host(2), "@"+gw1.String(), "known.example"); !strings.Contains(out, "status: REFUSED") {
		t.Errorf("known.example from h2 (not local to h1) to h1's gateway: want REFUSED:\n%s", out)
	}
	if got := digShort(t, l.Host(2), "@"+gw1.String(), "web.svc.orch"); !slices.Equal(got, want) {
		t.Errorf("web.svc.orch from h2 to h1's gateway = %v, want %v (names in the domain are answered for all)", got, want)
	}
	if st := mustCLI(t, h1.node, "status"); !strings.Contains(st, "forwarded") || !strings.Contains(st, "REFUSED") {
		t.Errorf("orch status shows no DNS counters:\n%s", st)
	}

	step("60 replicas: UDP without EDNS0 is truncated with TC; TCP returns all 60")
	mustCLI(t, h1.node, "service", "create", "--name", "many", "--replicas", "60", testimage.DefaultName, "sleep", "100000")
	tasksUntil(t, h1.node, "many", 120*time.Second, func(ts []api.Task) error {
		n := 0
		for _, tk := range ts {
			if tk.State == "running" && tk.Addr != "" {
				n++
			}
		}
		if n != 60 {
			return fmt.Errorf("%d of 60 running with an address", n)
		}
		return nil
	})
	lab.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		if got := len(digShort(t, l.Host(1), "@127.0.0.1", "-p", "8600", "+tcp", "many.svc.orch")); got != 60 {
			return fmt.Errorf("many.svc.orch over TCP has %d addresses, want 60", got)
		}
		return nil
	})
	if out := dig(t, l.Host(1), "@127.0.0.1", "-p", "8600", "+noedns", "+ignore", "many.svc.orch"); !strings.Contains(out, " tc") {
		t.Errorf("UDP answer without EDNS0 for 60 replicas is not truncated:\n%s", out)
	}
	mustCLI(t, h1.node, "service", "rm", "many")

	step("a replica that stops leaves its node's answers within 100 ms of the exit reaching the agent")
	mustCLI(t, h1.node, "service", "create", "--name", "stopper", "--replicas", "1", "--constraint", "node.name==h1",
		"--restart-condition", "none", testimage.DefaultName, "sleep", "100000")
	st := tasksUntil(t, h1.node, "stopper", 30*time.Second, func(ts []api.Task) error {
		if len(ts) != 1 || ts[0].State != "running" || ts[0].Addr == "" {
			return fmt.Errorf("stopper: %+v", ts)
		}
		return nil
	})
	h1res := hostResolver("/run/netns/"+l.Host(1).NetNS, "127.0.0.1:8600")
	lag := measureGone(t, h1res, "stopper.svc.orch", st[0].Addr, h1.streamEvents(t, "--filter", "type=task", "--filter", "action=exited"), "stopper.0", func() {
		h1.ctr(t, "tasks", "kill", "--signal", "SIGKILL", h1.replicasOf(t, "stopper")[0].Container)
	})
	t.Logf("stopper.0 exited on h1; its address left h1's answers %s later", lag)

	step("a failed node's replica leaves the answers within 100 ms of the failure reaching h1")
	lag = measureGone(t, h1res, "web.svc.orch", byNode["h3"], h1.streamEvents(t, "--filter", "type=member", "--filter", "action=failed"), "h3", func() {
		if err := h3.proc.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := h3.ctd.Kill(); err != nil {
			t.Fatal(err)
		}
		l.Isolate(t, h3.host)
	})
	t.Logf("h3 failed on h1; its replica left h1's answers %s later", lag)
}

// measureGone polls name through res every few milliseconds while trigger
// runs, waits for an event about subject in evs, and returns how long
// after that event's time addr stopped being answered. It fails the test
// beyond 100 ms.
func measureGone(t *testing.T, res *net.Resolver, name, addr string, evs *eventLog, subject string, trigger func()) time.Duration {
	t.Helper()
	type sample struct {
		at      time.Time
		present bool
	}
	samples := make(chan sample, 100000)
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-stopPoll:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			addrs, err := res.LookupHost(ctx, name)
			cancel()
			if err == nil || strings.Contains(fmt.Sprint(err), "no such host") {
				samples <- sample{time.Now(), slices.Contains(addrs, addr)}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	trigger()
	var eventAt time.Time
	lab.Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, line := range evs.lines() {
			var ev struct {
				Time    time.Time `json:"time"`
				Subject string    `json:"subject"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Subject == subject {
				eventAt = ev.Time
				return nil
			}
		}
		return fmt.Errorf("no event about %s yet", subject)
	})
	time.Sleep(300 * time.Millisecond)
	close(stopPoll)
	<-pollDone
	close(samples)
	var goneAt time.Time
	n := 0
	for s := range samples {
		n++
		if s.present {
			goneAt = time.Time{}
		} else if goneAt.IsZero() {
			goneAt = s.at
		}
	}
	if goneAt.IsZero() {
		t.Fatalf("%s was still answered for %s at the end (%d samples)", addr, name, n)
	}
	lag := goneAt.Sub(eventAt)
	if lag > 100*time.Millisecond {
		t.Errorf("%s left the answers for %s %s after the event; want ≤ 100 ms (%d samples)", addr, name, lag, n)
	}
	return lag
}

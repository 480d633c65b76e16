package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/testenv"
)

// ping sends one echo request from one lab host to addr, waiting 1s for the
// reply. Every destination used in these tests is inside the lab.
func ping(ctx context.Context, from *Host, addr netip.Addr) error {
	out, err := from.Command(ctx, "ping", "-c1", "-W1", addr.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w\n%s", addr, from, err, out)
	}
	return nil
}

// reach fails the test unless from can ping addr within a few seconds. A
// single ping can lose its 1s window to ARP on a loaded machine, or to
// neighbour entries still failing right after a heal; retrying keeps the
// assertion (the path works) without the flakiness.
func reach(t *testing.T, from *Host, addr netip.Addr) {
	t.Helper()
	Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		return ping(t.Context(), from, addr)
	})
}

// fieldAfter returns the token following word in s ("mtu 1500" → "1500").
func fieldAfter(s, word string) string {
	f := strings.Fields(s)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == word {
			return f[i+1]
		}
	}
	return ""
}

// linkMTU reads an interface's MTU with ip, in the namespace cmd runs in.
// Not from /sys/class/net: through nsenter that still shows the root
// namespace's interfaces.
func linkMTU(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	mtu, err := strconv.Atoi(fieldAfter(string(out), "mtu"))
	if err != nil {
		t.Fatalf("no mtu in %q", out)
	}
	return mtu
}

// rootDefaultRoute returns the device and gateway of the root namespace's
// default route, or empty strings if there is none.
func rootDefaultRoute(t *testing.T) (dev, gateway string) {
	t.Helper()
	for _, family := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", family, "route", "show", "default").Output()
		if err != nil {
			t.Fatalf("ip %s route show default: %v", family, err)
		}
		if dev := fieldAfter(string(out), "dev"); dev != "" {
			return dev, fieldAfter(string(out), "via")
		}
	}
	return "", ""
}

func TestLab_Reachability(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t) // before ping: as non-root this skips anyway
	testenv.RequireCommand(t, "ping")
	l := New(t, Config{Hosts: 3})

	hosts := l.Hosts()
	if len(hosts) != 3 {
		t.Fatalf("Hosts() has %d hosts, want 3", len(hosts))
	}
	for i, h := range hosts {
		k := i + 1
		if want := "h" + strconv.Itoa(k); h.Name != want {
			t.Errorf("host %d: Name %q, want %q", k, h.Name, want)
		}
		if want := l.Prefix() + h.Name; h.NetNS != want {
			t.Errorf("host %d: NetNS %q, want %q", k, h.NetNS, want)
		}
		if want := netip.AddrFrom4([4]byte{10, 47, 0, byte(k)}); h.Addr != want {
			t.Errorf("host %d: Addr %v, want %v", k, h.Addr, want)
		}
		if fi, err := os.Stat(h.Dir); err != nil || !fi.IsDir() {
			t.Errorf("host %d: Dir %q is not a directory: %v", k, h.Dir, err)
		}
		if l.Host(k) != h {
			t.Errorf("Host(%d) is not Hosts()[%d]", k, i)
		}
	}

	h1 := l.Host(1)
	for _, h := range hosts[1:] {
		reach(t, h1, h.Addr)
	}

	// Nothing outside the lab is routable. `ip route get` only consults the
	// routing table, so this sends no packet anywhere.
	outside := []string{"8.8.8.8"}
	if _, gw := rootDefaultRoute(t); gw != "" {
		outside = append(outside, gw)
	}
	for _, dst := range outside {
		out, err := h1.Command(t.Context(), "ip", "route", "get", dst).CombinedOutput()
		if err == nil {
			t.Errorf("h1 has a route to %s outside the lab: %s", dst, out)
		}
	}
	out, err := h1.Command(t.Context(), "ip", "route", "show", "default").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("h1 default route: %q, %v; want none", out, err)
	}
}

func TestLab_IsolateHeal(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t) // before ping: as non-root this skips anyway
	testenv.RequireCommand(t, "ping")
	l := New(t, Config{Hosts: 3})
	h1, h2, h3 := l.Host(1), l.Host(2), l.Host(3)
	ctx := t.Context()

	reach(t, h1, h2.Addr)
	reach(t, h2, h3.Addr)

	// Once isolated, a ping cannot succeed: no retries needed.
	l.Isolate(t, h2)
	if err := ping(ctx, h1, h2.Addr); err == nil {
		t.Errorf("h1 reached isolated h2")
	}
	if err := ping(ctx, h2, h3.Addr); err == nil {
		t.Errorf("isolated h2 reached h3")
	}
	reach(t, h1, h3.Addr) // the others still talk

	l.Heal(t, h2)
	reach(t, h1, h2.Addr)
	reach(t, h2, h3.Addr)
}

func TestLab_MTU(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Hosts: 2})
	want := 1500
	if dev, _ := rootDefaultRoute(t); dev != "" {
		want = linkMTU(t, exec.Command("ip", "-o", "link", "show", "dev", dev))
	}
	for _, h := range l.Hosts() {
		if got := linkMTU(t, h.Command(t.Context(), "ip", "-o", "link", "show", "dev", "eth0")); got != want {
			t.Errorf("%s eth0 mtu %d, want %d (the root default-route interface's)", h, got, want)
		}
	}

	l = New(t, Config{Hosts: 1, MTU: 1280})
	if got := linkMTU(t, l.Host(1).Command(t.Context(), "ip", "-o", "link", "show", "dev", "eth0")); got != 1280 {
		t.Errorf("Config.MTU 1280: h1 eth0 mtu %d", got)
	}
}

// namespacesWithPrefix lists the named namespaces that start with prefix.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	all, err := listNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ns := range all {
		if strings.HasPrefix(ns, prefix) {
			out = append(out, ns)
		}
	}
	return out
}

func TestLab_CloseRemovesEverything(t *testing.T) {
	t.Parallel()
	l := New(t, Config{Hosts: 2})
	tracked := l.Host(1).Start(t, "sleep", "1000")

	// A process the lab does not know about, left running in h2 and
	// reparented away from us, as a crashed helper would leave it.
	out, err := l.Host(2).Command(t.Context(), "sh", "-c", "sleep 1000 >/dev/null 2>&1 & echo $!").Output()
	if err != nil {
		t.Fatalf("start stray process: %v", err)
	}
	strayPid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("stray pid %q: %v", out, err)
	}
	stray, _, err := processOwner(strayPid)
	if err != nil {
		t.Fatalf("stray process: %v", err)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ns := namespacesWithPrefix(t, l.Prefix()); len(ns) != 0 {
		t.Errorf("namespaces left after Close: %v", ns)
	}
	if _, err := os.Stat(filepath.Join(markerDir, l.Prefix())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("owner marker left after Close: %v", err)
	}
	if !tracked.Exited() {
		t.Errorf("%s still running after Close", tracked)
	}
	if stray.alive() {
		t.Errorf("stray process %d still running after Close", strayPid)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestLab_SweepsStaleLabs simulates two crashed test processes and checks
// that New removes their labs but not the live lab of this process.
// Not parallel: nothing else in this package creates labs meanwhile.
func TestLab_SweepsStaleLabs(t *testing.T) {
	keep := New(t, Config{Hosts: 1})
	script := filepath.Join(testenv.RepoRoot(t), "scripts", "lab")

	// Both stale labs are built while owned by this process, so that no
	// concurrent sweep (another test binary) tears them down half-built;
	// then their markers are changed to what a crash leaves behind.
	self, _, err := processOwner(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	claim := func() string {
		for {
			p, err := randomPrefix()
			if err != nil {
				t.Fatal(err)
			}
			err = writeMarker(p, self) // fails on any live prefix, keep's included
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	var deadOwner, unmarked string
	if err := withMarkerLock(func() error {
		deadOwner, unmarked = claim(), claim()
		return nil
	}); err != nil {
		t.Fatalf("claim prefixes: %v", err)
	}
	for _, p := range []string{deadOwner, unmarked} {
		t.Cleanup(func() {
			if _, err := runScript(script, "down", "--prefix", p); err != nil {
				t.Error(err)
			}
			releasePrefix(p)
		})
		if _, err := runScript(script, "up", "--prefix", p, "--hosts", "2"); err != nil {
			t.Fatal(err)
		}
	}
	// A process left running in the crashed lab.
	orphan := exec.Command("nsenter", "--net="+netnsPath(deadOwner+"h1"), "--", "sleep", "1000")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orphan.Process.Kill() })
	orphanDone := make(chan error, 1) // written once by the goroutine below
	go func() { orphanDone <- orphan.Wait() }()

	// The crash: the owner of deadOwner is an exited process; the marker
	// of unmarked is gone.
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(markerDir, deadOwner), []byte(owner{pid: exited.Process.Pid, start: 1}.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := releasePrefix(unmarked); err != nil {
		t.Fatal(err)
	}

	New(t, Config{Hosts: 1})

	for _, p := range []string{deadOwner, unmarked} {
		if ns := namespacesWithPrefix(t, p); len(ns) != 0 {
			t.Errorf("stale lab %s not swept: %v", p, ns)
		}
		if _, err := os.Stat(filepath.Join(markerDir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale marker %s not removed: %v", p, err)
		}
	}
	select {
	case err := <-orphanDone:
		if err == nil {
			t.Errorf("orphan in stale lab exited 0, want killed")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("orphan in stale lab %s still running", deadOwner)
	}
	if ns := namespacesWithPrefix(t, keep.Prefix()); len(ns) != 2 {
		t.Errorf("live lab %s: namespaces %v, want switch and h1 untouched", keep.Prefix(), ns)
	}
	if _, err := os.Stat(filepath.Join(markerDir, keep.Prefix())); err != nil {
		t.Errorf("live lab marker: %v", err)
	}
}

func TestNew_ExplicitPrefixOverlappingLiveLab(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t)
	l := New(t, Config{Hosts: 1})
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// "o" is a prefix of every automatic prefix.
		New(ft, Config{Hosts: 1, Prefix: l.Prefix()[:1]})
	}()
	<-done
	if !strings.Contains(ft.fatal, "overlaps") {
		t.Errorf("New with an overlapping prefix: fatal %q, want an overlap error", ft.fatal)
	}
	if ns := namespacesWithPrefix(t, l.Prefix()); len(ns) != 2 {
		t.Errorf("live lab %s: namespaces %v after the rejected New", l.Prefix(), ns)
	}
}

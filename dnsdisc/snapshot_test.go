package dnsdisc

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewSnapshot_Normalises(t *testing.T) {
	a := netip.MustParseAddr
	snap := NewSnapshot([]Service{
		{Name: "Web", Replicas: []Replica{
			{Slot: 2, Addr: a("10.0.0.4")},
			{Slot: 0, Addr: a("::ffff:10.0.0.2")}, // IPv4-mapped: served as A
			{Slot: 2, Addr: a("10.0.0.5")},        // duplicate slot: the first (in slot order) wins
			{Slot: -1, Addr: a("10.0.0.6")},
			{Slot: 3},                          // no address
			{Slot: 4, Addr: a("0.0.0.0")},      // unspecified
			{Slot: 5, Addr: a("fe80::1%eth0")}, // zoned
		}, Ports: []Port{
			{Name: "HTTP", Proto: "TCP", Port: 80},
			{Name: "http", Proto: "tcp", Port: 8080}, // duplicate
			{Name: "dns", Proto: "sctp", Port: 53},
			{Name: "x", Proto: "udp"},
			{Name: "_bad", Proto: "udp", Port: 1},
			{Name: strings.Repeat("p", 63), Proto: "udp", Port: 1},
		}},
		{Name: "web"}, // duplicate name
		{Name: "a.b"},
		{Name: "-x"},
		{Name: "api"},
	}, []Node{
		{Name: "N2", Addr: a("192.168.1.2")},
		{Name: "n1", Addr: a("192.168.1.1")},
		{Name: "n2", Addr: a("192.168.1.3")},
		{Name: "n3"},
		{Name: "n_4", Addr: a("192.168.1.4")},
	})
	var names []string
	for _, s := range snap.Services() {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"api", "web"}) {
		t.Errorf("services %v, want [api web] (sorted, lower-case)", names)
	}
	web := snap.Services()[1]
	want := []Replica{{Slot: 0, Addr: a("10.0.0.2")}, {Slot: 2, Addr: a("10.0.0.4")}}
	if !slices.Equal(web.Replicas, want) {
		t.Errorf("replicas %v, want %v", web.Replicas, want)
	}
	if !slices.Equal(web.Ports, []Port{{Name: "http", Proto: "tcp", Port: 80}}) {
		t.Errorf("ports %v", web.Ports)
	}
	if got := snap.Nodes(); len(got) != 2 || got[0].Name != "n1" || got[1] != (Node{Name: "n2", Addr: a("192.168.1.2")}) {
		t.Errorf("nodes %v, want n1 and the first n2", got)
	}
	if n := len(snap.Skipped()); n != 16 {
		t.Errorf("%d skipped, want 16:\n%s", n, strings.Join(snap.Skipped(), "\n"))
	}
}

func TestSnapshot_Equal(t *testing.T) {
	a, b := testSnapshot(), testSnapshot()
	if !a.Equal(b) || !a.Equal(a) {
		t.Error("equal snapshots differ")
	}
	moved := testServices()
	moved[0].Replicas[1].Node = "n3"
	if a.Equal(NewSnapshot(moved, testNodes())) {
		t.Error("a moved replica is equal")
	}
	if a.Equal(NewSnapshot(testServices(), nil)) || a.Equal(nil) {
		t.Error("unequal snapshots are equal")
	}
}

// TestServer_UpdateSkipsEqual: an equal snapshot keeps the compiled zone.
func TestServer_UpdateSkipsEqual(t *testing.T) {
	s := newTestServer(t, Config{})
	z := s.zone.Load()
	s.Update(testSnapshot())
	if s.zone.Load() != z {
		t.Error("an equal snapshot was compiled again")
	}
	s.Update(NewSnapshot(nil, nil))
	if s.zone.Load() == z {
		t.Error("a new snapshot was not compiled")
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	err := Config{
		Domain:         "bad_domain",
		TTL:            maxTTL + 1,
		NSAddr:         netip.IPv4Unspecified(),
		Upstreams:      []string{"1.1.1.1:53", "[::1]:53", "9.9.9.9", "resolver.example:53", "1.1.1.1:0"},
		ForwardFrom:    []netip.Prefix{{}},
		ForwardTimeout: -time.Second,
	}.Validate()
	for _, want := range []string{`domain "bad_domain"`, "ttl", "ns address", `upstream "resolver.example:53"`, `upstream "1.1.1.1:0"`, "forward from", "forward timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to mention %s", err, want)
		}
	}
	if _, err := New(Config{Domain: "."}); err == nil {
		t.Error("New with the root as domain: no error")
	}
	s, err := New(Config{Domain: "Cluster.Local.", Upstreams: []string{"192.0.2.1", "[2001:db8::1]:5353"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Domain() != "cluster.local." || !slices.Equal(s.cfg.Upstreams, []string{"192.0.2.1:53", "[2001:db8::1]:5353"}) ||
		s.cfg.TTL != DefaultTTL || s.cfg.CacheSize != DefaultCacheSize || s.cfg.ForwardTimeout != DefaultForwardTimeout {
		t.Errorf("normalised config: %+v", s.cfg)
	}
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	content := "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver  2001:db8::53 # v6\n" +
		"nameserver not-an-ip\noptions edns0\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := UpstreamsFromResolvConf(path)
	want := []string{"127.0.0.53:53", "[2001:db8::53]:53", "192.0.2.1:53"} // at most three, as glibc
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	if _, err := UpstreamsFromResolvConf(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist wrapped", err)
	}
}

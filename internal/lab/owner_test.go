package lab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses, as a process may choose.
	stat := "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 0 0 0"
	state, start, err := parseStat([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if state != "S" || start != 987654 {
		t.Errorf("parseStat = %q, %d; want S, 987654", state, start)
	}
	for _, bad := range []string{"", "1 (x S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 nope"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestOwner_RoundTripAndAlive(t *testing.T) {
	t.Parallel()
	self, zombie, err := processOwner(os.Getpid())
	if err != nil || zombie {
		t.Fatalf("processOwner(self) = %v, %v, %v", self, zombie, err)
	}
	got, err := parseOwner([]byte(self.String() + "\n"))
	if err != nil || got != self {
		t.Fatalf("parseOwner(%q) = %v, %v; want %v", self.String(), got, err, self)
	}
	if !self.alive() {
		t.Error("this process is not alive")
	}
	if (owner{pid: self.pid, start: self.start + 1}).alive() {
		t.Error("a recycled PID (other start time) counts as alive")
	}
	for _, bad := range []string{"", "12", "x 1", "0 1", "-3 1", "12 y", "1 2 3"} {
		if _, err := parseOwner([]byte(bad)); err == nil {
			t.Errorf("parseOwner(%q) succeeded", bad)
		}
	}
}

func TestCheckOverlap(t *testing.T) {
	t.Parallel()
	live := []string{"oab12-", "orch-"}
	for _, tt := range []struct {
		prefix string
		ok     bool
	}{
		{"oab13-", true},
		{"orchx-", true},
		{"oab12-", false},
		{"o", false},
		{"oab12-x-", false},
		{"orch", false},
	} {
		if err := checkOverlap(tt.prefix, live); (err == nil) != tt.ok {
			t.Errorf("checkOverlap(%q) = %v, want ok=%v", tt.prefix, err, tt.ok)
		}
	}
}

func TestRandomPrefix(t *testing.T) {
	t.Parallel()
	p, err := randomPrefix()
	if err != nil {
		t.Fatal(err)
	}
	if !prefixRE.MatchString(p) || autoPrefixRE.FindStringSubmatch(p+"h12") == nil || autoPrefixRE.FindStringSubmatch(p+"sw") == nil {
		t.Errorf("randomPrefix %q does not fit the automatic prefix scheme", p)
	}
	if autoPrefixRE.MatchString("orch-h1") {
		t.Error(`the default scripts/lab prefix "orch-" must not look automatic`)
	}
}

func TestConfig_WithDefaults(t *testing.T) {
	t.Parallel()
	got, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Hosts: 3, Subnet: DefaultSubnet, StopGrace: 3 * time.Second}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}

	got, err = Config{Subnet: netip.MustParsePrefix("10.1.2.77/29"), Hosts: 6}.withDefaults()
	if err != nil || got.Subnet != netip.MustParsePrefix("10.1.2.72/29") {
		t.Errorf("subnet /29 with 6 hosts: %v, %v; want masked 10.1.2.72/29", got.Subnet, err)
	}

	_, err = Config{
		Hosts:     7,
		Prefix:    "-bad",
		Subnet:    netip.MustParsePrefix("10.1.2.0/29"),
		MTU:       10,
		StopGrace: -time.Second,
	}.withDefaults()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, frag := range []string{"holds at most 6 hosts", "prefix", "mtu", "stop grace"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q does not mention %q", err, frag)
		}
	}
	if _, err := (Config{Subnet: netip.MustParsePrefix("fd00::/64")}).withDefaults(); err == nil {
		t.Error("IPv6 subnet accepted")
	}
}

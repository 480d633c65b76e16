package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"time"
)

// labTimeout bounds one call of scripts/lab; up of 250 hosts takes a few
// seconds, down waits up to ~5 s for processes to die.
const labTimeout = 2 * time.Minute

// DefaultSubnet is scripts/lab's subnet, used when [Lab.Subnet] is zero.
var DefaultSubnet = netip.MustParsePrefix("10.47.0.0/24")

// Lab drives scripts/lab, the one implementation of the netns topology:
// host K is the namespace Prefix+"hK", with address K in the subnet on
// its eth0, plugged into a bridge in Prefix+"sw". (internal/lab drives the
// same script for tests, but needs a testing.TB.)
type Lab struct {
	// Script is the path of scripts/lab.
	Script string
	// Prefix starts the name of every namespace of the lab; scripts/lab
	// down removes every namespace that starts with it.
	Prefix string
	// Subnet is the lab network. Zero means [DefaultSubnet].
	Subnet netip.Prefix
	// MTU of the lab's veths, in bytes. Zero means scripts/lab's default,
	// the MTU of the root namespace's default-route interface.
	MTU int
	// PinNeighbours makes Up give each host a permanent ARP entry for
	// every other one. All namespaces share one kernel ARP table whose
	// size limit (net.ipv4.neigh.default.gc_thresh3, 1024 by default)
	// counts the dynamic entries of every namespace together; a full mesh
	// of 50 hosts needs 2450, so without this the kernel drops packets
	// ("neighbor table overflow") and gossip probes fail for reasons no
	// real LAN has. Permanent entries are not counted against the limit
	// (Linux 4.19 and later). Only the lab's own namespaces are changed.
	PinNeighbours bool

	up bool // Up was called since the last Down
}

// Up builds a lab of n hosts, replacing any lab with the same prefix,
// and pins their neighbour entries if [Lab.PinNeighbours] says so.
func (l *Lab) Up(ctx context.Context, n int) error {
	args := []string{"up", "--prefix", l.Prefix, "--hosts", strconv.Itoa(n), "--subnet", l.subnet().String()}
	if l.MTU > 0 {
		args = append(args, "--mtu", strconv.Itoa(l.MTU))
	}
	l.up = true // a failed up may have built half of it
	if err := l.do(ctx, args...); err != nil {
		return err
	}
	if l.PinNeighbours {
		return l.pinNeighbours(ctx, n)
	}
	return nil
}

// Down removes the lab and kills every process inside it; it does nothing
// if [Lab.Up] was not called since the last Down. It runs even when ctx
// has ended, since it is the cleanup. Down on a nil Lab does nothing.
func (l *Lab) Down(ctx context.Context) error {
	if l == nil || !l.up {
		return nil
	}
	l.up = false
	return l.do(context.WithoutCancel(ctx), "down", "--prefix", l.Prefix)
}

// Isolate detaches host k's switch port, so that every frame to or from
// it is dropped while both ends keep carrier, as in a partition.
func (l *Lab) Isolate(ctx context.Context, k int) error {
	return l.do(ctx, "isolate", "--prefix", l.Prefix, "h"+strconv.Itoa(k))
}

// Heal attaches host k's switch port again after [Lab.Isolate].
func (l *Lab) Heal(ctx context.Context, k int) error {
	return l.do(ctx, "heal", "--prefix", l.Prefix, "h"+strconv.Itoa(k))
}

// pinNeighbours gives each of hosts 1..n a permanent ARP entry for every
// other one; see [Lab.PinNeighbours].
func (l *Lab) pinNeighbours(ctx context.Context, n int) error {
	macs := make([]string, n+1)
	for k := 1; k <= n; k++ {
		out, err := exec.CommandContext(ctx, "ip", "-n", l.NS(k), "-j", "link", "show", "dev", "eth0").Output()
		if err != nil {
			return fmt.Errorf("read eth0 of %s: %w", l.NS(k), err)
		}
		var links []struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Address == "" {
			return fmt.Errorf("read eth0 of %s: unexpected answer %q", l.NS(k), out)
		}
		macs[k] = links[0].Address
	}
	for k := 1; k <= n; k++ {
		var batch bytes.Buffer
		for j := 1; j <= n; j++ {
			if j != k {
				fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev eth0 nud permanent\n", l.Addr(j), macs[j])
			}
		}
		cmd := exec.CommandContext(ctx, "ip", "-n", l.NS(k), "-batch", "-")
		cmd.Stdin = &batch
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pin neighbours of %s: %w: %s", l.NS(k), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func (l *Lab) do(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, labTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, l.Script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", l.Script, args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) subnet() netip.Prefix {
	if l.Subnet.IsValid() {
		return l.Subnet.Masked()
	}
	return DefaultSubnet
}

// Addr is host k's address.
func (l *Lab) Addr(k int) netip.Addr {
	a := l.subnet().Addr()
	for range k {
		a = a.Next()
	}
	return a
}

// NS is the name of host k's network namespace.
func (l *Lab) NS(k int) string { return l.Prefix + "h" + strconv.Itoa(k) }

// NetNS is the path of host k's network namespace, for nsenter --net.
func (l *Lab) NetNS(k int) string { return NetNSPath(l.NS(k)) }

// NetNSPath is the path of the named network namespace name.
func NetNSPath(name string) string { return "/run/netns/" + name }

package main

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

// labTimeout bounds one call of scripts/lab.
const labTimeout = 2 * time.Minute

// lab drives scripts/lab, the one implementation of the netns topology:
// host K is the namespace PREFIX+"hK" with address K in the subnet.
type lab struct {
	script string
	prefix string
	subnet netip.Prefix
}

// up builds a lab of n hosts, replacing any lab with the same prefix, and
// pins every host's neighbour entries (see pinNeighbours).
func (l *lab) up(ctx context.Context, n int) error {
	if err := l.do(ctx, "up", "--prefix", l.prefix, "--hosts", strconv.Itoa(n), "--subnet", l.subnet.String()); err != nil {
		return err
	}
	return l.pinNeighbours(ctx, n)
}

// pinNeighbours gives every host a permanent ARP entry for every other
// host, as scripts/bench/membership does: all namespaces share one kernel
// ARP table whose limit (gc_thresh3) counts every namespace's dynamic
// entries, and permanent entries are not counted.
func (l *lab) pinNeighbours(ctx context.Context, n int) error {
	macs := make([]string, n+1)
	for k := 1; k <= n; k++ {
		out, err := exec.CommandContext(ctx, "ip", "-n", l.ns(k), "-j", "link", "show", "dev", "eth0").Output()
		if err != nil {
			return fmt.Errorf("read eth0 of %s: %w", l.ns(k), err)
		}
		var links []struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Address == "" {
			return fmt.Errorf("read eth0 of %s: unexpected answer %q", l.ns(k), out)
		}
		macs[k] = links[0].Address
	}
	for k := 1; k <= n; k++ {
		var batch bytes.Buffer
		for j := 1; j <= n; j++ {
			if j != k {
				fmt.Fprintf(&batch, "neigh replace %s lladdr %s dev eth0 nud permanent\n", l.addr(j), macs[j])
			}
		}
		cmd := exec.CommandContext(ctx, "ip", "-n", l.ns(k), "-batch", "-")
		cmd.Stdin = &batch
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("pin neighbours of %s: %w: %s", l.ns(k), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// isolate detaches host k's switch port; heal attaches it again.
func (l *lab) isolate(ctx context.Context, k int) error {
	return l.do(ctx, "isolate", "--prefix", l.prefix, "h"+strconv.Itoa(k))
}

func (l *lab) heal(ctx context.Context, k int) error {
	return l.do(ctx, "heal", "--prefix", l.prefix, "h"+strconv.Itoa(k))
}

// down removes the lab and kills every process inside it. It runs even
// when ctx has ended, since it is the cleanup.
func (l *lab) down(ctx context.Context) error {
	return l.do(context.WithoutCancel(ctx), "down", "--prefix", l.prefix)
}

func (l *lab) do(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, labTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, l.script, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", l.script, args[0], err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// addr is host k's address.
func (l *lab) addr(k int) netip.Addr {
	a := l.subnet.Masked().Addr()
	for range k {
		a = a.Next()
	}
	return a
}

// ns is the name of host k's network namespace; netns its path.
func (l *lab) ns(k int) string    { return l.prefix + "h" + strconv.Itoa(k) }
func (l *lab) netns(k int) string { return "/run/netns/" + l.ns(k) }

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/orchproject/orch/scripts/bench/internal/benchkit"
)

// serfRPCAddr is where each stock serf agent serves RPC: loopback inside
// its own host namespace, reached by dialing from inside that namespace.
const serfRPCAddr = "127.0.0.1:7373"

// serfDriver runs stock `serf agent`s with the lan profile and a shared
// gossip key (orch always encrypts, so serf does too); snapshots live in
// dir/hK like orch's. It has no event stream: the precise failure times
// come from the agents' log lines.
type serfDriver struct {
	bin string
	lab *benchkit.Lab
	dir string
	key string

	mu    sync.Mutex
	conns map[int]*serfRPC // per agent, dialed on first use
}

func newSerfDriver(bin string, l *benchkit.Lab, dir string) (*serfDriver, error) {
	// The same kind of key `serf keygen` prints: 32 random bytes, base64.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate serf key: %w", err)
	}
	return &serfDriver{bin: bin, lab: l, dir: dir, key: base64.StdEncoding.EncodeToString(key), conns: map[int]*serfRPC{}}, nil
}

func (d *serfDriver) impl() string        { return "serf" }
func (d *serfDriver) profile() string     { return "lan" }
func (d *serfDriver) stampSource() string { return sourceLog }

func (d *serfDriver) watch(context.Context, int, *recorder) {}

func (d *serfDriver) argv(k int) []string {
	a := []string{d.bin, "agent",
		"-node", "h" + strconv.Itoa(k),
		"-bind", d.lab.Addr(k).String() + ":7946",
		"-rpc-addr", serfRPCAddr,
		"-encrypt", d.key,
		"-snapshot", filepath.Join(d.dir, "h"+strconv.Itoa(k), "serf.snapshot"),
		"-profile", "lan",
		"-log-level", "info",
	}
	if k > 1 {
		a = append(a, "-join", d.lab.Addr(1).String()+":7946")
	}
	return a
}

func (d *serfDriver) ready(ctx context.Context, k int) error {
	_, err := d.conn(ctx, k)
	return err
}

func (d *serfDriver) members(ctx context.Context, k int) (map[string]string, error) {
	c, err := d.conn(ctx, k)
	if err != nil {
		return nil, err
	}
	ms, err := c.members(ctx)
	if err != nil {
		d.mu.Lock()
		if d.conns[k] == c {
			delete(d.conns, k)
		}
		d.mu.Unlock()
		c.close()
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out, nil
}

// conn returns agent k's RPC connection, dialing it if needed.
func (d *serfDriver) conn(ctx context.Context, k int) (*serfRPC, error) {
	d.mu.Lock()
	c := d.conns[k]
	d.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := dialSerfRPC(ctx, d.lab.NetNS(k), serfRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("serf RPC of agent %d: %w", k, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.conns[k]; old != nil {
		c.close()
		return old, nil
	}
	d.conns[k] = c
	return c, nil
}

func (d *serfDriver) close() {
	d.mu.Lock()
	conns := d.conns
	d.conns = map[int]*serfRPC{}
	d.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

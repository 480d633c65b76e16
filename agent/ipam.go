package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sync"

	"github.com/orchproject/orch/internal/atomicfile"
)

// ipam hands out the addresses of this node's subnet to its replicas: one
// per replica ID, never two live holders, saved in the data dir so a
// restarted agent gives adopted replicas the address they already have.
//
// Addresses are handed out round robin from the last one given, so a freed
// address is reused as late as possible: a peer or a DNS cache still
// pointing at a removed replica then reaches nobody rather than its
// successor.
type ipam struct {
	path string

	mu     sync.Mutex
	subnet netip.Prefix
	byID   map[string]netip.Addr
	last   netip.Addr
}

type ipamFile struct {
	Subnet netip.Prefix          `json:"subnet"`
	Addrs  map[string]netip.Addr `json:"addrs"`
	Last   netip.Addr            `json:"last,omitzero"`
}

// loadIPAM reads the allocations of subnet from path; allocations of
// another subnet are dropped (the node moved to a new subnet).
func loadIPAM(path string, subnet netip.Prefix) (*ipam, error) {
	m := &ipam{path: path, subnet: subnet, byID: map[string]netip.Addr{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		return nil, fmt.Errorf("read address allocations: %w", err)
	}
	var f ipamFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if f.Subnet != subnet {
		return m, nil
	}
	for id, a := range f.Addrs {
		if m.usable(a) {
			m.byID[id] = a
		}
	}
	if m.usable(f.Last) {
		m.last = f.Last
	}
	return m, nil
}

// usable reports whether a is a host address of the subnet other than the
// gateway (the first) and the network and broadcast addresses.
func (m *ipam) usable(a netip.Addr) bool {
	if !a.IsValid() || !m.subnet.Contains(a) {
		return false
	}
	first := m.subnet.Masked().Addr()
	return a != first && a != first.Next() && a != broadcast(m.subnet)
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// addr returns the replica's address, allocating one if it has none.
func (m *ipam) addr(id string) (netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.byID[id]; ok {
		return netip.PrefixFrom(a, m.subnet.Bits()), nil
	}
	used := make(map[netip.Addr]bool, len(m.byID))
	for _, a := range m.byID {
		used[a] = true
	}
	size := 1 << (32 - m.subnet.Bits())
	a := m.last
	if !a.IsValid() {
		a = m.subnet.Masked().Addr()
	}
	for range size {
		a = a.Next()
		if !m.subnet.Contains(a) {
			a = m.subnet.Masked().Addr()
			continue
		}
		if m.usable(a) && !used[a] {
			m.byID[id], m.last = a, a
			if err := m.saveLocked(); err != nil {
				delete(m.byID, id)
				return netip.Prefix{}, err
			}
			return netip.PrefixFrom(a, m.subnet.Bits()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("subnet %s: every address is in use (%d replicas)", m.subnet, len(m.byID))
}

// adopt records an address a replica already has (found in its label), so
// it is never handed to another. It fails if another replica holds it.
func (m *ipam) adopt(id string, a netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.byID[id]; ok && cur == a {
		return nil
	}
	for other, b := range m.byID {
		if b == a && other != id {
			return fmt.Errorf("address %s of %s is held by %s", a, id, other)
		}
	}
	if !m.usable(a) {
		return fmt.Errorf("address %s of %s is not usable in %s", a, id, m.subnet)
	}
	m.byID[id] = a
	return m.saveLocked()
}

// retain frees the addresses of replicas not in keep.
func (m *ipam) retain(keep func(id string) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for id := range m.byID {
		if !keep(id) {
			delete(m.byID, id)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return m.saveLocked()
}

// release frees one replica's address.
func (m *ipam) release(id string) error {
	return m.retain(func(other string) bool { return other != id })
}

// held reports whether id has an address.
func (m *ipam) held(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byID[id]
	return ok
}

func (m *ipam) saveLocked() error {
	b, err := json.MarshalIndent(ipamFile{Subnet: m.subnet, Addrs: m.byID, Last: m.last}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(m.path, b, 0o600); err != nil {
		return fmt.Errorf("save address allocations: %w", err)
	}
	return nil
}

// ids lists the replicas holding an address.
func (m *ipam) ids() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.byID))
	for id := range m.byID {
		out = append(out, id)
	}
	return out
}

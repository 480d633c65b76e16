package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/orchproject/orch/internal/netnsthread"
)

// inNetNS runs f in the network namespace at path, for opening sockets
// there (a socket stays in the namespace it was made in).
func inNetNS(path string, f func() error) error { return netnsthread.Do(path, f) }

// dialIn opens a connection from inside the network namespace at path.
func dialIn(ctx context.Context, path, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetNS(path, func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// dnsName is what the benchmark asks every agent for.
const dnsName = "web.svc.orch."

// dnsProber asks one host's agent for web.svc.orch, through Go's own
// resolver with sockets opened inside the host, to 127.0.0.1:8600 there.
// (The DNS library lives in dnsdisc alone: internal/deps.) One goroutine
// at a time.
type dnsProber struct {
	netns  string
	server string
	res    *net.Resolver
}

func newDNSProber(netns, server string) *dnsProber {
	p := &dnsProber{netns: netns, server: server}
	p.res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialIn(ctx, p.netns, network, p.server)
	}}
	return p
}

// query returns the A records of web.svc.orch, sorted; an empty list for
// NXDOMAIN or no data.
func (p *dnsProber) query(timeout time.Duration) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	addrs, err := p.res.LookupNetIP(ctx, "ip4", dnsName)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer in %v", timeout)
		}
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, nil
}

// close is a no-op: the resolver opens a socket per query.
func (p *dnsProber) close() {}

// httpGet does GET http://addr:port/ from inside the network namespace at
// netns, on a fresh connection, and wants a 200.
func httpGet(ctx context.Context, netns string, addr netip.Addr, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := netip.AddrPortFrom(addr, uint16(port)).String()
	c, err := dialIn(ctx, netns, "tcp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n", target); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET http://%s/: %s", target, resp.Status)
	}
	return nil
}

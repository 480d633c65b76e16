package dnsdisc

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// maxNameservers is how many nameserver lines glibc reads (MAXNS); later
// ones are ignored there, and so here.
const maxNameservers = 3

// UpstreamsFromResolvConf returns the nameservers of a resolv.conf file
// as "ip:53" (IPv6 in brackets), in file order, at most three as glibc
// does, for Config.Upstreams. It returns every address, loopback stubs
// such as systemd-resolved's 127.0.0.53 included: those are real
// upstreams. The server itself never forwards to its own listeners, so a
// resolv.conf pointing at this server does not loop; the agent should
// still leave its own addresses out to keep the list meaningful. Lines
// that do not parse are skipped; a file without nameserver lines gives
// an empty list (glibc would then use 127.0.0.1; we do not guess).
func UpstreamsFromResolvConf(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resolver config: %w", err)
	}
	return parseResolvConf(b), nil
}

// parseResolvConf is UpstreamsFromResolvConf on the file's contents.
func parseResolvConf(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() && len(out) < maxNameservers {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue // comments (# or ;) and other options
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.IsUnspecified() {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53).String())
	}
	return out
}

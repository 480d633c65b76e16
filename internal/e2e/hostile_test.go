package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

// TestHostileInput throws junk at a running three-host cluster from one
// of its own hosts and from the node's local API, all at once: random
// datagrams and streams on the gossip port (and connections that send
// nothing), oversized, malformed and truncated API requests, and junk and
// amplification-style queries on the DNS port. The agents keep serving:
// no member is ever reported failed, the junk is counted, writes still
// replicate, DNS still answers small, and the API still works.
func TestHostileInput(t *testing.T) {
	testenv.RequireCommand(t, "dig")
	l := lab.New(t, lab.Config{Hosts: 3})
	var ns []*node
	for _, h := range l.Hosts() {
		ns = append(ns, newNode(h, h.Name))
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	ns[0].start(t, "--profile", "lan", "--metrics", metricsAddr)
	ns[0].waitReady(t)
	token := strings.TrimSpace(mustCLI(t, ns[0], "token"))
	for _, n := range ns[1:] {
		n.start(t, "--profile", "lan", "--token", token, "--join", ns[0].host.Addr.String())
		n.waitReady(t)
	}
	allSee(t, 20*time.Second, ns, statusMap("alive", ns...))
	var streams []*eventLog
	for _, n := range ns {
		streams = append(streams, n.streamEvents(t, "--filter", "type=member"))
	}
	h1, h3 := ns[0], ns[2]
	target := h1.host.Addr.String() + ":7946"
	attacker := netnsPath(h3.host)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	// Gossip port, UDP: random datagrams, some starting with the byte a
	// real memberlist packet starts with.
	wg.Go(func() {
		errs <- inNetNS(attacker, func() error {
			c, err := net.Dial("udp", target)
			if err != nil {
				return err
			}
			defer c.Close()
			for i := range 3000 {
				b := make([]byte, 1+rand.IntN(1400))
				for j := range b {
					b[j] = byte(rand.Uint32())
				}
				if i%3 == 0 {
					b[0] = byte(i % 16) // the message-type bytes memberlist knows
				}
				c.Write(b)
				if i%100 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			return nil
		})
	})
	// Gossip port, TCP: junk streams, a large one, and idle connections.
	wg.Go(func() {
		errs <- inNetNS(attacker, func() error {
			var idle []net.Conn
			defer func() {
				for _, c := range idle {
					c.Close()
				}
			}()
			for i := range 60 {
				c, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return fmt.Errorf("dial gossip port: %w", err)
				}
				switch {
				case i%10 == 0:
					idle = append(idle, c) // says nothing
					continue
				case i == 1:
					c.SetWriteDeadline(time.Now().Add(10 * time.Second))
					c.Write(bytes.Repeat([]byte{0xff}, 4<<20))
				default:
					b := make([]byte, 1+rand.IntN(4096))
					for j := range b {
						b[j] = byte(rand.Uint32())
					}
					c.Write(b)
				}
				c.Close()
			}
			time.Sleep(5 * time.Second) // idle connections held a while
			return nil
		})
	})
	// API: bodies too large, malformed, truncated, headers too large.
	wg.Go(func() {
		cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", h1.socket)
		}}, Timeout: 30 * time.Second}
		huge := strings.Repeat("x", 2<<20)
		cases := []struct {
			method, path, body string
			header             string
			want               int
		}{
			{"POST", "/v1/services", `{"spec":{"name":"` + huge + `"}}`, "", 400},
			{"POST", "/v1/secrets", `{"name":"a","data":"` + huge + `"}`, "", 400},
			{"POST", "/v1/apply", "{\"spec\":", "", 400},
			{"POST", "/v1/services", "\x00\x01\x02junk", "", 400},
			{"PUT", "/v1/services/web", `{"spec":{"name":"web"},"base_version":[1]}`, "", 400},
			{"POST", "/v1/keys/install", `{"key":"` + strings.Repeat("A", 5000) + `"}`, "", 400},
			{"GET", "/v1/info", "", strings.Repeat("h", 2<<20), 431},
		}
		for _, c := range cases {
			req, _ := http.NewRequest(c.method, "http://orch"+c.path, strings.NewReader(c.body))
			if c.header != "" {
				req.Header.Set("X-Junk", c.header)
			}
			resp, err := cl.Do(req)
			if err != nil {
				errs <- fmt.Errorf("%s %s: %w", c.method, c.path, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.want {
				errs <- fmt.Errorf("%s %s with a hostile body: status %d, want %d", c.method, c.path, resp.StatusCode, c.want)
				return
			}
		}
		errs <- nil
	})
	// DNS: junk datagrams and ANY queries for every name the agent knows.
	wg.Go(func() {
		errs <- inNetNS(netnsPath(h1.host), func() error {
			c, err := net.Dial("udp", "127.0.0.1:8600")
			if err != nil {
				return err
			}
			defer c.Close()
			for range 500 {
				b := make([]byte, 1+rand.IntN(600))
				for j := range b {
					b[j] = byte(rand.Uint32())
				}
				c.Write(b)
			}
			return nil
		})
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, q := range []string{"h2.node.orch", "orch", "svc.orch"} {
		out := dig(t, h1.host, "@127.0.0.1", "-p", "8600", "+noedns", "+ignore", q, "ANY")
		m := msgSizeRE.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("ANY %s: no answer:\n%s", q, out)
			continue
		}
		size, _ := strconv.Atoi(m[1])
		if size > 512 || size == 0 {
			t.Errorf("ANY %s over UDP without EDNS: %d bytes, want a minimal answer within 512", q, size)
		}
	}

	// Still serving: nobody was reported failed, the junk was counted,
	// writes replicate and DNS answers.
	for i, s := range streams {
		for _, line := range s.lines() {
			if strings.Contains(line, `"action":"failed"`) || strings.Contains(line, `"action":"leave"`) {
				t.Errorf("%s reported %s during the barrage", ns[i].name, line)
			}
		}
	}
	allSee(t, 10*time.Second, ns, statusMap("alive", ns...))
	// The transport dials on its own goroutine: the dial itself enters
	// h1's namespace.
	inH1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = inNetNS(netnsPath(h1.host), func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}}
	resp, err := inH1.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	metrics := string(b)
	if !strings.Contains(metrics, "orch_gossip_junk_connections_total ") || strings.Contains(metrics, "orch_gossip_junk_connections_total 0\n") {
		t.Errorf("junk connections were not counted:\n%s", grepLines(metrics, "junk"))
	}
	mustCLI(t, h1, "service", "create", "--name", "after", "--replicas", "0", "busybox")
	sameTable(t, 10*time.Second, ns, func(tb table) error {
		if tb["after"] == "" {
			return fmt.Errorf("service after not there")
		}
		return nil
	})
	if got := digShort(t, h3.host, "@127.0.0.1", "-p", "8600", "h1.node.orch"); len(got) != 1 || got[0] != h1.host.Addr.String() {
		t.Errorf("h1.node.orch from h3 after the barrage = %v", got)
	}
}

var msgSizeRE = regexp.MustCompile(`MSG SIZE\s+rcvd:\s+(\d+)`)

func netnsPath(h *lab.Host) string { return "/run/netns/" + h.NetNS }

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

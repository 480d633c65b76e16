package dnsdisc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/miekg/dns"
)

// ErrClosed is returned by Listen after Close.
var ErrClosed = errors.New("dns server closed")

// Server answers DNS for one zone from the last [Snapshot] it was given
// and forwards other names. See the package documentation.
type Server struct {
	cfg   Config
	log   *slog.Logger
	cache *cache // nil: no caching
	stats counters

	// zone is what queries read: swapped whole by Update, never locked.
	zone atomic.Pointer[zone]
	// forwardFrom is Config.ForwardFrom, replaced whole by SetForwardFrom.
	forwardFrom atomic.Pointer[[]netip.Prefix]

	udpClient, tcpClient *dns.Client
	// noBatch makes UDP readers take one datagram at a time even where
	// batching is available; tests set it to cover that path.
	noBatch bool
	// forwards bounds the forwarding goroutines of the UDP listeners; a
	// token per goroutine, capacity maxForwards.
	forwards chan struct{}
	// ctx is cancelled by Close, to abandon forwarded exchanges.
	ctx    context.Context
	cancel context.CancelFunc
	// fwdWG counts the forwarding goroutines.
	fwdWG sync.WaitGroup

	// updateMu serialises Update, so that snap is the compiled one.
	updateMu sync.Mutex
	snap     *Snapshot

	mu        sync.Mutex // guards listeners and closed; held to add to fwdWG
	listeners map[netip.AddrPort]*listener
	closed    bool
}

// New validates cfg and returns a server that answers from an empty
// snapshot (the apex records only) until [Server.Update]. It starts
// nothing; [Server.Listen] does.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dns config: %w", err)
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "dnsdisc"),
		cache:     newCache(cfg.CacheSize),
		udpClient: &dns.Client{Net: "udp", UDPSize: maxUDPSize, Timeout: cfg.ForwardTimeout},
		tcpClient: &dns.Client{Net: "tcp", Timeout: cfg.ForwardTimeout},
		forwards:  make(chan struct{}, maxForwards),
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[netip.AddrPort]*listener),
	}
	s.forwardFrom.Store(&cfg.ForwardFrom)
	s.snap = NewSnapshot(nil, nil)
	s.zone.Store(compile(s.snap, cfg.Domain, cfg.TTL, cfg.NSAddr))
	return s, nil
}

// SetForwardFrom replaces Config.ForwardFrom: the client addresses that may
// have names outside the domain forwarded. The agent calls it when its
// replicas' subnet changes. Safe for concurrent use with queries.
func (s *Server) SetForwardFrom(prefixes []netip.Prefix) {
	p := append([]netip.Prefix(nil), prefixes...)
	s.forwardFrom.Store(&p)
}

// Domain returns the zone's name, lower-cased and fully qualified
// ("orch.").
func (s *Server) Domain() string { return s.cfg.Domain }

// Update makes snap the data every following query is answered from. The
// swap is atomic: a query sees the old zone or the new one, never a mix,
// and the first query after Update returns sees the new one. An Update
// with a snapshot equal to the current one does nothing, so the agent may
// call it on every reconcile pass. snap must not be nil. Safe for
// concurrent use; compiling costs O(records) in the caller's goroutine.
func (s *Server) Update(snap *Snapshot) {
	s.updateMu.Lock()
	defer s.updateMu.Unlock()
	if snap.Equal(s.snap) {
		return
	}
	s.zone.Store(compile(snap, s.cfg.Domain, s.cfg.TTL, s.cfg.NSAddr))
	s.snap = snap
	s.log.Debug("records updated", "services", len(snap.services), "nodes", len(snap.nodes))
}

// Listen starts answering on addr ("ip:port"), over UDP and TCP on the
// same port. It returns once both sockets are bound, with an error if
// either cannot be (the port is taken, the address is not local). Port 0
// picks a free port; [Server.Addrs] tells which. It may be called for
// several addresses. Bind specific addresses rather than a wildcard: a
// socket bound to 0.0.0.0 may answer from another source address than
// the one the client asked.
func (s *Server) Listen(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("listen on %q: want ip:port: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.find(ap) != nil {
		return fmt.Errorf("listen on %s: already listening", ap)
	}
	l, err := bind(ap)
	if err != nil {
		return err
	}
	s.listeners[l.addr] = l
	l.start(s)
	s.log.Info("dns listening", "addr", l.addr.String())
	return nil
}

// find returns the listener asked for or bound at ap. s.mu must be held.
func (s *Server) find(ap netip.AddrPort) *listener {
	if l, ok := s.listeners[ap]; ok {
		return l
	}
	for _, l := range s.listeners {
		if l.asked == ap {
			return l
		}
	}
	return nil
}

// Unlisten stops answering on addr, as passed to Listen or as bound (see
// [Server.Addrs]), and waits until its sockets are closed and its
// goroutines gone. Answers being forwarded for its UDP clients are
// abandoned when they arrive.
func (s *Server) Unlisten(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("unlisten %q: want ip:port: %w", addr, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	s.mu.Lock()
	l := s.find(ap)
	if l != nil {
		delete(s.listeners, l.addr)
	}
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("unlisten %s: not listening there", ap)
	}
	err = l.close()
	s.log.Info("dns stopped listening", "addr", l.addr.String())
	return err
}

// Addrs returns the addresses the server is bound to, sorted.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(s.listeners))
	for ap := range s.listeners {
		out = append(out, ap)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// Close stops every listener, abandons forwarded queries and waits for
// every goroutine the server started. It is idempotent. ServeDNS still
// answers afterwards, but queries it would forward get SERVFAIL.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	s.listeners = map[netip.AddrPort]*listener{}
	s.mu.Unlock()

	s.cancel()
	var errs []error
	for _, l := range ls {
		if err := l.close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.fwdWG.Wait()
	return errors.Join(errs...)
}

// bind opens the UDP and TCP sockets of ap. With port 0 the TCP socket
// takes the port the kernel gave the UDP one, which another process may
// hold for TCP; then it tries again with a new port.
func bind(ap netip.AddrPort) (*listener, error) {
	const attempts = 10
	for i := 0; ; i++ {
		udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return nil, fmt.Errorf("listen on udp %s: %w", ap, err)
		}
		bound := netip.AddrPortFrom(ap.Addr(), udp.LocalAddr().(*net.UDPAddr).AddrPort().Port())
		tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(bound))
		if err != nil {
			udp.Close()
			if ap.Port() == 0 && i < attempts && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return nil, fmt.Errorf("listen on tcp %s: %w", bound, err)
		}
		return &listener{asked: ap, addr: bound, udp: udp, tcp: tcp, conns: make(map[net.Conn]struct{})}, nil
	}
}

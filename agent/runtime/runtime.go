// Package runtime runs replicas in containerd. It is the only orch package
// that imports containerd.
//
// A replica is a group of containers that share one network namespace,
// which the runtime creates and owns (a bind-mounted netns under
// Config.StateDir, loopback up), so a container that restarts keeps its
// neighbours on 127.0.0.1 and the overlay can later plug a veth into it.
// Every container carries labels naming its service, slot, replica, spec
// version and restart count, so the runtime can rebuild its whole view
// from containerd alone: an agent that restarts adopts what runs.
//
// All methods are safe for concurrent use and may block on containerd up
// to their context's deadline. Errors wrap containerd's; ErrNotFound and
// ErrUnavailable classify the ones callers branch on.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// Defaults.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "orch"
	DefaultSnapshotter = "overlayfs"
	// DefaultStopGrace is how long a container has between SIGTERM and
	// SIGKILL when a replica is stopped.
	DefaultStopGrace = 10 * time.Second
)

var (
	// ErrNotFound means the replica, container or image does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means containerd cannot be reached.
	ErrUnavailable = errors.New("containerd unavailable")
)

// Config configures a [Runtime].
type Config struct {
	// Address is containerd's socket. Default DefaultAddress.
	Address string
	// Namespace is the containerd namespace orch works in, kept apart from
	// other users of the same containerd. Default "orch".
	Namespace string
	// Snapshotter for container root file systems. Default "overlayfs".
	Snapshotter string
	// InsecureRegistries are registry hosts (host:port) reached over plain
	// HTTP instead of HTTPS.
	InsecureRegistries []string
	// AuthFile is a JSON file of registry credentials (see RegistryAuth);
	// empty means anonymous pulls.
	AuthFile string
	// StateDir holds the replicas' network namespaces and container logs.
	// Required.
	StateDir string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("state dir: required"))
	}
	return errors.Join(errs...)
}

// Runtime is orch's view of one containerd.
type Runtime struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	client *client.Client // nil until the first successful connect

	secretsMu sync.Mutex // serializes mounting the secrets tmpfs
}

// New validates cfg. It does not connect: containerd may start later, and
// every method connects on demand.
func New(cfg Config) (*Runtime, error) {
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = DefaultSnapshotter
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("runtime config: %w", err)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{netnsDir(cfg.StateDir), logDir(cfg.StateDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	return &Runtime{cfg: cfg, log: lg.With("component", "runtime")}, nil
}

func netnsDir(state string) string { return filepath.Join(state, "netns") }
func logDir(state string) string   { return filepath.Join(state, "logs") }

// conn returns a connected client and a context in orch's namespace.
func (r *Runtime) conn(ctx context.Context) (*client.Client, context.Context, error) {
	ctx = namespaces.WithNamespace(ctx, r.cfg.Namespace)
	r.mu.Lock()
	c := r.client
	r.mu.Unlock()
	if c != nil {
		return c, ctx, nil
	}
	if _, err := os.Stat(r.cfg.Address); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c, err := client.New(r.cfg.Address, client.WithDefaultNamespace(r.cfg.Namespace), client.WithTimeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: connect to %s: %v", ErrUnavailable, r.cfg.Address, err)
	}
	r.mu.Lock()
	if r.client == nil {
		r.client = c
	} else {
		c.Close()
		c = r.client
	}
	r.mu.Unlock()
	return c, ctx, nil
}

// Ping checks that containerd answers.
func (r *Runtime) Ping(ctx context.Context) error {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Version(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Close releases the connection. Idempotent; containers keep running.
func (r *Runtime) Close() error {
	r.mu.Lock()
	c := r.client
	r.client = nil
	r.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.Close()
}

// classify translates containerd's errors into the runtime's sentinels.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errdefs.IsNotFound(err):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errdefs.IsUnavailable(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

package runtime

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// maxExecOutput caps what Exec keeps of a command's output.
const maxExecOutput = 4096

// Exec runs argv inside a running container (its process settings: user,
// environment, working directory) and returns the exit code and the first
// 4 KiB of its combined output. When ctx ends first the process is killed
// and ctx's error returned. Health checks use it.
func (r *Runtime) Exec(ctx context.Context, containerID string, argv []string) (int, []byte, error) {
	if len(argv) == 0 {
		return -1, nil, errors.New("exec: empty command")
	}
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return -1, nil, err
	}
	ctr, err := c.LoadContainer(ctx, containerID)
	if err != nil {
		return -1, nil, fmt.Errorf("load container %s: %w", containerID, classify(err))
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return -1, nil, fmt.Errorf("task of %s: %w", containerID, classify(err))
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("spec of %s: %w", containerID, classify(err))
	}
	pspec := *spec.Process
	pspec.Args = argv
	pspec.Terminal = false
	var out capped
	raw := make([]byte, 6)
	rand.Read(raw)
	execID := "exec-" + hex.EncodeToString(raw)
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		return -1, nil, fmt.Errorf("exec in %s: %w", containerID, classify(err))
	}
	defer func() {
		// Delete with a fresh context: ctx may be what ended the command.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		proc.Delete(dctx, client.WithProcessKill)
	}()
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("exec in %s: %w", containerID, classify(err))
	}
	if err := proc.Start(ctx); err != nil {
		return -1, nil, fmt.Errorf("exec in %s: %w", containerID, classify(err))
	}
	select {
	case st := <-statusC:
		code, _, err := st.Result()
		if err != nil {
			return -1, out.bytes(), fmt.Errorf("exec in %s: %w", containerID, classify(err))
		}
		// The output copy ends when the process's pipes close; give it a
		// moment so the result carries what the command printed.
		if io := proc.IO(); io != nil {
			done := make(chan struct{})
			go func() { io.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Second):
			}
		}
		return int(code), out.bytes(), nil
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		proc.Kill(kctx, syscall.SIGKILL)
		return -1, out.bytes(), ctx.Err()
	}
}

// capped is a concurrency-safe writer keeping the first maxExecOutput
// bytes.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := maxExecOutput - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

// ImageHealth is an image's HEALTHCHECK, from its Docker image config.
type ImageHealth struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	// StartInterval is Docker's --start-interval (Docker 25 and later).
	StartInterval time.Duration
	Retries       int
}

// ImageHealthcheck returns the HEALTHCHECK the image declares, nil if it
// declares none. OCI image configs have no such field; Docker's carry it
// under config.Healthcheck, with durations in nanoseconds.
func (r *Runtime) ImageHealthcheck(ctx context.Context, ref string) (*ImageHealth, error) {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	img, err := r.getImage(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	desc, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", ref, classify(err))
	}
	b, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", ref, classify(err))
	}
	return parseImageHealth(b)
}

func parseImageHealth(b []byte) (*ImageHealth, error) {
	var cfg struct {
		Config struct {
			Healthcheck *struct {
				Test          []string `json:"Test"`
				Interval      int64    `json:"Interval"`
				Timeout       int64    `json:"Timeout"`
				StartPeriod   int64    `json:"StartPeriod"`
				StartInterval int64    `json:"StartInterval"`
				Retries       int      `json:"Retries"`
			} `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("decode image config: %w", err)
	}
	h := cfg.Config.Healthcheck
	if h == nil || len(h.Test) == 0 {
		return nil, nil
	}
	return &ImageHealth{
		Test: h.Test, Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout),
		StartPeriod: time.Duration(h.StartPeriod), StartInterval: time.Duration(h.StartInterval), Retries: h.Retries,
	}, nil
}

// RestartContainerNow stops a running container (SIGTERM, SIGKILL after
// grace) and starts it again, counting a restart: what an unhealthy
// container gets.
func (r *Runtime) RestartContainerNow(ctx context.Context, id string, grace time.Duration) error {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return err
	}
	ctr, err := c.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, classify(err))
	}
	if err := r.stopTask(ctx, ctr, grace); err != nil {
		return err
	}
	if err := r.bumpRestarts(ctx, ctr); err != nil {
		return err
	}
	return r.ensureTask(ctx, ctr)
}

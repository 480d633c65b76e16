package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/distribution/reference"
)

// RegistryAuth is the credentials file's format: registry host (as in the
// image reference, e.g. "registry.example:5000") → credentials.
type RegistryAuth map[string]struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// normalize turns a reference such as "busybox" into its full form,
// "docker.io/library/busybox:latest", as containerd names images.
func normalize(ref string) (string, error) {
	n, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return n.String(), nil
}

// SplitDigest returns an image reference without its digest, and the
// digest ("" if the reference has none).
func SplitDigest(ref string) (string, string) {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// resolver resolves references against registries: HTTPS, or plain HTTP for
// Config.InsecureRegistries, with credentials from Config.AuthFile (read at
// each use, so it can change without a restart).
func (r *Runtime) resolver(ctx context.Context) remotes.Resolver {
	insecure := map[string]bool{}
	for _, h := range r.cfg.InsecureRegistries {
		insecure[h] = true
	}
	hosts := func(host string) ([]docker.RegistryHost, error) {
		opts := config.HostOptions{Credentials: r.credentials}
		if insecure[host] {
			opts.DefaultScheme = "http"
		}
		return config.ConfigureHosts(ctx, opts)(host)
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts})
}

func (r *Runtime) credentials(host string) (string, string, error) {
	if r.cfg.AuthFile == "" {
		return "", "", nil
	}
	b, err := os.ReadFile(r.cfg.AuthFile)
	if err != nil {
		return "", "", fmt.Errorf("read registry credentials: %w", err)
	}
	var auth RegistryAuth
	if err := json.Unmarshal(b, &auth); err != nil {
		return "", "", fmt.Errorf("decode %s: %w", r.cfg.AuthFile, err)
	}
	a := auth[host]
	return a.Username, a.Password, nil
}

// Progress is how far a pull has come: bytes of the layers being fetched.
type Progress struct {
	Done, Total int64
}

// progressEvery is how often a pull's progress is reported.
const progressEvery = 200 * time.Millisecond

// PullImage fetches an image from its registry and unpacks it.
func (r *Runtime) PullImage(ctx context.Context, ref string) (Image, error) {
	return r.PullImageProgress(ctx, ref, nil)
}

// PullImageProgress is PullImage that also reports progress to fn (from
// another goroutine, every 200 ms while bytes are being fetched; fn must not
// block). A nil fn reports nothing.
func (r *Runtime) PullImageProgress(ctx context.Context, ref string, fn func(Progress)) (Image, error) {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return Image{}, err
	}
	name, err := normalize(ref)
	if err != nil {
		return Image{}, err
	}
	if fn != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			tick := time.NewTicker(progressEvery)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				sts, err := c.ContentStore().ListStatuses(ctx)
				if err != nil || len(sts) == 0 {
					continue
				}
				var p Progress
				for _, st := range sts {
					p.Done += st.Offset
					p.Total += st.Total
				}
				fn(p)
			}
		}()
	}
	img, err := c.Pull(ctx, name, client.WithPullUnpack, client.WithPullSnapshotter(r.cfg.Snapshotter), client.WithResolver(r.resolver(ctx)))
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", name, classify(err))
	}
	md := img.Metadata()
	r.log.Info("image pulled", "image", md.Name, "digest", md.Target.Digest.String())
	return Image{Name: md.Name, Digest: md.Target.Digest.String(), Size: md.Target.Size, Created: md.CreatedAt}, nil
}

// ResolveDigest returns the digest a reference stands for: the local
// image's if this node has it, else the registry's answer.
func (r *Runtime) ResolveDigest(ctx context.Context, ref string) (string, error) {
	if _, d := SplitDigest(ref); d != "" {
		return d, nil
	}
	c, cctx, err := r.conn(ctx)
	if err != nil {
		return "", err
	}
	name, err := normalize(ref)
	if err != nil {
		return "", err
	}
	if img, err := c.GetImage(cctx, name); err == nil {
		return img.Target().Digest.String(), nil
	} else if !errors.Is(classify(err), ErrNotFound) {
		return "", fmt.Errorf("image %s: %w", name, classify(err))
	}
	_, desc, err := r.resolver(cctx).Resolve(cctx, name)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", name, classify(err))
	}
	return desc.Digest.String(), nil
}

package agent

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/runtime"
)

// Image operations of the API, on this node's containerd.

func (b backend) ImportImage(ctx context.Context, r io.Reader) ([]api.Image, error) {
	if b.a.rt == nil {
		return nil, noRuntime()
	}
	imgs, err := b.a.rt.ImportImage(ctx, r)
	if err != nil {
		return nil, runtimeError(err)
	}
	out := toAPIImages(imgs)
	for _, im := range out {
		b.a.bus.Publish(typeImage, actImported, im.Name, map[string]string{"digest": im.Digest})
	}
	b.a.wake() // replicas waiting for this image can start
	return out, nil
}

func (b backend) PullImage(ctx context.Context, ref string, fn func(api.PullProgress)) (api.Image, error) {
	if b.a.rt == nil {
		return api.Image{}, noRuntime()
	}
	if ref == "" {
		return api.Image{}, api.Errorf(http.StatusBadRequest, "no image reference given")
	}
	var report func(runtime.Progress)
	if fn != nil {
		report = func(p runtime.Progress) { fn(api.PullProgress{Done: p.Done, Total: p.Total}) }
	}
	im, err := b.a.rt.PullImageProgress(ctx, ref, report)
	if err != nil {
		return api.Image{}, runtimeError(err)
	}
	b.a.bus.Publish(typeImage, actPulled, im.Name, map[string]string{"digest": im.Digest})
	b.a.wake()
	return toAPIImages([]runtime.Image{im})[0], nil
}

func (b backend) ListImages(ctx context.Context) ([]api.Image, error) {
	if b.a.rt == nil {
		return nil, noRuntime()
	}
	imgs, err := b.a.rt.Images(ctx)
	if err != nil {
		return nil, runtimeError(err)
	}
	return toAPIImages(imgs), nil
}

func toAPIImages(imgs []runtime.Image) []api.Image {
	out := make([]api.Image, 0, len(imgs))
	for _, im := range imgs {
		out = append(out, api.Image{Name: im.Name, Digest: im.Digest, Size: im.Size, Created: im.Created})
	}
	return out
}

func noRuntime() error {
	return api.Errorf(http.StatusServiceUnavailable, "this agent runs no containers (started with --containerd none)")
}

func runtimeError(err error) error {
	if errors.Is(err, runtime.ErrUnavailable) {
		return api.Errorf(http.StatusServiceUnavailable, "%v", err)
	}
	return api.Errorf(http.StatusBadRequest, "%v", err)
}

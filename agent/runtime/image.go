package runtime

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// Image is an image in orch's containerd namespace.
type Image struct {
	// Name is the reference it is known by, e.g. docker.io/library/busybox:1.36.
	Name string
	// Digest is the manifest (or index) digest: what runs.
	Digest  string
	Size    int64
	Created time.Time
}

// ImportImage imports an OCI or Docker archive (as `docker save` or
// `skopeo copy oci-archive:` write it) and unpacks it for the snapshotter.
func (r *Runtime) ImportImage(ctx context.Context, archive io.Reader) ([]Image, error) {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := c.Import(ctx, archive, client.WithAllPlatforms(false))
	if err != nil {
		return nil, fmt.Errorf("import image archive: %w", classify(err))
	}
	out := make([]Image, 0, len(imgs))
	for _, im := range imgs {
		img := client.NewImage(c, im)
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", im.Name, classify(err))
		}
		out = append(out, Image{Name: im.Name, Digest: im.Target.Digest.String(), Size: im.Target.Size, Created: im.CreatedAt})
		r.log.Info("image imported", "image", im.Name, "digest", im.Target.Digest.String())
	}
	return out, nil
}

// Images lists the images in orch's namespace, sorted by name.
func (r *Runtime) Images(ctx context.Context) ([]Image, error) {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", classify(err))
	}
	out := make([]Image, 0, len(imgs))
	for _, im := range imgs {
		out = append(out, Image{Name: im.Name, Digest: im.Target.Digest.String(), Size: im.Target.Size, Created: im.CreatedAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// getImage finds a local image by reference, unpacking it if needed. A
// reference pinned by digest ("name:tag@sha256:…") matches the local image
// with that digest, whatever it is named.
func (r *Runtime) getImage(ctx context.Context, c *client.Client, ref string) (client.Image, error) {
	name, dgst := SplitDigest(ref)
	var img client.Image
	if dgst != "" {
		imgs, err := c.ImageService().List(ctx, "target.digest=="+dgst)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, classify(err))
		}
		if len(imgs) == 0 {
			return nil, fmt.Errorf("image %s: %w: no local image has digest %s", ref, ErrNotFound, dgst)
		}
		img = client.NewImage(c, imgs[0])
	} else {
		full, err := normalize(name)
		if err != nil {
			return nil, err
		}
		if img, err = c.GetImage(ctx, full); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, classify(err))
		}
	}
	ok, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, classify(err))
	}
	if !ok {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", ref, classify(err))
		}
	}
	return img, nil
}

// Package testimage builds small container images for tests, locally and
// offline: no registry is reachable from CI, so tests import these images
// into a private containerd (see testenv.StartContainerd) with
// `ctr images import`.
//
// The image is an OCI image layout in a tar file (an "oci-archive", what
// `skopeo copy oci-archive:` writes and `ctr images import` reads): the
// files oci-layout and index.json and the blobs under blobs/sha256/. It
// holds one layer with the host's statically linked busybox (Debian's
// busybox-static) as /bin/busybox, a symlink in /bin for every applet that
// binary reports with `busybox --list`, /etc/passwd and /etc/group with
// root and nobody, /tmp (mode 1777) and /www/index.html for `httpd -h /www`.
//
// Every byte is deterministic: fixed modification times, owners and
// sorted entries in both tars, an empty gzip header and JSON from structs
// (map keys sorted by encoding/json). The same options and the same busybox
// binary give the same manifest digest on every run; a new busybox package
// or a Go release that changes compress/flate output gives a new one.
//
// testimage imports only the standard library and internal/testenv. Its
// functions are safe for concurrent use; an image is built once per test
// process and options, and each call writes it to the calling test's
// t.TempDir().
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/testenv"
)

// DefaultName is the image name used when [Options.Name] is empty.
const DefaultName = "docker.io/orch/busybox:test"

// Media types of the blobs, from the OCI image specification.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Annotations on the manifest's entry in index.json. containerd names an
// imported image after annotationImageName; other tools read the tag from
// annotationRefName.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// defaultPath is the PATH of the image unless [Options.Env] sets one; it is
// Docker's default, so every applet (all in /bin) is found.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// IndexHTML is the content of /www/index.html in the image.
const IndexHTML = "<!doctype html>\n<title>orch test image</title>\n<p>hello from orch busybox</p>\n"

// epoch is the modification time of every file and the image's creation
// time: fixed, so that builds are reproducible.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Options describe an image. The zero value is the plain busybox image.
type Options struct {
	// Name is the full image reference stored in index.json, as containerd
	// will list it: domain, path and tag. Empty means [DefaultName].
	Name string

	// Cmd is the image's default command. Nil means ["sh"]; an empty,
	// non-nil slice means none. The image has no entrypoint.
	Cmd []string

	// Env is added to the image's environment, after PATH (a PATH entry
	// here replaces the default one). Entries have the form KEY=VALUE.
	Env []string

	// Healthcheck, if not nil, is the image's Docker HEALTHCHECK test, as in
	// Docker's image config: {"CMD", argv...}, {"CMD-SHELL", "command"} or
	// {"NONE"}. The Health* fields below go with it; zero leaves a field
	// out, which means the consumer's default.
	Healthcheck []string
	// HealthInterval is the time between two checks.
	HealthInterval time.Duration
	// HealthTimeout is how long one check may take.
	HealthTimeout time.Duration
	// HealthStartPeriod is the grace period after start during which
	// failures do not count.
	HealthStartPeriod time.Duration
	// HealthStartInterval is the time between checks during the start
	// period (Docker 25's --start-interval).
	HealthStartInterval time.Duration
	// HealthRetries is how many consecutive failures make the container
	// unhealthy.
	HealthRetries int
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Cmd == nil {
		o.Cmd = []string{"sh"}
	}
	return o
}

// refTag returns the tag of a reference, "latest" if it has none.
func refTag(name string) string {
	name, _, _ = strings.Cut(name, "@") // a digest is not a tag
	if i := strings.LastIndexAny(name, ":/"); i >= 0 && name[i] == ':' {
		return name[i+1:]
	}
	return "latest"
}

// built is one image in the process-wide cache.
type built struct {
	once   sync.Once
	tar    []byte
	digest string
	err    error
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*built{} // key: JSON of the options with defaults
)

// Busybox writes the default busybox image ([Options] zero) as an OCI
// archive into t.TempDir() and returns its path. See [Build].
func Busybox(t testing.TB) string {
	t.Helper()
	path, _ := Build(t, Options{})
	return path
}

// Build writes the image described by opts as an OCI archive (a tar file)
// into t.TempDir() and returns its path and the manifest digest
// ("sha256:…"), which is what `ctr images ls` shows as the image's digest.
// The image is built once per test process for equal options.
//
// Build skips the test if busybox is not on PATH (and fails it under CI,
// like [testenv.RequireCommand]); it fails the test if busybox is not
// statically linked, since the image has no C library.
func Build(t testing.TB, opts Options) (path, digest string) {
	t.Helper()
	testenv.RequireCommand(t, "busybox")
	opts = opts.withDefaults()
	key, err := json.Marshal(opts)
	if err != nil {
		t.Fatalf("encode image options: %v", err)
	}
	cacheMu.Lock()
	b := cache[string(key)]
	if b == nil {
		b = &built{}
		cache[string(key)] = b
	}
	cacheMu.Unlock()
	b.once.Do(func() {
		b.tar, b.digest, b.err = build(opts)
	})
	if b.err != nil {
		t.Fatalf("build image %s: %v", opts.Name, b.err)
	}
	path = filepath.Join(t.TempDir(), "busybox.oci.tar")
	if err := os.WriteFile(path, b.tar, 0o644); err != nil {
		t.Fatalf("write image %s: %v", opts.Name, err)
	}
	return path, b.digest
}

// build produces the OCI archive of opts (with defaults filled) and its
// manifest digest.
func build(opts Options) (archive []byte, digest string, err error) {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		return nil, "", err
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return nil, "", err
	}
	if err := checkStatic(bin); err != nil {
		return nil, "", err
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return nil, "", err
	}
	list, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, "", fmt.Errorf("list applets: %s --list: %w", bin, err)
	}
	layer, diffID, err := buildLayer(exe, strings.Fields(string(list)))
	if err != nil {
		return nil, "", fmt.Errorf("build layer: %w", err)
	}
	return buildArchive(opts, layer, diffID)
}

// checkStatic fails unless the ELF file at path has no program interpreter,
// that is, is statically linked.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("inspect busybox: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run in an image without libc; install busybox-static (scripts/setup does)", path)
		}
	}
	return nil
}

// entry is one file of the layer.
type entry struct {
	name     string // relative, no trailing slash
	typ      byte   // tar.TypeDir, TypeReg or TypeSymlink
	mode     int64
	data     []byte // TypeReg
	linkname string // TypeSymlink
}

// buildLayer returns the gzipped layer tar and the digest of the
// uncompressed tar (the config's diff ID).
func buildLayer(busybox []byte, applets []string) (gz []byte, diffID string, err error) {
	files := []entry{
		{name: "bin", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, data: busybox},
		{name: "dev", typ: tar.TypeDir, mode: 0o755},
		{name: "etc", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{name: "proc", typ: tar.TypeDir, mode: 0o755},
		{name: "root", typ: tar.TypeDir, mode: 0o700},
		{name: "sys", typ: tar.TypeDir, mode: 0o755},
		{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{name: "usr", typ: tar.TypeDir, mode: 0o755},
		{name: "usr/bin", typ: tar.TypeDir, mode: 0o755},
		{name: "var", typ: tar.TypeDir, mode: 0o755},
		{name: "www", typ: tar.TypeDir, mode: 0o755},
		{name: "www/index.html", typ: tar.TypeReg, mode: 0o644, data: []byte(IndexHTML)},
	}
	seen := map[string]bool{}
	for _, a := range applets {
		// Applet names are plain words ("[" and "[[" included); anything
		// else would escape /bin.
		if a == "busybox" || a == "" || strings.ContainsAny(a, "/\x00") || a == "." || a == ".." || seen[a] {
			continue
		}
		seen[a] = true
		files = append(files, entry{name: "bin/" + a, typ: tar.TypeSymlink, mode: 0o777, linkname: "busybox"})
	}
	// Sorted by name: every directory comes before its contents, and the
	// order does not depend on busybox --list.
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		if err := writeEntry(tw, f); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(raw.Bytes())

	var out bytes.Buffer
	// BestSpeed: 8% larger than BestCompression, several times faster
	// (seconds under -race).
	zw, err := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	// The zero Header: no name, no time, OS "unknown", so the compressed
	// bytes depend only on the content.
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), "sha256:" + hex.EncodeToString(sum[:]), nil
}

// writeEntry writes one file with fixed owner and time.
func writeEntry(tw *tar.Writer, f entry) error {
	h := &tar.Header{
		Typeflag: f.typ,
		Name:     f.name,
		Linkname: f.linkname,
		Mode:     f.mode,
		Uname:    "root",
		Gname:    "root",
		ModTime:  epoch,
		Format:   tar.FormatUSTAR,
	}
	switch f.typ {
	case tar.TypeDir:
		h.Name += "/"
	case tar.TypeReg:
		h.Size = int64(len(f.data))
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	if _, err := tw.Write(f.data); err != nil {
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	return nil
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

// platform is the platform of an image.
type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// index is the OCI image index, index.json.
type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// manifest is an OCI image manifest.
type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// imageConfig is an OCI image configuration, with Docker's Healthcheck
// extension in containerConfig.
type imageConfig struct {
	Created      time.Time       `json:"created"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []history       `json:"history"`
}

// containerConfig is the execution part of an image configuration.
type containerConfig struct {
	Env         []string     `json:"Env,omitempty"`
	Entrypoint  []string     `json:"Entrypoint,omitempty"`
	Cmd         []string     `json:"Cmd,omitempty"`
	WorkingDir  string       `json:"WorkingDir,omitempty"`
	Healthcheck *healthcheck `json:"Healthcheck,omitempty"`
}

// healthcheck is Docker's HEALTHCHECK in an image configuration. The
// durations are encoded in nanoseconds, as Docker writes them.
type healthcheck struct {
	Test          []string      `json:"Test"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// rootFS lists the layers by uncompressed digest.
type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

// history is one step of how the image was made.
type history struct {
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

// blob is content addressed by its digest.
type blob struct {
	desc descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{
		desc: descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))},
		data: data,
	}
}

// buildArchive writes config, manifest and index around the layer and
// returns the archive and the manifest digest.
func buildArchive(opts Options, layer []byte, diffID string) ([]byte, string, error) {
	env := []string{defaultPath}
	if slices.ContainsFunc(opts.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = nil
	}
	env = append(env, opts.Env...)
	img := imageConfig{
		Created:      epoch,
		Architecture: runtime.GOARCH, // the host's busybox runs on the host's architecture
		OS:           "linux",
		Config: containerConfig{
			Env:        env,
			Cmd:        opts.Cmd,
			WorkingDir: "/",
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{diffID}},
		History: []history{{Created: epoch, CreatedBy: "orch internal/testimage: busybox-static"}},
	}
	if opts.Healthcheck != nil {
		img.Config.Healthcheck = &healthcheck{
			Test:          opts.Healthcheck,
			Interval:      opts.HealthInterval,
			Timeout:       opts.HealthTimeout,
			StartPeriod:   opts.HealthStartPeriod,
			StartInterval: opts.HealthStartInterval,
			Retries:       opts.HealthRetries,
		}
	}
	cfgJSON, err := json.Marshal(img)
	if err != nil {
		return nil, "", err
	}
	cfg := newBlob(mediaTypeConfig, cfgJSON)
	lay := newBlob(mediaTypeLayer, layer)
	manJSON, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        cfg.desc,
		Layers:        []descriptor{lay.desc},
	})
	if err != nil {
		return nil, "", err
	}
	man := newBlob(mediaTypeManifest, manJSON)
	ref := man.desc
	ref.Annotations = map[string]string{
		annotationImageName: opts.Name,
		annotationRefName:   refTag(opts.Name),
	}
	ref.Platform = &platform{Architecture: img.Architecture, OS: img.OS}
	indexJSON, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{ref}})
	if err != nil {
		return nil, "", err
	}

	files := []entry{
		{name: "blobs", typ: tar.TypeDir, mode: 0o755},
		{name: "blobs/sha256", typ: tar.TypeDir, mode: 0o755},
		{name: "index.json", typ: tar.TypeReg, mode: 0o644, data: indexJSON},
		{name: "oci-layout", typ: tar.TypeReg, mode: 0o644, data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	}
	for _, b := range []blob{cfg, lay, man} {
		files = append(files, entry{
			name: "blobs/sha256/" + strings.TrimPrefix(b.desc.Digest, "sha256:"),
			typ:  tar.TypeReg, mode: 0o644, data: b.data,
		})
	}
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, f := range files {
		if err := writeEntry(tw, f); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), man.desc.Digest, nil
}

package testimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orchproject/orch/internal/lab"
	"github.com/orchproject/orch/internal/testenv"
)

// archiveFile is one entry of a tar, read back.
type archiveFile struct {
	hdr  *tar.Header
	data []byte
}

// readTar returns the entries of a tar in order.
func readTar(t *testing.T, r io.Reader) []archiveFile {
	t.Helper()
	var files []archiveFile
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", h.Name, err)
		}
		files = append(files, archiveFile{h, data})
	}
}

// checkSorted fails unless the entries are sorted by name with the fixed
// time and owner.
func checkSorted(t *testing.T, what string, files []archiveFile) {
	t.Helper()
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(f.hdr.Name, "/")
		if !f.hdr.ModTime.Equal(epoch) || f.hdr.Uid != 0 || f.hdr.Gid != 0 {
			t.Errorf("%s: %s has time %v, owner %d:%d; want %v, 0:0", what, f.hdr.Name, f.hdr.ModTime, f.hdr.Uid, f.hdr.Gid, epoch)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("%s: entries not sorted: %q", what, names)
	}
}

// blobOf returns the blob of desc from the archive, checking its digest
// and size.
func blobOf(t *testing.T, blobs map[string][]byte, desc descriptor) []byte {
	t.Helper()
	hexSum, ok := strings.CutPrefix(desc.Digest, "sha256:")
	if !ok {
		t.Fatalf("digest %q is not sha256", desc.Digest)
	}
	b, ok := blobs["blobs/sha256/"+hexSum]
	if !ok {
		t.Fatalf("no blob for %s %s", desc.MediaType, desc.Digest)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != hexSum {
		t.Errorf("blob %s has digest sha256:%s", desc.Digest, got)
	}
	if int64(len(b)) != desc.Size {
		t.Errorf("blob %s has %d bytes, descriptor says %d", desc.Digest, len(b), desc.Size)
	}
	return b
}

func TestBuild_Structure(t *testing.T) {
	path, digest := Build(t, Options{})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := readTar(t, f)
	checkSorted(t, "archive", files)
	blobs := map[string][]byte{}
	for _, f := range files {
		blobs[f.hdr.Name] = f.data
	}
	if got := string(blobs["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", got)
	}

	var idx index
	if err := json.Unmarshal(blobs["index.json"], &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != mediaTypeIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index.json = %+v", idx)
	}
	ref := idx.Manifests[0]
	if ref.MediaType != mediaTypeManifest || ref.Digest != digest {
		t.Errorf("index entry %s %s, want %s %s", ref.MediaType, ref.Digest, mediaTypeManifest, digest)
	}
	if got := ref.Annotations[annotationImageName]; got != DefaultName {
		t.Errorf("annotation %s = %q, want %q", annotationImageName, got, DefaultName)
	}
	if got := ref.Annotations[annotationRefName]; got != "test" {
		t.Errorf("annotation %s = %q, want the tag %q", annotationRefName, got, "test")
	}

	var man manifest
	if err := json.Unmarshal(blobOf(t, blobs, ref), &man); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if man.SchemaVersion != 2 || man.MediaType != mediaTypeManifest || man.Config.MediaType != mediaTypeConfig ||
		len(man.Layers) != 1 || man.Layers[0].MediaType != mediaTypeLayer {
		t.Fatalf("manifest = %+v", man)
	}
	var cfg imageConfig
	cfgJSON := blobOf(t, blobs, man.Config)
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if bytes.Contains(cfgJSON, []byte("Entrypoint")) || bytes.Contains(cfgJSON, []byte("Healthcheck")) {
		t.Errorf("config has an entrypoint or a healthcheck: %s", cfgJSON)
	}
	if !slices.Equal(cfg.Config.Cmd, []string{"sh"}) || !slices.Equal(cfg.Config.Env, []string{defaultPath}) || cfg.OS != "linux" {
		t.Errorf("config = %s", cfgJSON)
	}

	zr, err := gzip.NewReader(bytes.NewReader(blobOf(t, blobs, man.Layers[0])))
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("layer: %v", err)
	}
	sum := sha256.Sum256(raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != want {
		t.Errorf("diff_ids = %q, want [%s]", cfg.RootFS.DiffIDs, want)
	}

	layer := readTar(t, bytes.NewReader(raw))
	checkSorted(t, "layer", layer)
	byName := map[string]archiveFile{}
	for _, f := range layer {
		byName[strings.TrimSuffix(f.hdr.Name, "/")] = f
	}
	bin, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if f := byName["bin/busybox"]; f.hdr == nil || !bytes.Equal(f.data, host) || f.hdr.Mode != 0o755 {
		t.Error("bin/busybox missing, not the host's busybox, or not mode 0755")
	}
	for _, applet := range []string{"sh", "httpd", "sleep", "wget", "nc", "cat", "echo", "ls", "ps", "env", "true", "false", "id", "hostname", "ip"} {
		f := byName["bin/"+applet]
		if f.hdr == nil || f.hdr.Typeflag != tar.TypeSymlink || f.hdr.Linkname != "busybox" {
			t.Errorf("bin/%s is not a symlink to busybox", applet)
		}
	}
	if f := byName["tmp"]; f.hdr == nil || f.hdr.Typeflag != tar.TypeDir || f.hdr.Mode != 0o1777 {
		t.Errorf("tmp is not a directory with mode 1777")
	}
	for name, want := range map[string]string{
		"etc/passwd":     "root:x:0:0:",
		"etc/group":      "nobody:x:65534:",
		"www/index.html": IndexHTML,
	} {
		if f := byName[name]; f.hdr == nil || !strings.Contains(string(f.data), want) {
			t.Errorf("%s does not contain %q", name, want)
		}
	}
	if !strings.Contains(string(byName["etc/passwd"].data), "nobody:x:65534:65534:") {
		t.Errorf("etc/passwd has no nobody: %q", byName["etc/passwd"].data)
	}
}

func TestBuild_Deterministic(t *testing.T) {
	testenv.RequireCommand(t, "busybox")
	opts := Options{}.withDefaults()
	a, da, err := build(opts)
	if err != nil {
		t.Fatal(err)
	}
	b, db, err := build(opts)
	if err != nil {
		t.Fatal(err)
	}
	if da != db || !bytes.Equal(a, b) {
		t.Errorf("two builds differ: %s and %s", da, db)
	}
	if _, d := Build(t, Options{}); d != da {
		t.Errorf("Build digest %s, build digest %s", d, da)
	}
	// The name lives only in index.json: the manifest is the same.
	if _, d := Build(t, Options{Name: "docker.io/orch/other:v1"}); d != da {
		t.Errorf("another name changed the manifest digest: %s, want %s", d, da)
	}
}

func TestBuild_Options(t *testing.T) {
	_, plain := Build(t, Options{})
	path, digest := Build(t, Options{
		Name:           "docker.io/orch/web:v2",
		Cmd:            []string{"httpd", "-f", "-h", "/www"},
		Env:            []string{"FOO=bar"},
		Healthcheck:    []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/"},
		HealthInterval: 2 * time.Second,
		HealthRetries:  3,
	})
	if digest == plain {
		t.Fatal("options did not change the digest")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs := map[string][]byte{}
	for _, f := range readTar(t, f) {
		blobs[f.hdr.Name] = f.data
	}
	var idx index
	if err := json.Unmarshal(blobs["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if got := idx.Manifests[0].Annotations; got[annotationImageName] != "docker.io/orch/web:v2" || got[annotationRefName] != "v2" {
		t.Errorf("annotations = %v", got)
	}
	var man manifest
	if err := json.Unmarshal(blobOf(t, blobs, idx.Manifests[0]), &man); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Config struct {
			Cmd         []string
			Env         []string
			Healthcheck struct {
				Test     []string
				Interval int64
				Timeout  int64
				Retries  int
			}
		} `json:"config"`
	}
	if err := json.Unmarshal(blobOf(t, blobs, man.Config), &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if !slices.Equal(c.Cmd, []string{"httpd", "-f", "-h", "/www"}) || !slices.Equal(c.Env, []string{defaultPath, "FOO=bar"}) {
		t.Errorf("config Cmd %q, Env %q", c.Cmd, c.Env)
	}
	h := c.Healthcheck
	if !slices.Equal(h.Test, []string{"CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/"}) || h.Interval != int64(2*time.Second) || h.Timeout != 0 || h.Retries != 3 {
		t.Errorf("healthcheck = %+v", h)
	}
}

func TestRefTag(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/orch/busybox:test": "test",
		"localhost:5000/x":            "latest",
		"localhost:5000/x:v1":         "v1",
		"busybox":                     "latest",
		"x@sha256:abc":                "latest",
	} {
		if got := refTag(in); got != want {
			t.Errorf("refTag(%q) = %q, want %q", in, got, want)
		}
	}
}

// ctr runs ctr against c and returns its combined output, failing the test
// on error.
func ctr(t testing.TB, c *testenv.Containerd, args ...string) string {
	t.Helper()
	out, err := c.Ctr(t.Context(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// importImage imports the archive at path and checks that `ctr images ls`
// lists name with digest.
func importImage(t testing.TB, c *testenv.Containerd, path, name, digest string) {
	t.Helper()
	ctr(t, c, "images", "import", "--all-platforms", path)
	checkImage(t, c, name, digest)
}

// checkImage fails unless `ctr images ls` lists name with digest.
func checkImage(t testing.TB, c *testenv.Containerd, name, digest string) {
	t.Helper()
	out := ctr(t, c, "images", "ls")
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == name {
			if f[2] != digest {
				t.Fatalf("image %s has digest %s, want %s", name, f[2], digest)
			}
			return
		}
	}
	t.Fatalf("image %s not listed:\n%s", name, out)
}

// rssKiB returns the resident set size of pid in KiB.
func rssKiB(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var kib int
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
		}
	}
	return kib
}

// TestContainerd_ImportRun imports the image into a private containerd
// and runs it: the whole chain of containerd, shim and runc works under the
// harness on this machine's cgroups and snapshotter.
func TestContainerd_ImportRun(t *testing.T) {
	testenv.RequireContainerd(t)
	path, digest := Build(t, Options{})
	start := time.Now()
	c := testenv.StartContainerd(t, testenv.ContainerdOptions{})
	t.Logf("containerd up in %v (snapshotter %s), RSS %d KiB", time.Since(start).Round(time.Millisecond), c.Snapshotter, rssKiB(t, c.Pid()))

	start = time.Now()
	importImage(t, c, path, DefaultName, digest)
	t.Logf("import in %v", time.Since(start).Round(time.Millisecond))

	for i, run := range []string{"cold", "warm"} {
		start = time.Now()
		out := ctr(t, c, "run", "--rm", DefaultName, fmt.Sprintf("id%d", i+1), "/bin/busybox", "echo", "hello")
		t.Logf("ctr run --rm … echo (%s): %v", run, time.Since(start).Round(time.Millisecond))
		if strings.TrimSpace(out) != "hello" {
			t.Errorf("ctr run echo hello printed %q", out)
		}
	}
	// The image's own command line and files: applets via PATH, /www, /tmp.
	out := ctr(t, c, "run", "--rm", DefaultName, "id3", "sh", "-c", "cat /www/index.html; stat -c %a /tmp; id -un")
	if want := IndexHTML + "1777\nroot\n"; out != want {
		t.Errorf("shell in the image printed %q, want %q", out, want)
	}
	t.Logf("containerd RSS after import and 3 runs: %d KiB", rssKiB(t, c.Pid()))
}

// TestContainerd_InLabHost runs containerd inside a lab host's network
// namespace: a container with host networking sees the host's eth0.
func TestContainerd_InLabHost(t *testing.T) {
	testenv.RequireContainerd(t)
	l := lab.New(t, lab.Config{Hosts: 1})
	h := l.Host(1)
	c := testenv.StartContainerd(t, testenv.ContainerdOptions{NetNS: "/run/netns/" + h.NetNS})
	path, digest := Build(t, Options{})
	importImage(t, c, path, DefaultName, digest)

	out := ctr(t, c, "run", "--rm", "--net-host", DefaultName, "netcheck", "ip", "-4", "addr", "show")
	if !strings.Contains(out, "eth0") || !strings.Contains(out, h.Addr.String()+"/") {
		t.Errorf("ip addr in a host-network container on %s shows no eth0 with %s:\n%s", h.Name, h.Addr, out)
	}
	// Without --net-host the container has a namespace of its own.
	out = ctr(t, c, "run", "--rm", DefaultName, "netcheck2", "cat", "/proc/net/dev")
	if strings.Contains(out, "eth0") {
		t.Errorf("a container without host networking sees eth0:\n%s", out)
	}
}

// TestContainerd_StopStart stops containerd and starts it again: the
// image is still there, and a container started before keeps running and
// is found again.
func TestContainerd_StopStart(t *testing.T) {
	testenv.RequireContainerd(t)
	c := testenv.StartContainerd(t, testenv.ContainerdOptions{})
	path, digest := Build(t, Options{})
	importImage(t, c, path, DefaultName, digest)
	ctr(t, c, "run", "-d", "--null-io", DefaultName, "sleeper", "sleep", "600")

	start := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop in %v", time.Since(start).Round(time.Millisecond))
	// Not ctr: it waits up to 10s for a socket nobody listens on.
	if conn, err := net.Dial("unix", c.Socket); err == nil {
		conn.Close()
		t.Fatal("the socket answers while containerd is stopped")
	}
	start = time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart in %v", time.Since(start).Round(time.Millisecond))
	checkImage(t, c, DefaultName, digest)
	if out := ctr(t, c, "tasks", "ls"); !regexp.MustCompile(`(?m)^sleeper\s+\d+\s+RUNNING`).MatchString(out) {
		t.Errorf("task not running after the restart:\n%s", out)
	}
	if out := ctr(t, c, "run", "--rm", DefaultName, "after", "echo", "again"); strings.TrimSpace(out) != "again" {
		t.Errorf("run after restart printed %q", out)
	}
	// Crash rather than stop: the same holds.
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if out := ctr(t, c, "tasks", "ls"); !strings.Contains(out, "RUNNING") {
		t.Errorf("task not running after a kill and start:\n%s", out)
	}
	// The running task is left for the cleanup, which must remove it.
}

// crashChildEnv selects what TestContainerd_CrashChild does when the test
// binary runs itself: "crash" leaves a running container and blocks until
// killed; "sweep" starts a containerd, which sweeps.
const crashChildEnv = "ORCH_TESTIMAGE_CRASH_CHILD"

// TestContainerd_CrashChild is the child process of
// TestContainerd_CrashCleanup; it skips unless that test runs it.
func TestContainerd_CrashChild(t *testing.T) {
	switch os.Getenv(crashChildEnv) {
	case "crash":
		c := testenv.StartContainerd(t, testenv.ContainerdOptions{})
		path, digest := Build(t, Options{})
		importImage(t, c, path, DefaultName, digest)
		ctr(t, c, "run", "-d", "--null-io", DefaultName, "victim", "sleep", "600")
		fmt.Printf("DIR=%s\nNS=%s\nPID=%d\nREADY\n", c.Dir, c.Namespace, c.Pid())
		<-t.Context().Done() // until SIGKILL
	case "sweep":
		testenv.StartContainerd(t, testenv.ContainerdOptions{})
	default:
		t.Skip("runs only as the child of TestContainerd_CrashCleanup")
	}
}

// TestContainerd_CrashCleanup SIGKILLs a test process that has a
// containerd with a running container and an overlay rootfs mount, and
// checks that the next test process's StartContainerd removes it all.
func TestContainerd_CrashCleanup(t *testing.T) {
	testenv.RequireContainerd(t)
	child := exec.Command(os.Args[0], "-test.run=^TestContainerd_CrashChild$", "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), crashChildEnv+"=crash")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	var outLines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		outLines = append(outLines, sc.Text())
		if sc.Text() == "READY" {
			break
		}
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vals[k] = v
		}
	}
	if vals["DIR"] == "" {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("crash child did not get ready:\n%s\n%s", strings.Join(outLines, "\n"), stderr.String())
	}
	go io.Copy(io.Discard, stdout) // the child must not block on a full pipe
	dir, ns := vals["DIR"], vals["NS"]
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	// What the dead process left: a shim with its container, the rootfs
	// mount, the directory. containerd itself died with its parent.
	var pid int
	fmt.Sscanf(vals["PID"], "%d", &pid)
	lab.Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if running(pid) {
			return fmt.Errorf("containerd pid %d of the killed test still runs", pid)
		}
		return nil
	})
	shims := shimsOf(t, dir)
	if len(shims) == 0 {
		t.Fatal("no shim left behind: the test cannot check the sweep")
	}
	if !mountedUnder(t, dir) {
		t.Fatal("no mount left under the crashed instance: the test cannot check the sweep")
	}

	sweep := exec.Command(os.Args[0], "-test.run=^TestContainerd_CrashChild$", "-test.v", "-test.count=1")
	sweep.Env = append(os.Environ(), crashChildEnv+"=sweep")
	out, err := sweep.CombinedOutput()
	if err != nil {
		t.Fatalf("sweep child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "removing containerd instance "+dir) {
		t.Errorf("sweep child did not report removing %s:\n%s", dir, out)
	}
	for _, p := range shims {
		if running(p) {
			t.Errorf("shim %d still running after the sweep", p)
		}
	}
	if mountedUnder(t, dir) {
		t.Errorf("mounts left under %s after the sweep", dir)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after the sweep: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", ns)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("runc state of %s after the sweep: %v", ns, err)
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns); len(m) > 0 {
		t.Errorf("cgroups after the sweep: %q", m)
	}
	if _, err := os.Stat("/sys/fs/cgroup/" + ns); err == nil {
		t.Errorf("cgroup /sys/fs/cgroup/%s after the sweep", ns)
	}
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// shimsOf returns the PIDs of shims started by the containerd in dir.
func shimsOf(t *testing.T, dir string) []int {
	t.Helper()
	var pids []int
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		argv := strings.Split(string(b), "\x00")
		if strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") && slices.Contains(argv, filepath.Join(dir, "containerd.sock")) {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(m)), "%d", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

// mountedUnder reports whether anything is mounted below dir.
func mountedUnder(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			return true
		}
	}
	return false
}

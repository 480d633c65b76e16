package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// maxSocketPath is the room in sockaddr_un.sun_path, with its NUL.
const maxSocketPath = 108

// WriteContainerdConfig writes dir/config.toml for a private containerd
// with its root, state, temp, plugin directory and sockets under dir, CRI,
// NRI and tracing off, as internal/testenv's StartContainerd does (which
// needs a testing.TB). Start it with `containerd --config CONFIG`; its
// bundles are then under dir/state (see [ReapOptions.ContainerdStates]).
func WriteContainerdConfig(dir string) (config, socket string, err error) {
	for _, d := range []string{"root", "state", "tmp", "plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o711); err != nil {
			return "", "", err
		}
	}
	socket = filepath.Join(dir, "containerd.sock")
	if len(socket)+len(".ttrpc") >= maxSocketPath {
		return "", "", fmt.Errorf("socket path %s too long", socket)
	}
	cfg := fmt.Sprintf(`# written by scripts/bench/internal/benchkit
version = 2
root = %q
state = %q
temp = %q
plugin_dir = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "tmp"), filepath.Join(dir, "plugins"),
		socket, socket+".ttrpc", filepath.Join(dir, "root", "opt"))
	config = filepath.Join(dir, "config.toml")
	return config, socket, os.WriteFile(config, []byte(cfg), 0o644)
}

// WaitContainerd polls `ctr version` against socket until it answers,
// timeout passes, ctx ends or d, the containerd, exits.
func WaitContainerd(ctx context.Context, socket string, d *Daemon, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if d.Exited() {
			return d.ExitError()
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(c, "ctr", "-a", socket, "version").CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		if err := Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("containerd did not answer in %v: %v", timeout, last)
}

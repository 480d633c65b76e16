package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/netns"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// Container labels: the runtime's whole memory lives in them.
const (
	LabelService     = "orch.service"
	LabelSlot        = "orch.slot"
	LabelReplica     = "orch.replica"
	LabelContainer   = "orch.container"
	LabelSpecVersion = "orch.spec-version"
	LabelNetNS       = "orch.netns"
	LabelRestarts    = "orch.restarts"
	LabelImage       = "orch.image-digest"
	LabelAddr        = "orch.addr"
)

// maxIDLen is containerd's limit on identifiers.
const maxIDLen = 76

// ContainerSpec is one container of a replica, in the runtime's terms.
type ContainerSpec struct {
	Name  string
	Image string // a reference of a local image
	// Command replaces the image's entrypoint, Args its cmd (Docker's
	// semantics); nil keeps the image's.
	Command, Args []string
	Env           []string // NAME=VALUE, over the image's
	WorkingDir    string
	User          string
	ReadOnlyRoot  bool
	MemoryBytes   int64 // 0: no limit
	CPUMillis     int64 // 0: no limit
	// Secrets are files in /run/secrets, on tmpfs. Their values are not
	// part of the container's identity: a spec version change (or
	// nothing) replaces a container, never a secret's value.
	Secrets []SecretFile
	// EnvSecrets are variables set from secrets, after Env.
	EnvSecrets []EnvSecret
}

// ReplicaSpec is one replica to run.
type ReplicaSpec struct {
	// Node identifies the node running the replica (the agent passes its
	// node ID, unique per data dir); it is part of the ID, so containerds
	// that share a host's runc state (test labs, two clusters on one
	// machine) never see the same container ID.
	Node        string
	Service     string
	Slot        int
	SpecVersion string
	Containers  []ContainerSpec
	// Network plugs the replica into the node's network; nil leaves it
	// with loopback only. It is not part of the ID: a replica keeps its
	// identity, and the agent recreates one whose address no longer fits.
	Network *Network
}

// Network is how a replica is wired to the node's network.
type Network struct {
	// Addr is the replica's address, recorded in a label.
	Addr netip.Prefix
	// Setup plugs the network namespace at nsPath in. It runs on every
	// StartReplica, before any container starts, so it must be idempotent.
	Setup func(nsPath string) error
	// Hosts and ResolvConf become the containers' /etc/hosts and
	// /etc/resolv.conf (read-only bind mounts of files the runtime keeps
	// beside the replica). Empty keeps the image's.
	Hosts, ResolvConf []byte
}

// ID is the replica's identifier: service, slot and a hash of what its
// containers run. A change that does not touch the containers (a scale,
// a label, a constraint) keeps the replica; one that does makes a new
// replica, which rolling updates start beside or after the old one.
func (s ReplicaSpec) ID() string {
	b, _ := json.Marshal(s.Containers)
	h := sha256.Sum256(append(b, s.Node...))
	return fmt.Sprintf("%s.%d.%s", s.Service, s.Slot, hex.EncodeToString(h[:5]))
}

// ContainerID is the containerd ID of a replica's container.
func ContainerID(replicaID, name string) string { return containerID(replicaID, name) }

// containerID names a container of a replica within containerd's limits.
func containerID(replica, name string) string {
	id := replica + "." + name
	if len(id) <= maxIDLen {
		return id
	}
	h := sha256.Sum256([]byte(id))
	return id[:maxIDLen-17] + "." + hex.EncodeToString(h[:8])
}

// Container states.
const (
	StateCreated = "created" // no task, or a task not started
	StateRunning = "running"
	StateStopped = "stopped" // the process exited
	StatePaused  = "paused"
	StateUnknown = "unknown"
)

// ContainerStatus is what containerd says of one container.
type ContainerStatus struct {
	Name     string
	ID       string
	Image    string // the digest it runs
	State    string
	PID      uint32
	ExitCode uint32
	ExitedAt time.Time
	Restarts int
}

// Replica is a replica as found in containerd.
type Replica struct {
	ID          string
	Service     string
	Slot        int
	SpecVersion string
	NetNS       string
	// Addr is the address the replica was given (label orch.addr);
	// invalid for a replica started without a network.
	Addr       netip.Prefix
	Containers []ContainerStatus
}

// Replicas lists every replica in orch's namespace, from container labels.
func (r *Runtime) Replicas(ctx context.Context) ([]Replica, error) {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := c.Containers(ctx, `labels."`+LabelReplica+`"`)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", classify(err))
	}
	byID := map[string]*Replica{}
	for _, ctr := range cs {
		labels, err := ctr.Labels(ctx)
		if err != nil {
			if errors.Is(classify(err), ErrNotFound) {
				continue // removed meanwhile
			}
			return nil, fmt.Errorf("labels of %s: %w", ctr.ID(), classify(err))
		}
		id := labels[LabelReplica]
		rep, ok := byID[id]
		if !ok {
			slot, _ := strconv.Atoi(labels[LabelSlot])
			rep = &Replica{ID: id, Service: labels[LabelService], Slot: slot, SpecVersion: labels[LabelSpecVersion], NetNS: labels[LabelNetNS]}
			if a, err := netip.ParsePrefix(labels[LabelAddr]); err == nil {
				rep.Addr = a
			}
			byID[id] = rep
		}
		st, err := r.status(ctx, ctr, labels)
		if err != nil {
			return nil, err
		}
		rep.Containers = append(rep.Containers, st)
	}
	out := make([]Replica, 0, len(byID))
	for _, rep := range byID {
		sort.Slice(rep.Containers, func(i, j int) bool { return rep.Containers[i].Name < rep.Containers[j].Name })
		out = append(out, *rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (r *Runtime) status(ctx context.Context, ctr client.Container, labels map[string]string) (ContainerStatus, error) {
	restarts, _ := strconv.Atoi(labels[LabelRestarts])
	st := ContainerStatus{Name: labels[LabelContainer], ID: ctr.ID(), Image: labels[LabelImage], State: StateCreated, Restarts: restarts}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return st, nil
		}
		return st, fmt.Errorf("task of %s: %w", ctr.ID(), classify(err))
	}
	s, err := task.Status(ctx)
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return st, nil
		}
		return st, fmt.Errorf("status of %s: %w", ctr.ID(), classify(err))
	}
	st.PID = task.Pid()
	switch s.Status {
	case client.Running:
		st.State = StateRunning
	case client.Stopped:
		st.State, st.ExitCode, st.ExitedAt = StateStopped, s.ExitStatus, s.ExitTime
	case client.Paused, client.Pausing:
		st.State = StatePaused
	case client.Created:
		st.State = StateCreated
	default:
		st.State = StateUnknown
	}
	return st, nil
}

// StartReplica makes the replica run: it creates what is missing (network
// namespace, containers, tasks) and starts what is not running. Calling it
// on a running replica changes nothing, so it also adopts.
func (r *Runtime) StartReplica(ctx context.Context, spec ReplicaSpec) error {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return err
	}
	id := spec.ID()
	// Images first: a replica whose image is missing leaves nothing behind.
	imgs := make([]client.Image, len(spec.Containers))
	for i, cs := range spec.Containers {
		if imgs[i], err = r.getImage(ctx, c, cs.Image); err != nil {
			return fmt.Errorf("replica %s: %w", id, err)
		}
	}
	nsPath, created, err := r.ensureNetNS(ctx, c, id)
	if err != nil {
		return err
	}
	var files []specs.Mount
	if n := spec.Network; n != nil {
		if n.Setup != nil {
			if err := n.Setup(nsPath); err != nil {
				if created {
					netns.LoadNetNS(nsPath).Remove()
				}
				return fmt.Errorf("replica %s: network: %w", id, err)
			}
		}
		if files, err = r.writeNetFiles(id, n); err != nil {
			return err
		}
	}
	for i, cs := range spec.Containers {
		secrets, err := r.writeSecrets(id, cs)
		if err != nil {
			if created && i == 0 {
				netns.LoadNetNS(nsPath).Remove()
			}
			return fmt.Errorf("replica %s: %w", id, err)
		}
		if err := r.ensureContainer(ctx, c, spec, cs, imgs[i], nsPath, append(slices.Clip(files), secrets...)); err != nil {
			if created && i == 0 {
				// Nothing refers to the new namespace yet.
				netns.LoadNetNS(nsPath).Remove()
			}
			return fmt.Errorf("replica %s: %w", id, err)
		}
	}
	return nil
}

// ensureNetNS returns the replica's network namespace, creating it (with
// loopback up) if no container of the replica names one.
func (r *Runtime) ensureNetNS(ctx context.Context, c *client.Client, replica string) (path string, created bool, err error) {
	cs, err := c.Containers(ctx, `labels."`+LabelReplica+`"==`+strconv.Quote(replica))
	if err != nil {
		return "", false, fmt.Errorf("list containers of %s: %w", replica, classify(err))
	}
	for _, ctr := range cs {
		labels, err := ctr.Labels(ctx)
		if err == nil && labels[LabelNetNS] != "" {
			if _, err := os.Stat(labels[LabelNetNS]); err == nil {
				return labels[LabelNetNS], false, nil
			}
		}
	}
	ns, err := netns.NewNetNS(netnsDir(r.cfg.StateDir))
	if err != nil {
		return "", false, fmt.Errorf("create network namespace for %s: %w", replica, err)
	}
	if err := loopbackUp(ns.GetPath()); err != nil {
		ns.Remove()
		return "", false, fmt.Errorf("network namespace for %s: %w", replica, err)
	}
	return ns.GetPath(), true, nil
}

// writeNetFiles writes the replica's hosts and resolv.conf files and
// returns their mounts.
func (r *Runtime) writeNetFiles(id string, n *Network) ([]specs.Mount, error) {
	dir := filepath.Join(netFilesDir(r.cfg.StateDir), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replica %s: %w", id, err)
	}
	var mounts []specs.Mount
	for _, f := range []struct {
		name, dst string
		data      []byte
	}{{"hosts", "/etc/hosts", n.Hosts}, {"resolv.conf", "/etc/resolv.conf", n.ResolvConf}} {
		if f.data == nil {
			continue
		}
		p := filepath.Join(dir, f.name)
		// Written in place, not renamed: a running container's bind mount
		// holds the inode, and a rename would leave it with the old file.
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return nil, fmt.Errorf("replica %s: %w", id, err)
		}
		mounts = append(mounts, specs.Mount{Destination: f.dst, Type: "bind", Source: p, Options: []string{"rbind", "ro"}})
	}
	return mounts, nil
}

func netFilesDir(stateDir string) string { return filepath.Join(stateDir, "net") }

func (r *Runtime) ensureContainer(ctx context.Context, c *client.Client, spec ReplicaSpec, cs ContainerSpec, img client.Image, nsPath string, files []specs.Mount) error {
	cid := containerID(spec.ID(), cs.Name)
	ctr, err := c.LoadContainer(ctx, cid)
	if err != nil && !errors.Is(classify(err), ErrNotFound) {
		return fmt.Errorf("load container %s: %w", cid, classify(err))
	}
	if ctr == nil {
		labels := map[string]string{
			LabelService:     spec.Service,
			LabelSlot:        strconv.Itoa(spec.Slot),
			LabelReplica:     spec.ID(),
			LabelContainer:   cs.Name,
			LabelSpecVersion: spec.SpecVersion,
			LabelNetNS:       nsPath,
			LabelRestarts:    "0",
			LabelImage:       img.Target().Digest.String(),
		}
		if spec.Network != nil && spec.Network.Addr.IsValid() {
			labels[LabelAddr] = spec.Network.Addr.String()
		}
		ctr, err = c.NewContainer(ctx, cid,
			client.WithSnapshotter(r.cfg.Snapshotter),
			client.WithNewSnapshot(cid, img),
			client.WithNewSpec(append(specOpts(img, spec, cs, nsPath), oci.WithMounts(files))...),
			client.WithContainerLabels(labels),
		)
		if err != nil {
			return fmt.Errorf("create container %s: %w", cid, classify(err))
		}
		r.log.Info("container created", "container", cid, "image", cs.Image, "digest", labels[LabelImage])
	}
	return r.ensureTask(ctx, ctr)
}

// specOpts builds the OCI spec: the image's config, the spec's overrides,
// the replica's network namespace, and the defaults a security-minded user
// expects (no new privileges, containerd's default capability set, the
// default seccomp profile).
func specOpts(img client.Image, spec ReplicaSpec, cs ContainerSpec, nsPath string) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithImageConfig(img)}
	switch {
	case len(cs.Command) > 0:
		opts = append(opts, oci.WithProcessArgs(append(append([]string{}, cs.Command...), cs.Args...)...))
	case len(cs.Args) > 0:
		opts = append(opts, oci.WithImageConfigArgs(img, cs.Args))
	}
	if len(cs.Env) > 0 || len(cs.EnvSecrets) > 0 {
		env := slices.Clip(cs.Env)
		for _, e := range cs.EnvSecrets {
			env = append(env, e.Var+"="+e.Value)
		}
		opts = append(opts, oci.WithEnv(env))
	}
	if cs.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(cs.WorkingDir))
	}
	if cs.User != "" {
		opts = append(opts, oci.WithUser(cs.User))
	}
	if cs.ReadOnlyRoot {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if cs.MemoryBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(cs.MemoryBytes)))
	}
	if cs.CPUMillis > 0 {
		const period = 100_000 // µs, the kernel's default CFS period
		opts = append(opts, oci.WithCPUCFS(cs.CPUMillis*period/1000, period))
	}
	opts = append(opts,
		oci.WithHostname(fmt.Sprintf("%s-%d", spec.Service, spec.Slot)),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsPath}),
		oci.WithNoNewPrivileges,
		seccomp.WithDefaultProfile(),
	)
	return opts
}

// ensureTask starts the container's task unless it runs. A stopped task is
// deleted first; starting it again counts as a restart.
func (r *Runtime) ensureTask(ctx context.Context, ctr client.Container) error {
	task, err := ctr.Task(ctx, nil)
	switch {
	case err == nil:
		st, err := task.Status(ctx)
		if err != nil {
			return fmt.Errorf("status of %s: %w", ctr.ID(), classify(err))
		}
		switch st.Status {
		case client.Running, client.Paused, client.Pausing:
			return nil
		case client.Created:
			return classify(task.Start(ctx))
		}
		if _, err := task.Delete(ctx); err != nil && !errors.Is(classify(err), ErrNotFound) {
			return fmt.Errorf("delete stopped task of %s: %w", ctr.ID(), classify(err))
		}
		if err := r.bumpRestarts(ctx, ctr); err != nil {
			return err
		}
	case !errors.Is(classify(err), ErrNotFound):
		return fmt.Errorf("task of %s: %w", ctr.ID(), classify(err))
	}
	logPath := filepath.Join(logDir(r.cfg.StateDir), ctr.ID()+".log")
	task, err = ctr.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		return fmt.Errorf("create task of %s: %w", ctr.ID(), classify(err))
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx)
		return fmt.Errorf("start %s: %w", ctr.ID(), classify(err))
	}
	r.log.Info("container started", "container", ctr.ID(), "pid", task.Pid())
	return nil
}

func (r *Runtime) bumpRestarts(ctx context.Context, ctr client.Container) error {
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return fmt.Errorf("labels of %s: %w", ctr.ID(), classify(err))
	}
	n, _ := strconv.Atoi(labels[LabelRestarts])
	if _, err := ctr.SetLabels(ctx, map[string]string{LabelRestarts: strconv.Itoa(n + 1)}); err != nil {
		return fmt.Errorf("count restart of %s: %w", ctr.ID(), classify(err))
	}
	return nil
}

// RestartContainer starts a stopped container of a replica again.
func (r *Runtime) RestartContainer(ctx context.Context, id string) error {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return err
	}
	ctr, err := c.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, classify(err))
	}
	return r.ensureTask(ctx, ctr)
}

// RemoveReplica stops the replica's containers (SIGTERM, then SIGKILL after
// grace), deletes them with their snapshots, and removes its network
// namespace and logs. Removing what is already gone is not an error.
func (r *Runtime) RemoveReplica(ctx context.Context, id string, grace time.Duration) error {
	c, ctx, err := r.conn(ctx)
	if err != nil {
		return err
	}
	cs, err := c.Containers(ctx, `labels."`+LabelReplica+`"==`+strconv.Quote(id))
	if err != nil {
		return fmt.Errorf("list containers of %s: %w", id, classify(err))
	}
	var errs []error
	nsPaths := map[string]bool{}
	for _, ctr := range cs {
		if labels, err := ctr.Labels(ctx); err == nil && labels[LabelNetNS] != "" {
			nsPaths[labels[LabelNetNS]] = true
		}
		if err := r.stopTask(ctx, ctr, grace); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errors.Is(classify(err), ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), classify(err)))
			continue
		}
		logs, _ := filepath.Glob(filepath.Join(logDir(r.cfg.StateDir), ctr.ID()+".log*"))
		for _, l := range logs {
			os.Remove(l)
		}
		r.log.Info("container removed", "container", ctr.ID())
	}
	if len(errs) == 0 {
		for p := range nsPaths {
			if err := netns.LoadNetNS(p).Remove(); err != nil {
				errs = append(errs, fmt.Errorf("remove network namespace %s: %w", p, err))
			}
		}
		if err := os.RemoveAll(filepath.Join(netFilesDir(r.cfg.StateDir), id)); err != nil {
			errs = append(errs, fmt.Errorf("remove network files of %s: %w", id, err))
		}
		if err := r.removeSecrets(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopTask stops and deletes a container's task: Wait before Kill, so the
// exit is not missed; SIGTERM, then SIGKILL after grace.
func (r *Runtime) stopTask(ctx context.Context, ctr client.Container, grace time.Duration) error {
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errors.Is(classify(err), ErrNotFound) {
			return nil
		}
		return fmt.Errorf("task of %s: %w", ctr.ID(), classify(err))
	}
	st, err := task.Status(ctx)
	if err == nil && (st.Status == client.Running || st.Status == client.Paused) {
		exitCh, err := task.Wait(ctx)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", ctr.ID(), classify(err))
		}
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errors.Is(classify(err), ErrNotFound) {
			return fmt.Errorf("stop %s: %w", ctr.ID(), classify(err))
		}
		select {
		case <-exitCh:
		case <-time.After(grace):
			r.log.Warn("container ignored SIGTERM, killing it", "container", ctr.ID(), "grace", grace)
			if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errors.Is(classify(err), ErrNotFound) {
				return fmt.Errorf("kill %s: %w", ctr.ID(), classify(err))
			}
			select {
			case <-exitCh:
			case <-ctx.Done():
				return fmt.Errorf("wait for %s to die: %w", ctr.ID(), ctx.Err())
			}
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", ctr.ID(), ctx.Err())
		}
	}
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errors.Is(classify(err), ErrNotFound) {
		return fmt.Errorf("delete task of %s: %w", ctr.ID(), classify(err))
	}
	return nil
}

// LogPath is where a container's stdout and stderr go.
func (r *Runtime) LogPath(containerID string) string {
	return filepath.Join(logDir(r.cfg.StateDir), containerID+".log")
}

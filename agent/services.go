package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

// Service operations of the API. Writes go to the replicated store; the
// reconcile loop and every other agent take it from there. The cluster is
// AP: a create on each side of a partition is resolved by last writer wins.

// decodeSpec parses and validates a spec from the API.
//
// Images given by tag are pinned to a digest here, once: what this node's
// containerd has under that name, or else what the registry answers. Every
// replica on every node then runs that digest, whatever the tag later
// points at. An image that cannot be resolved (no containerd on this agent,
// registry unreachable) is stored by tag and resolved by each node.
func (b backend) decodeSpec(ctx context.Context, raw json.RawMessage) (*spec.Service, []byte, error) {
	if len(raw) == 0 {
		return nil, nil, api.Errorf(http.StatusBadRequest, "no spec given")
	}
	s, err := spec.Decode(raw)
	if err != nil {
		return nil, nil, api.BadRequest(err)
	}
	if err := b.a.checkSecretsExist(s); err != nil {
		return nil, nil, err
	}
	b.a.pinImages(ctx, s)
	canon, err := s.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return s, canon, nil
}

func (b backend) ListServices(ctx context.Context) ([]api.ServiceInfo, error) {
	if err := b.requireMember(); err != nil {
		return nil, err
	}
	cv := b.a.readCluster()
	out := make([]api.ServiceInfo, 0, len(cv.services))
	for name := range cv.services {
		out = append(out, serviceInfo(name, cv))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b backend) GetService(ctx context.Context, name string) (api.ServiceInfo, error) {
	if err := b.requireMember(); err != nil {
		return api.ServiceInfo{}, err
	}
	cv := b.a.readCluster()
	if _, ok := cv.services[name]; !ok {
		return api.ServiceInfo{}, noService(name)
	}
	return serviceInfo(name, cv), nil
}

func (b backend) CreateService(ctx context.Context, raw json.RawMessage) (api.ServiceInfo, error) {
	if err := b.requireMember(); err != nil {
		return api.ServiceInfo{}, err
	}
	s, canon, err := b.decodeSpec(ctx, raw)
	if err != nil {
		return api.ServiceInfo{}, err
	}
	if err := b.storeCreate(s.Name, canon); err != nil {
		return api.ServiceInfo{}, err
	}
	b.a.wake()
	return b.GetService(ctx, s.Name)
}

// storeCreate writes a new service unless one exists, holding svcWrite.
func (b backend) storeCreate(name string, canon []byte) error {
	b.a.svcWrite.Lock()
	defer b.a.svcWrite.Unlock()
	store := b.a.node.Store()
	if _, ok := store.Get(tableServices, name); ok {
		return api.Errorf(http.StatusConflict, "service %q already exists (use \"orch service update\" or \"orch apply\")", name)
	}
	_, err := store.Put(tableServices, name, canon)
	return err
}

func (b backend) UpdateService(ctx context.Context, name string, w api.ServiceWrite) (api.ServiceInfo, error) {
	if err := b.requireMember(); err != nil {
		return api.ServiceInfo{}, err
	}
	s, canon, err := b.decodeSpec(ctx, w.Spec)
	if err != nil {
		return api.ServiceInfo{}, err
	}
	if s.Name != name {
		return api.ServiceInfo{}, api.Errorf(http.StatusBadRequest, "the spec names service %q, the request %q; a service cannot be renamed", s.Name, name)
	}
	changed, err := b.storeUpdate(name, w.BaseVersion, canon)
	if err != nil {
		return api.ServiceInfo{}, err
	}
	if changed {
		b.a.wake()
	}
	return b.GetService(ctx, name)
}

// storeUpdate replaces an existing service's spec if it is still at base
// (when given) and differs, holding svcWrite, and reports whether it wrote.
func (b backend) storeUpdate(name, base string, canon []byte) (bool, error) {
	b.a.svcWrite.Lock()
	defer b.a.svcWrite.Unlock()
	store := b.a.node.Store()
	cur, ok := store.Get(tableServices, name)
	if !ok {
		return false, noService(name)
	}
	if base != "" && base != versionString(cur.Version) {
		return false, api.Errorf(http.StatusConflict, "service %q changed since version %s (now %s); read it again and retry", name, base, versionString(cur.Version))
	}
	if string(cur.Value) == string(canon) {
		return false, nil
	}
	if err := rememberPrevious(store, name, cur.Value); err != nil {
		return false, err
	}
	_, err := store.Put(tableServices, name, canon)
	return err == nil, err
}

// rememberPrevious keeps the spec an update replaces, for
// update.failureAction rollback.
func rememberPrevious(store *gossip.Store, name string, prev []byte) error {
	_, err := store.Put(tablePrevious, name, prev)
	return err
}

func (b backend) ApplyService(ctx context.Context, raw json.RawMessage) (api.ApplyResult, error) {
	if err := b.requireMember(); err != nil {
		return api.ApplyResult{}, err
	}
	s, canon, err := b.decodeSpec(ctx, raw)
	if err != nil {
		return api.ApplyResult{}, err
	}
	res, err := b.storeApply(s.Name, canon)
	if err != nil {
		return api.ApplyResult{}, err
	}
	if res.Action != "unchanged" {
		b.a.wake()
	}
	return res, nil
}

// storeApply creates or updates a service unless its spec is equal,
// holding svcWrite.
func (b backend) storeApply(name string, canon []byte) (api.ApplyResult, error) {
	b.a.svcWrite.Lock()
	defer b.a.svcWrite.Unlock()
	store := b.a.node.Store()
	action := "created"
	if cur, ok := store.Get(tableServices, name); ok {
		if string(cur.Value) == string(canon) {
			return api.ApplyResult{Name: name, Version: versionString(cur.Version), Action: "unchanged"}, nil
		}
		action = "updated"
		if err := rememberPrevious(store, name, cur.Value); err != nil {
			return api.ApplyResult{}, err
		}
	}
	e, err := store.Put(tableServices, name, canon)
	if err != nil {
		return api.ApplyResult{}, err
	}
	return api.ApplyResult{Name: name, Version: versionString(e.Version), Action: action}, nil
}

func (b backend) RemoveService(ctx context.Context, name string) error {
	if err := b.requireMember(); err != nil {
		return err
	}
	if _, err := b.a.node.Store().Delete(tableServices, name); err != nil {
		if errors.Is(err, gossip.ErrNotFound) {
			return noService(name)
		}
		return err
	}
	// A service created again under this name must not roll back to this one.
	if _, err := b.a.node.Store().Delete(tablePrevious, name); err != nil && !errors.Is(err, gossip.ErrNotFound) {
		b.a.log.Warn("forget previous spec", "service", name, "err", err)
	}
	b.a.wake()
	return nil
}

func (b backend) ServiceTasks(ctx context.Context, name string) ([]api.Task, error) {
	if err := b.requireMember(); err != nil {
		return nil, err
	}
	cv := b.a.readCluster()
	st, ok := cv.services[name]
	if !ok {
		return nil, noService(name)
	}
	views := viewTasks(name, st, cv.tasks, cv.placement)
	out := make([]api.Task, 0, len(views))
	for _, v := range views {
		out = append(out, api.Task{
			Service: name, Slot: v.Slot, Node: v.Node, Desired: "running",
			State: v.State, Message: v.Message, SpecVersion: v.SpecVersion, Current: v.Current, Restarts: v.Restarts, Addr: v.Addr, Health: v.Health,
		})
	}
	return out, nil
}

// pinImages replaces image tags by tag@digest where the digest is known.
func (a *Agent) pinImages(ctx context.Context, s *spec.Service) {
	if a.rt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for i, c := range s.Containers {
		if strings.Contains(c.Image, "@") {
			continue
		}
		d, err := a.rt.ResolveDigest(ctx, c.Image)
		if err != nil {
			a.log.Warn("cannot pin image to a digest; each node resolves the tag", "image", c.Image, "err", err)
			continue
		}
		s.Containers[i].Image = c.Image + "@" + d
	}
}

func serviceInfo(name string, cv clusterView) api.ServiceInfo {
	st := cv.services[name]
	raw, _ := st.Spec.Marshal()
	info := api.ServiceInfo{Name: name, Version: st.Version, Spec: raw, Replicas: replicasOf(st.Spec)}
	for _, v := range viewTasks(name, st, cv.tasks, cv.placement) {
		switch {
		case v.State == taskPending:
			info.Pending++
		case (v.State == taskAssigned || v.State == taskRunning) && v.Current:
			info.Assigned++
		}
	}
	return info
}

func (b backend) requireMember() error {
	select {
	case <-b.a.node.Ready():
		return nil
	default:
		return notMember()
	}
}

func noService(name string) error {
	return api.Errorf(http.StatusNotFound, "no such service: %s", name)
}

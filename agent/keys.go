package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/gossip"
)

// Cluster events: changes every member makes together, like key rotation.
const (
	typeCluster     events.Type   = "cluster"
	actKeyInstalled events.Action = "key-installed"
	actKeyUsed      events.Action = "key-used"
	actKeyRemoved   events.Action = "key-removed"
	actTokenRotated events.Action = "token-rotated"
)

// The join secret, once rotated, is a shared entry of the store: every
// member adopts the latest (last writer wins), so any member keeps
// admitting nodes with the new token and none with the old one.
const (
	tableCluster  = "cluster"
	keyJoinSecret = "join-secret"
)

// syncJoinSecret adopts the join secret of the store, if one was rotated
// in and differs from the node's. Called by the reconcile loop.
func (a *Agent) syncJoinSecret() {
	e, ok := a.node.Store().Get(tableCluster, keyJoinSecret)
	if !ok || e.Deleted || len(e.Value) == 0 {
		return
	}
	var secret []byte
	if err := json.Unmarshal(e.Value, &secret); err != nil {
		a.log.Warn("undecodable join secret in the store", "err", err)
		return
	}
	tok, err := a.node.Token()
	if err != nil || bytes.Equal(tok.Secret, secret) {
		return
	}
	if err := a.node.SetJoinSecret(secret); err != nil {
		a.log.Error("cannot adopt the rotated join secret", "err", err)
		return
	}
	a.log.Info("join secret rotated: the old token no longer admits nodes", "version", versionString(e.Version))
	a.bus.Publish(typeCluster, actTokenRotated, a.cfg.Name, map[string]string{"version": versionString(e.Version)})
}

func (b backend) RotateToken(ctx context.Context) (string, error) {
	secret, err := gossip.NewJoinSecret()
	if err != nil {
		return "", err
	}
	v, err := json.Marshal(secret)
	if err != nil {
		return "", err
	}
	if _, err := b.a.node.Store().Put(tableCluster, keyJoinSecret, v); err != nil {
		if errors.Is(err, gossip.ErrNotRunning) {
			return "", notMember()
		}
		return "", err
	}
	b.a.syncJoinSecret()
	tok, err := b.a.node.Token()
	if err != nil {
		return "", notMember()
	}
	return tok.String(), nil
}

func toAPIKeys(r gossip.KeyResult) api.KeyResult {
	return api.KeyResult{Nodes: r.Nodes, Responses: r.Responses, Failed: r.Failed, Keys: r.Keys, Primary: r.Primary}
}

func (b backend) Keys(ctx context.Context) (api.KeyResult, error) {
	r, err := b.a.node.ListKeys()
	if errors.Is(err, gossip.ErrNotRunning) {
		return api.KeyResult{}, notMember()
	}
	return toAPIKeys(r), err
}

func (b backend) KeyOp(ctx context.Context, op, key string) (api.KeyResult, error) {
	n := b.a.node
	var (
		r   gossip.KeyResult
		err error
		act events.Action
	)
	switch op {
	case api.KeyInstall:
		r, err = n.InstallKey(key)
		act = actKeyInstalled
	case api.KeyUse:
		r, err = n.UseKey(key)
		act = actKeyUsed
	case api.KeyRemove:
		r, err = n.RemoveKey(key)
		act = actKeyRemoved
	default:
		return api.KeyResult{}, api.BadRequest(fmt.Errorf("key operation %q", op))
	}
	switch {
	case errors.Is(err, gossip.ErrNotRunning):
		return api.KeyResult{}, notMember()
	case err != nil:
		return api.KeyResult{}, api.BadRequest(err)
	}
	// The key itself is never published: the event names the operation
	// and its outcome only.
	b.a.bus.Publish(typeCluster, act, b.a.cfg.Name, map[string]string{
		"nodes": fmt.Sprint(r.Nodes), "responses": fmt.Sprint(r.Responses), "failed": fmt.Sprint(len(r.Failed)),
	})
	b.a.log.Info("gossip key "+op, "nodes", r.Nodes, "responses", r.Responses, "failed", len(r.Failed))
	return toAPIKeys(r), nil
}

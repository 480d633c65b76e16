package agent

import (
	"context"
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
)

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

package agent

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/gossip"
)

// backend adapts the Agent to api.Backend; it converts internal types to
// the API's wire types at this boundary.
type backend struct{ a *Agent }

var _ api.Backend = backend{}

func (b backend) Info(ctx context.Context) api.Info {
	a := b.a
	info := api.Info{Name: a.cfg.Name, ID: a.id.ID, Version: a.cfg.Version}
	if id, err := a.node.ClusterID(); err == nil {
		info.Cluster = id
	}
	if ad := a.node.Addr(); ad.IsValid() {
		info.GossipAddr = ad.String()
	}
	if ms := a.node.Members(); ms != nil {
		info.Members = map[string]int{}
		for _, m := range ms {
			info.Members[string(m.Status)]++
			if m.Name == a.cfg.Name {
				info.GossipAddr = m.Addr.String()
			}
		}
		info.Replicas = map[string]int{}
		for _, t := range decodeTasks(a.node.Store().Snapshot().Tables[tableTasks]) {
			if t.Node == a.cfg.Name {
				info.Replicas[t.State]++
			}
		}
	}
	if a.net != nil {
		if sn := a.net.subnet(); sn.IsValid() {
			info.Subnet = sn.String()
		}
	}
	if a.dns != nil {
		st := a.dns.stats()
		info.DNS = &api.DNSInfo{
			Domain: a.cfg.Domain, Queries: st.Queries, Responses: st.Responses,
			Forwarded: st.Forwarded, CacheHits: st.CacheHits, ForwardFailures: st.ForwardFailures,
			Truncated: st.Truncated, Malformed: st.Malformed, Dropped: st.Dropped,
		}
		for _, ap := range a.dns.srv.Addrs() {
			info.DNS.Listeners = append(info.DNS.Listeners, ap.String())
		}
	}
	return info
}

func (b backend) Members(ctx context.Context) ([]api.Member, error) {
	ms := b.a.node.Members()
	if ms == nil {
		return nil, notMember()
	}
	out := make([]api.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, toAPIMember(m, b.a.cfg.Name))
	}
	return out, nil
}

func toAPIMember(m gossip.Member, self string) api.Member {
	am := api.Member{
		Name:    m.Name,
		ID:      m.ID,
		Address: m.Addr.String(),
		Status:  string(m.Status),
		Labels:  map[string]string{},
		Orch:    m.Orch,
		Self:    m.Name == self,
		Tags:    m.Tags,
	}
	for k, v := range m.Tags {
		if l, ok := strings.CutPrefix(k, tagLabelPrefix); ok {
			am.Labels[l] = v
		}
	}
	if c, ok := parseSubnetTag(m.Tags[tagSubnet]); ok {
		am.Subnet = c.Prefix.String()
	}
	if s, err := strconv.ParseInt(m.Tags[tagCreated], 10, 64); err == nil {
		t := time.Unix(s, 0).UTC()
		am.Created = &t
	}
	return am
}

func (b backend) Token(ctx context.Context) (string, error) {
	t, err := b.a.node.Token()
	if err != nil {
		return "", notMember()
	}
	return t.String(), nil
}

func (b backend) Join(ctx context.Context, req api.JoinRequest) (api.JoinResponse, error) {
	if len(req.Addresses) == 0 {
		return api.JoinResponse{}, api.Errorf(http.StatusBadRequest, "join: no addresses given")
	}
	var tok *gossip.Token
	if req.Token != "" {
		t, err := gossip.ParseToken(req.Token)
		if err != nil {
			return api.JoinResponse{}, api.BadRequest(err)
		}
		tok = &t
	}
	n, err := b.a.node.Join(ctx, req.Addresses, tok)
	switch {
	case err == nil:
		return api.JoinResponse{Contacted: n}, nil
	case errors.Is(err, gossip.ErrJoinRefused), errors.Is(err, gossip.ErrIdentityMismatch):
		return api.JoinResponse{}, api.Errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, gossip.ErrNotAlone):
		return api.JoinResponse{}, api.Errorf(http.StatusConflict, "%v", err)
	case errors.Is(err, gossip.ErrNotRunning):
		return api.JoinResponse{}, notMember()
	}
	return api.JoinResponse{}, api.Errorf(http.StatusBadGateway, "%v", err)
}

func (b backend) Leave(ctx context.Context) error {
	if err := b.a.Leave(ctx); err != nil {
		if errors.Is(err, gossip.ErrNotRunning) {
			return notMember()
		}
		return err
	}
	// Stop once this response has been written: the server's graceful
	// shutdown waits for this handler to return.
	go b.a.stopAfterLeave()
	return nil
}

func (b backend) Events(ctx context.Context, req api.EventsRequest, emit func(api.Event) error) error {
	f, err := events.ParseFilter(req.Filters)
	if err != nil {
		return api.BadRequest(err)
	}
	opts := events.SubscribeOptions{Filter: f, After: req.After}
	if req.Since > 0 {
		if req.After > 0 {
			return api.Errorf(http.StatusBadRequest, "use either --after or --since, not both")
		}
		opts.Since = time.Now().Add(-req.Since)
	}
	sub, err := b.a.bus.Subscribe(opts)
	if err != nil {
		return api.BadRequest(err)
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C():
			if !ok {
				return nil
			}
			if err := emit(api.Event{
				Time: ev.Time, Seq: ev.Seq, Type: string(ev.Type), Action: string(ev.Action),
				Node: ev.Node, Subject: ev.Subject, Attributes: ev.Attributes,
			}); err != nil {
				return nil
			}
		}
	}
}

func notMember() error {
	return api.Errorf(http.StatusServiceUnavailable, "this agent is not a cluster member yet (still joining? see its log)")
}

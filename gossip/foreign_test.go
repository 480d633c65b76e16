package gossip

import (
	"io"
	"log"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// A plain serf agent that holds the key and label is a member, shown as
// not an orch agent, so that nothing will ever give it work.
func TestNode_ForeignMemberIsNotOrch(t *testing.T) {
	a := startTestNode(t, "a", t.TempDir(), nil)
	defer a.stop(t)
	sec := a.currentSecrets()
	id, _ := sec.ClusterID()
	kr, err := memberlist.NewKeyring(sec.Keys, sec.Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	mlc := memberlist.DefaultLocalConfig()
	mlc.BindAddr = "127.0.0.1"
	mlc.BindPort = 0
	mlc.Keyring = kr
	mlc.Label = "orch-" + id
	mlc.LogOutput = io.Discard
	sc := serf.DefaultConfig()
	sc.NodeName = "stock"
	sc.MemberlistConfig = mlc
	sc.Tags = map[string]string{"role": "web"}
	sc.Logger = log.New(io.Discard, "", 0)
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if _, err := s.Join([]string{a.Addr().String()}, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "foreign join", wantStatus(a.Node, "stock", StatusAlive))
	for _, m := range a.Members() {
		if m.Name == "stock" && m.Orch {
			t.Errorf("stock serf member %+v is marked as an orch agent", m)
		}
	}
	if err := a.admit("stock", "some-id"); err == nil {
		t.Error("admit: a name held by a foreign member was not refused")
	}
}

// Without the key, the same agent cannot join.
func TestNode_NoKeyNoJoin(t *testing.T) {
	a := startTestNode(t, "a", t.TempDir(), nil)
	defer a.stop(t)
	mlc := memberlist.DefaultLocalConfig()
	mlc.BindAddr = "127.0.0.1"
	mlc.BindPort = 0
	mlc.LogOutput = io.Discard
	sc := serf.DefaultConfig()
	sc.NodeName = "stock"
	sc.MemberlistConfig = mlc
	sc.Logger = log.New(io.Discard, "", 0)
	s, err := serf.Create(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if n, err := s.Join([]string{a.Addr().String()}, true); err == nil && n > 0 {
		t.Fatalf("an agent without the key joined (%d contacted)", n)
	}
	if got := len(a.Members()); got != 1 {
		t.Errorf("a has %d members, want 1", got)
	}
}

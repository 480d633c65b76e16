package agent

import (
	"fmt"
	"testing"

	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

func serviceEntries(t testing.TB, n int, ltime uint64) []gossip.Entry {
	t.Helper()
	var es []gossip.Entry
	for i := range n {
		s := &spec.Service{Name: fmt.Sprintf("svc%d", i), Containers: []spec.Container{{Name: "app", Image: "busybox:stable",
			Command: []string{"httpd", "-f"}, Ports: []spec.Port{{Name: "http", ContainerPort: 8080}},
			HealthCheck: &spec.HealthCheck{HTTP: &spec.HTTPCheck{Path: "/", Port: 8080}}}}}
		s.Normalize()
		b, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, gossip.Entry{Table: tableServices, Key: s.Name, Value: b, Version: gossip.Version{LTime: ltime, Writer: "n1"}})
	}
	return es
}

func TestSpecCache(t *testing.T) {
	var c specCache
	es := serviceEntries(t, 3, 1)
	es = append(es, gossip.Entry{Table: tableServices, Key: "junk", Value: []byte("{"), Version: gossip.Version{LTime: 1, Writer: "n1"}})
	first := c.services(es)
	if len(first) != 3 {
		t.Fatalf("%d services, want 3 (junk skipped)", len(first))
	}
	again := c.services(es)
	for name, st := range first {
		if again[name].Spec != st.Spec {
			t.Errorf("%s decoded again at the same version", name)
		}
	}
	// A new version of svc1 is decoded anew; svc2 is gone, and so is its
	// cache entry.
	es2 := []gossip.Entry{es[0], es[1]}
	newer := serviceEntries(t, 2, 7)[1]
	newer.Value = []byte(`{"name":"svc1","replicas":5,"containers":[{"name":"app","image":"busybox:stable"}]}`)
	es2[1] = newer
	third := c.services(es2)
	if third["svc0"].Spec != first["svc0"].Spec {
		t.Error("svc0 decoded again at the same version")
	}
	if third["svc1"].Spec == first["svc1"].Spec || replicasOf(third["svc1"].Spec) != 5 || third["svc1"].Version != "7@n1" {
		t.Errorf("svc1 after a new version: %+v", third["svc1"])
	}
	if _, ok := third["svc2"]; ok || len(c.m) != 2 {
		t.Errorf("svc2 still there (cache holds %d entries)", len(c.m))
	}
	// The cache gives the same answers as decoding.
	plain := decodeServices(es2)
	for name, st := range plain {
		if !spec.Equal(st.Spec, third[name].Spec) || st.Version != third[name].Version {
			t.Errorf("%s: cached %+v, decoded %+v", name, third[name], st)
		}
	}
}

// BenchmarkDecodeServices compares decoding 1,000 specs with reading them
// through the cache when nothing changed (the common case of a reconcile
// pass or a DNS snapshot).
func BenchmarkDecodeServices(b *testing.B) {
	es := serviceEntries(b, 1000, 1)
	b.Run("decode", func(b *testing.B) {
		for range b.N {
			decodeServices(es)
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c specCache
		c.services(es)
		b.ResetTimer()
		for range b.N {
			c.services(es)
		}
	})
}

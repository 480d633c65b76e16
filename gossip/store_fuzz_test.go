package gossip

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzStoreDelta feeds arbitrary bytes where a store delta (a serf user
// event payload) is expected: decoding and merging must never panic, and
// whatever is merged must be a valid entry.
func FuzzStoreDelta(f *testing.F) {
	good, _ := json.Marshal([]Entry{{Table: "svc", Key: "web", Value: []byte(`{"name":"web"}`), Version: Version{3, "a"}}})
	f.Add(good)
	f.Add([]byte(`[{"tb":"","k":"x","ver":{"t":1,"w":"a"}}]`))
	f.Add([]byte(`[{"tb":"t","k":"x","o":"b","v":"AA==","ver":{"t":18446744073709551615,"w":"c"}}]`))
	f.Add([]byte(`[{"tb":"t","k":"x","d":true,"v":"AA==","ver":{"t":1,"w":"a"}}]`))
	f.Add([]byte("not json"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var es []Entry
		if json.Unmarshal(payload, &es) != nil {
			return
		}
		s := newStore("a", 0)
		s.setLive(map[string]bool{"b": true})
		s.merge(es)
		for _, e := range s.entries {
			if err := e.validate(); err != nil {
				t.Fatalf("merged an invalid entry %+v: %v", e.Entry, err)
			}
			if e.Owner != "" && e.Owner != "a" && e.Owner != "b" {
				t.Fatalf("merged an entry of an owner that is not live: %+v", e.Entry)
			}
		}
	})
}

// FuzzReadGzFrame feeds arbitrary bytes to the sync stream's framing.
func FuzzReadGzFrame(f *testing.F) {
	var buf bytes.Buffer
	writeGzFrame(&buf, syncDigest{Digest: map[string]Version{"svc\x00\x00web": {1, "a"}}})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		var d syncDigest
		_ = readGzFrame(bytes.NewReader(in), &d)
	})
}

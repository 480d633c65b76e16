package events

import (
	"strings"
	"testing"
)

func TestConfig_Validate(t *testing.T) {
	withNode := func(c Config) Config { c.Node = "n1"; return c }
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings that must all appear; nil means valid
	}{
		{name: "defaults with node", cfg: withNode(DefaultConfig())},
		{name: "zero values take defaults", cfg: Config{Node: "n1"}},
		{name: "maximums", cfg: Config{Node: "n1", RingSize: MaxRingSize, SubscriberBuffer: MaxSubscriberBuffer}},
		{name: "defaults without node", cfg: DefaultConfig(), wantErr: []string{"node name is empty"}},
		{name: "negative ring", cfg: Config{Node: "n1", RingSize: -1}, wantErr: []string{"ring size -1 out of range"}},
		{name: "ring too large", cfg: Config{Node: "n1", RingSize: MaxRingSize + 1}, wantErr: []string{"ring size 1048577 out of range"}},
		{name: "negative buffer", cfg: Config{Node: "n1", SubscriberBuffer: -5}, wantErr: []string{"subscriber buffer -5 out of range"}},
		{
			name:    "every problem reported",
			cfg:     Config{RingSize: -1, SubscriberBuffer: MaxSubscriberBuffer + 1},
			wantErr: []string{"node name is empty", "ring size -1", "subscriber buffer 65537"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNew_AppliesDefaults(t *testing.T) {
	b := newTestBus(t, Config{Node: "n1"})
	if b.cfg.RingSize != DefaultRingSize || b.cfg.SubscriberBuffer != DefaultSubscriberBuffer {
		t.Errorf("RingSize, SubscriberBuffer = %d, %d, want %d, %d",
			b.cfg.RingSize, b.cfg.SubscriberBuffer, DefaultRingSize, DefaultSubscriberBuffer)
	}
	if b.cfg.Now == nil || b.cfg.Logger == nil {
		t.Errorf("Now or Logger left nil")
	}
	if ev := b.Publish(TypeMember, ActionJoin, "n2", nil); ev.Time.IsZero() {
		t.Errorf("default clock gave a zero time")
	}
}

func TestNew_RejectsInvalidConfig(t *testing.T) {
	_, err := New(Config{RingSize: -1})
	if err == nil || !strings.Contains(err.Error(), "event bus config") || !strings.Contains(err.Error(), "ring size") {
		t.Fatalf("New = %v, want a config error naming the ring size", err)
	}
}

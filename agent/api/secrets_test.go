package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func (f *fakeBackend) CreateSecret(ctx context.Context, req SecretCreate) (SecretInfo, error) {
	// The value is never recorded: only its length.
	f.record("CreateSecret %s %d", req.Name, len(req.Data))
	if f.err != nil {
		return SecretInfo{}, f.err
	}
	return SecretInfo{Name: req.Name, Size: len(req.Data), Created: time.Unix(1, 0).UTC()}, nil
}

func (f *fakeBackend) ListSecrets(ctx context.Context) ([]SecretInfo, error) {
	f.record("ListSecrets")
	return []SecretInfo{{Name: "a", Size: 3}}, f.err
}

func (f *fakeBackend) GetSecret(ctx context.Context, name string) (SecretInfo, error) {
	f.record("GetSecret %s", name)
	return SecretInfo{Name: name}, f.err
}

func (f *fakeBackend) RemoveSecret(ctx context.Context, name string) error {
	f.record("RemoveSecret %s", name)
	return f.err
}

func TestServer_Secrets(t *testing.T) {
	fb := &fakeBackend{}
	ts := startServer(t, socketPath(t), fb)
	c := NewClient(ts.socket)
	ctx := t.Context()
	value := []byte("p@ss\x00word\n")
	info, err := c.CreateSecret(ctx, "db.pass", value)
	if err != nil || info.Name != "db.pass" || info.Size != len(value) {
		t.Fatalf("CreateSecret = %+v, %v", info, err)
	}
	if _, err := c.ListSecrets(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx, "db.pass"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveSecret(ctx, "db.pass"); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateSecret db.pass 10", "ListSecrets", "GetSecret db.pass", "RemoveSecret db.pass"}
	if got := fb.Calls(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", got, want)
	}
	// A value over the body limit is refused before the backend sees it.
	if _, err := c.CreateSecret(ctx, "huge", make([]byte, maxBody)); err == nil || !strings.Contains(err.Error(), "request body too large") {
		t.Errorf("huge secret: %v", err)
	}
	var ae *Error
	fb.err = Errorf(http.StatusConflict, "secret %q is used by web", "db.pass")
	if err := c.RemoveSecret(ctx, "db.pass"); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("RemoveSecret in use: %v", err)
	}
}

package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// MaxSecretSize bounds a secret's value. Secrets are small (passwords,
// keys, certificates); every member stores every secret, sealed.
const MaxSecretSize = 64 << 10

// SecretCreate creates a secret. Data travels base64-encoded in JSON.
type SecretCreate struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// SecretInfo describes a secret; its value is never returned by the API.
type SecretInfo struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Node is the node the secret was created on.
	Node string `json:"node"`
	// Size is the value's length in bytes.
	Size int `json:"size"`
	// Services are the services that use the secret.
	Services []string `json:"services"`
}

// SecretBackend is the part of [Backend] that keeps secrets.
type SecretBackend interface {
	// CreateSecret fails with 409 if the secret exists: secrets are
	// immutable, as in Docker; create another and update the service.
	CreateSecret(ctx context.Context, req SecretCreate) (SecretInfo, error)
	ListSecrets(ctx context.Context) ([]SecretInfo, error)
	GetSecret(ctx context.Context, name string) (SecretInfo, error)
	// RemoveSecret fails with 409 while a service uses the secret.
	RemoveSecret(ctx context.Context, name string) error
}

func (s *Server) secretRoutes(mux *http.ServeMux) {
	b := s.cfg.Backend
	mux.HandleFunc("GET /v1/secrets", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.ListSecrets(r.Context())
		s.reply(w, v, err)
	})
	mux.HandleFunc("POST /v1/secrets", func(w http.ResponseWriter, r *http.Request) {
		var req SecretCreate
		if err := decodeBody(w, r, &req); err != nil {
			s.reply(w, nil, err)
			return
		}
		v, err := b.CreateSecret(r.Context(), req)
		s.reply(w, v, err)
	})
	mux.HandleFunc("GET /v1/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, err := b.GetSecret(r.Context(), r.PathValue("name"))
		s.reply(w, v, err)
	})
	mux.HandleFunc("DELETE /v1/secrets/{name}", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, struct{}{}, b.RemoveSecret(r.Context(), r.PathValue("name")))
	})
}

// CreateSecret stores a new secret in the cluster.
func (c *Client) CreateSecret(ctx context.Context, name string, data []byte) (SecretInfo, error) {
	var v SecretInfo
	return v, c.do(ctx, http.MethodPost, "/v1/secrets", SecretCreate{Name: name, Data: data}, &v)
}

// ListSecrets lists the cluster's secrets, without their values.
func (c *Client) ListSecrets(ctx context.Context) ([]SecretInfo, error) {
	var v []SecretInfo
	return v, c.do(ctx, http.MethodGet, "/v1/secrets", nil, &v)
}

// GetSecret describes one secret, without its value.
func (c *Client) GetSecret(ctx context.Context, name string) (SecretInfo, error) {
	var v SecretInfo
	return v, c.do(ctx, http.MethodGet, "/v1/secrets/"+url.PathEscape(name), nil, &v)
}

// RemoveSecret removes a secret no service uses.
func (c *Client) RemoveSecret(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/secrets/"+url.PathEscape(name), nil, nil)
}

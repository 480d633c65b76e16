package agent

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/events"
	"github.com/orchproject/orch/agent/runtime"
	"github.com/orchproject/orch/agent/spec"
	"github.com/orchproject/orch/gossip"
)

// Secrets. A secret's value is sealed (AES-256-GCM) with a key every
// member derives from the cluster identity it was admitted with, and only
// the sealed form is replicated, persisted or sent anywhere. A node opens
// a secret only to start a replica that uses it; the clear value then
// lives on that node's secrets tmpfs (runtime) and nowhere else. Every
// member holds the sealed form: with no leader, there is nobody else to
// hand it out later.

const (
	// tableSecrets maps a secret's name to its secretRecord JSON.
	tableSecrets = "secret"
	// secretKeyPurpose selects the sealing key ([gossip.Node.DeriveKey]).
	// A new purpose string means a new key: bump it with the format.
	secretKeyPurpose = "secrets v1"

	typeSecret events.Type = "secret"
)

// secretRecord is a secret as stored.
type secretRecord struct {
	Created time.Time `json:"created"`
	Node    string    `json:"node"`
	Size    int       `json:"size"`
	// Sealed is the nonce followed by the AES-256-GCM ciphertext of the
	// value, with the secret's name as additional data: a sealed value
	// moved under another name does not open.
	Sealed []byte `json:"sealed"`
}

// decodeSecrets reads the secrets table; entries that do not decode are
// skipped (a newer agent's format).
func decodeSecrets(es []gossip.Entry) map[string]secretRecord {
	out := make(map[string]secretRecord, len(es))
	for _, e := range es {
		var r secretRecord
		if json.Unmarshal(e.Value, &r) == nil {
			out[e.Key] = r
		}
	}
	return out
}

// secretAEAD returns the cluster's sealing cipher.
func (a *Agent) secretAEAD() (cipher.AEAD, error) {
	key, err := a.node.DeriveKey(secretKeyPurpose)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret cipher: %w", err)
	}
	return cipher.NewGCM(blk)
}

func secretAD(name string) []byte { return []byte("orch secret " + name) }

func sealSecret(aead cipher.AEAD, name string, value []byte) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(value)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, value, secretAD(name))
}

func openSecret(aead cipher.AEAD, name string, sealed []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("secret %q: sealed value too short", name)
	}
	n := aead.NonceSize()
	v, err := aead.Open(nil, sealed[:n], sealed[n:], secretAD(name))
	if err != nil {
		return nil, fmt.Errorf("secret %q does not open with this cluster's key: %w", name, err)
	}
	return v, nil
}

// openSecretNamed reads and opens one secret from the store.
func (a *Agent) openSecretNamed(aead cipher.AEAD, name string) ([]byte, error) {
	e, ok := a.node.Store().Get(tableSecrets, name)
	if !ok {
		return nil, fmt.Errorf("secret %q does not exist (create it with \"orch secret create %s FILE\")", name, name)
	}
	var r secretRecord
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return openSecret(aead, name, r.Sealed)
}

// resolveSecrets fills in the values of the secrets a replica uses, just
// before it starts.
func (a *Agent) resolveSecrets(rs *runtime.ReplicaSpec) error {
	var aead cipher.AEAD
	for i := range rs.Containers {
		cs := &rs.Containers[i]
		if len(cs.Secrets) == 0 && len(cs.EnvSecrets) == 0 {
			continue
		}
		if aead == nil {
			var err error
			if aead, err = a.secretAEAD(); err != nil {
				return err
			}
		}
		for j := range cs.Secrets {
			v, err := a.openSecretNamed(aead, cs.Secrets[j].Secret)
			if err != nil {
				return err
			}
			cs.Secrets[j].Data = v
		}
		for j := range cs.EnvSecrets {
			v, err := a.openSecretNamed(aead, cs.EnvSecrets[j].Secret)
			if err != nil {
				return err
			}
			if strings.ContainsRune(string(v), 0) {
				return fmt.Errorf("secret %q holds a NUL byte and cannot be an environment value (use it as a file)", cs.EnvSecrets[j].Secret)
			}
			cs.EnvSecrets[j].Value = string(v)
		}
	}
	return nil
}

// secretUsers maps each secret to the services that use it, sorted.
func secretUsers(svcs map[string]serviceState) map[string][]string {
	out := map[string][]string{}
	for name, st := range svcs {
		for _, s := range st.Spec.SecretNames() {
			out[s] = append(out[s], name)
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// checkSecretsExist refuses a spec that names secrets the cluster lacks,
// as Docker does, rather than placing replicas that cannot start.
func (a *Agent) checkSecretsExist(s *spec.Service) error {
	var missing []string
	for _, name := range s.SecretNames() {
		if _, ok := a.node.Store().Get(tableSecrets, name); !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return api.Errorf(http.StatusBadRequest, "service %s uses secrets that do not exist: %s (create them with \"orch secret create NAME FILE\")", s.Name, strings.Join(missing, ", "))
	}
	return nil
}

func secretInfo(name string, r secretRecord, users []string) api.SecretInfo {
	return api.SecretInfo{Name: name, Created: r.Created, Node: r.Node, Size: r.Size, Services: append([]string{}, users...)}
}

func noSecret(name string) error {
	return api.Errorf(http.StatusNotFound, "no such secret: %s", name)
}

func (b backend) CreateSecret(ctx context.Context, req api.SecretCreate) (api.SecretInfo, error) {
	if err := b.requireMember(); err != nil {
		return api.SecretInfo{}, err
	}
	switch {
	case !spec.ValidSecretName(req.Name):
		return api.SecretInfo{}, api.Errorf(http.StatusBadRequest, "secret name %q: %s", req.Name, spec.SecretNameRule)
	case len(req.Data) == 0:
		return api.SecretInfo{}, api.Errorf(http.StatusBadRequest, "secret %s is empty", req.Name)
	case len(req.Data) > api.MaxSecretSize:
		return api.SecretInfo{}, api.Errorf(http.StatusBadRequest, "secret %s is %d bytes, at most %d", req.Name, len(req.Data), api.MaxSecretSize)
	}
	aead, err := b.a.secretAEAD()
	if err != nil {
		return api.SecretInfo{}, err
	}
	r := secretRecord{Created: time.Now().UTC().Truncate(time.Second), Node: b.a.cfg.Name, Size: len(req.Data), Sealed: sealSecret(aead, req.Name, req.Data)}
	v, err := json.Marshal(r)
	if err != nil {
		return api.SecretInfo{}, err
	}
	b.a.svcWrite.Lock()
	defer b.a.svcWrite.Unlock()
	store := b.a.node.Store()
	if _, ok := store.Get(tableSecrets, req.Name); ok {
		return api.SecretInfo{}, api.Errorf(http.StatusConflict, "secret %q already exists: secrets cannot change; create one under a new name and point the service at it", req.Name)
	}
	if _, err := store.Put(tableSecrets, req.Name, v); err != nil {
		return api.SecretInfo{}, err
	}
	b.a.wake()
	return secretInfo(req.Name, r, nil), nil
}

// secretsView reads the secrets and the services that use them from one
// snapshot (no placement: listing secrets needs none).
func (a *Agent) secretsView() (map[string]secretRecord, map[string][]string) {
	snap := a.node.Store().Snapshot()
	return decodeSecrets(snap.Tables[tableSecrets]), secretUsers(a.specs.services(snap.Tables[tableServices]))
}

func (b backend) ListSecrets(ctx context.Context) ([]api.SecretInfo, error) {
	if err := b.requireMember(); err != nil {
		return nil, err
	}
	secrets, users := b.a.secretsView()
	out := make([]api.SecretInfo, 0, len(secrets))
	for name, r := range secrets {
		out = append(out, secretInfo(name, r, users[name]))
	}
	slices.SortFunc(out, func(x, y api.SecretInfo) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

func (b backend) GetSecret(ctx context.Context, name string) (api.SecretInfo, error) {
	if err := b.requireMember(); err != nil {
		return api.SecretInfo{}, err
	}
	secrets, users := b.a.secretsView()
	r, ok := secrets[name]
	if !ok {
		return api.SecretInfo{}, noSecret(name)
	}
	return secretInfo(name, r, users[name]), nil
}

func (b backend) RemoveSecret(ctx context.Context, name string) error {
	if err := b.requireMember(); err != nil {
		return err
	}
	b.a.svcWrite.Lock()
	defer b.a.svcWrite.Unlock()
	store := b.a.node.Store()
	if _, ok := store.Get(tableSecrets, name); !ok {
		return noSecret(name)
	}
	if users := secretUsers(b.a.specs.services(store.Snapshot().Tables[tableServices]))[name]; len(users) > 0 {
		return api.Errorf(http.StatusConflict, "secret %s is in use by %s: remove it from those services first", name, strings.Join(users, ", "))
	}
	if _, err := store.Delete(tableSecrets, name); err != nil {
		return err
	}
	b.a.wake()
	return nil
}

// reportSecrets publishes secrets created and removed since the previous
// pass, by name only, on every node. A record is decoded only the first
// time it is seen; one that does not decode (a newer agent's) is no
// secret, as for decodeSecrets.
func (r *reconciler) reportSecrets(es []gossip.Entry) {
	now := make(map[string]bool, len(es)) // name → decodes
	for _, e := range es {
		valid, seen := r.secrets[e.Key]
		if !seen {
			var rec secretRecord
			valid = json.Unmarshal(e.Value, &rec) == nil
			if valid && r.secrets != nil {
				r.a.bus.Publish(typeSecret, actCreated, e.Key, map[string]string{"node": rec.Node})
			}
		}
		now[e.Key] = valid
	}
	for name, valid := range r.secrets {
		if _, ok := now[name]; !ok && valid {
			r.a.bus.Publish(typeSecret, actRemoved, name, nil)
		}
	}
	r.secrets = now
}

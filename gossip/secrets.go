package gossip

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/orchproject/orch/internal/atomicfile"
)

const (
	// GossipKeySize selects AES-256-GCM for memberlist's keyring.
	GossipKeySize = 32
	// joinSecretSize is the random part of a join token: 256 bits, so
	// guessing is hopeless and no rate limit is needed.
	joinSecretSize = 32
	// identityValidity is how long the self-signed cluster certificate is
	// valid. The certificate is pinned by fingerprint, not by a CA chain, so
	// expiry only matters to TLS libraries that insist on checking it.
	identityValidity = 20 * 365 * 24 * time.Hour
)

// Secrets are what makes a node a member of one cluster: the cluster's TLS
// identity (served to joining nodes, pinned by the join token), the join
// secret and the gossip keyring. Every member holds the same secrets, so any
// member can admit a new node; there is no leader to ask.
type Secrets struct {
	// CertPEM and KeyPEM are the cluster identity: a self-signed ECDSA
	// certificate and its key.
	CertPEM []byte `json:"cert_pem"`
	KeyPEM  []byte `json:"key_pem"`
	// JoinSecret is proven by joining nodes; it is part of the token.
	JoinSecret []byte `json:"join_secret"`
	// Keys is the gossip keyring, primary key first.
	Keys [][]byte `json:"keys"`
}

// NewSecrets creates the secrets of a new cluster.
func NewSecrets() (*Secrets, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "orch cluster", Organization: []string{"orch"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(identityValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create identity certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal identity key: %w", err)
	}
	s := &Secrets{
		CertPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		JoinSecret: make([]byte, joinSecretSize),
		Keys:       [][]byte{make([]byte, GossipKeySize)},
	}
	if _, err := rand.Read(s.JoinSecret); err != nil {
		return nil, fmt.Errorf("generate join secret: %w", err)
	}
	if _, err := rand.Read(s.Keys[0]); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	return s, nil
}

// Validate checks that the secrets are complete and consistent.
func (s *Secrets) Validate() error {
	var errs []error
	if _, err := s.tlsCertificate(); err != nil {
		errs = append(errs, err)
	}
	if len(s.JoinSecret) < 16 {
		errs = append(errs, fmt.Errorf("join secret: %d bytes, want at least 16", len(s.JoinSecret)))
	}
	if len(s.Keys) == 0 {
		errs = append(errs, errors.New("keys: the gossip keyring is empty"))
	}
	for i, k := range s.Keys {
		if n := len(k); n != 16 && n != 24 && n != 32 {
			errs = append(errs, fmt.Errorf("keys[%d]: %d bytes, want 16, 24 or 32", i, n))
		}
	}
	return errors.Join(errs...)
}

func (s *Secrets) tlsCertificate() (tls.Certificate, error) {
	c, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster identity: %w", err)
	}
	return c, nil
}

// Fingerprint is the SHA-256 of the identity certificate's public key, the
// value a join token pins.
func (s *Secrets) Fingerprint() ([32]byte, error) {
	c, err := s.tlsCertificate()
	if err != nil {
		return [32]byte{}, err
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return [32]byte{}, fmt.Errorf("parse identity certificate: %w", err)
	}
	return sha256.Sum256(leaf.RawSubjectPublicKeyInfo), nil
}

// ClusterID is a short, stable, printable name of the cluster, derived from
// its identity. It is the memberlist label, so that clusters sharing a
// network ignore each other's packets.
func (s *Secrets) ClusterID() (string, error) {
	fp, err := s.Fingerprint()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(fp[:8]), nil
}

// Token returns the cluster's join token.
func (s *Secrets) Token() (Token, error) {
	fp, err := s.Fingerprint()
	if err != nil {
		return Token{}, err
	}
	return Token{Fingerprint: fp, Secret: append([]byte(nil), s.JoinSecret...)}, nil
}

// Clone returns a deep copy.
func (s *Secrets) Clone() *Secrets {
	c := &Secrets{
		CertPEM:    append([]byte(nil), s.CertPEM...),
		KeyPEM:     append([]byte(nil), s.KeyPEM...),
		JoinSecret: append([]byte(nil), s.JoinSecret...),
	}
	for _, k := range s.Keys {
		c.Keys = append(c.Keys, append([]byte(nil), k...))
	}
	return c
}

// secretsFile is the name of the secrets in a data dir. The gossip keyring
// lives beside it in keyringFile, in serf's own format, because serf rewrites
// that file when keys are installed or removed.
const (
	secretsFile = "cluster.json"
	keyringFile = "keyring.json"
)

// LoadSecrets reads the secrets from a data dir. It returns an error that
// matches os.ErrNotExist when the node has never been part of a cluster.
func LoadSecrets(dataDir string) (*Secrets, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, secretsFile))
	if err != nil {
		return nil, fmt.Errorf("read cluster secrets: %w", err)
	}
	var d secretsOnDisk
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dataDir, secretsFile), err)
	}
	kb, err := os.ReadFile(filepath.Join(dataDir, keyringFile))
	if err != nil {
		return nil, fmt.Errorf("read gossip keyring: %w", err)
	}
	s := Secrets{CertPEM: d.CertPEM, KeyPEM: d.KeyPEM, JoinSecret: d.JoinSecret}
	var keys []string
	if err := json.Unmarshal(kb, &keys); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dataDir, keyringFile), err)
	}
	for i, k := range keys {
		raw, err := decodeKey(k)
		if err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", filepath.Join(dataDir, keyringFile), i, err)
		}
		s.Keys = append(s.Keys, raw)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("cluster secrets in %s: %w", dataDir, err)
	}
	return &s, nil
}

// Save writes the secrets to a data dir, readable by the owner only.
func (s *Secrets) Save(dataDir string) error {
	keys := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		keys[i] = encodeKey(k)
	}
	kb, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("encode keyring: %w", err)
	}
	b, err := json.MarshalIndent(secretsOnDisk{CertPEM: s.CertPEM, KeyPEM: s.KeyPEM, JoinSecret: s.JoinSecret}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster secrets: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dataDir, keyringFile), kb, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dataDir, secretsFile), b, 0o600)
}

// secretsOnDisk is cluster.json; the keys live in keyring.json.
type secretsOnDisk struct {
	CertPEM    []byte `json:"cert_pem"`
	KeyPEM     []byte `json:"key_pem"`
	JoinSecret []byte `json:"join_secret"`
}

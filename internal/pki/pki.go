// Package pki makes and reads the certificates of orch's remote API: a
// certificate authority, and server and client certificates it signs.
// `orch tls` and the tests use this same code, so the certificates the
// tests trust are the ones users get.
//
// Every key is ECDSA P-256: small, fast, and accepted by every TLS stack
// orch talks to. Certificates are written as PEM "CERTIFICATE" blocks
// (mode 0644), keys as PKCS #8 "PRIVATE KEY" blocks (mode 0600), and an
// existing file is never overwritten: replacing a CA key by accident would
// orphan every certificate it signed.
//
// pki imports only the standard library. Its functions are safe for
// concurrent use; a [Cert] is not modified after it is made.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"time"
)

// Default validities, as Nomad's `nomad tls` chooses them: a CA outlives
// the certificates it signs, and those are renewed yearly.
const (
	DefaultCAValidity   = 5 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// backdate is how far before "now" a certificate becomes valid, so that a
// machine whose clock is slightly behind the one that made it accepts it.
const backdate = time.Minute

// Usage says what a leaf certificate is for: the extended key usage that
// TLS peers check.
type Usage int

// Usages of a leaf certificate.
const (
	// Server certificates identify an agent's TLS listener
	// (ExtKeyUsageServerAuth); clients check the address they dial
	// against their IP and DNS names.
	Server Usage = iota + 1
	// Client certificates identify a CLI user to an agent
	// (ExtKeyUsageClientAuth); the agent records their common name.
	Client
)

func (u Usage) String() string {
	switch u {
	case Server:
		return "server"
	case Client:
		return "client"
	}
	return fmt.Sprintf("Usage(%d)", int(u))
}

// Cert is a certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// CertPEM is the certificate as a PEM block.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM is the private key as a PKCS #8 PEM block.
func (c *Cert) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// NewCA makes a self-signed CA named name (its subject's common name),
// valid for validity from now (zero: DefaultCAValidity). It signs leaf
// certificates only (path length 0).
func NewCA(name string, validity time.Duration) (*Cert, error) {
	if name == "" {
		return nil, errors.New("ca name: required")
	}
	if validity == 0 {
		validity = DefaultCAValidity
	}
	if validity < 0 {
		return nil, fmt.Errorf("ca validity %v: must be positive", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		// SubjectKeyId: CreateCertificate derives it for a CA, and signs
		// leaves with the matching AuthorityKeyId.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new ca certificate: %w", err)
	}
	return &Cert{Cert: cert, Key: key}, nil
}

// Request describes a leaf certificate for [Cert.Issue].
type Request struct {
	// Name is the subject's common name: the node for a server, the user
	// for a client (the agent's audit events name it). Required.
	Name string
	// Usage is Server or Client. Required.
	Usage Usage
	// IPs and DNSNames are the names a server certificate is valid for;
	// a server needs at least one. Client certificates have none.
	IPs      []netip.Addr
	DNSNames []string
	// Validity is how long the certificate is valid; zero means
	// DefaultCertValidity. It is cut to the CA's own expiry.
	Validity time.Duration
	// NotBefore is when the certificate becomes valid; zero means now
	// (less a minute, for clocks slightly behind). Tests use it to make
	// expired certificates.
	NotBefore time.Time
}

// Issue makes a new key and a certificate for it that ca signs.
func (ca *Cert) Issue(req Request) (*Cert, error) {
	var errs []error
	if req.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	switch req.Usage {
	case Server:
		if len(req.IPs) == 0 && len(req.DNSNames) == 0 {
			errs = append(errs, errors.New("a server certificate needs at least one IP address or DNS name: clients check the address they dial against them"))
		}
	case Client:
		if len(req.IPs) > 0 || len(req.DNSNames) > 0 {
			errs = append(errs, errors.New("IP addresses and DNS names are for server certificates; a client is known by its name"))
		}
	default:
		errs = append(errs, fmt.Errorf("usage %v: want server or client", req.Usage))
	}
	if req.Validity < 0 {
		errs = append(errs, fmt.Errorf("validity %v: must be positive", req.Validity))
	}
	if !ca.Cert.IsCA {
		errs = append(errs, fmt.Errorf("%q is not a CA certificate", ca.Cert.Subject.CommonName))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultCertValidity
	}
	notBefore := req.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-backdate)
	}
	notAfter := notBefore.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		// A certificate cannot outlive its issuer: verifiers reject the
		// chain once the CA expires anyway.
		notAfter = ca.Cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
	}
	for _, ip := range req.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.Unmap().AsSlice()))
	}
	if req.Usage == Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", req.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	return &Cert{Cert: cert, Key: key}, nil
}

// Fingerprint is the SHA-256 of the certificate's DER encoding, in lower
// case hex: what `openssl x509 -fingerprint -sha256` prints, without the
// colons. The agent records it for each TLS caller.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// WriteNew writes c's certificate to certPath (0644) and its key to keyPath
// (0600). It refuses to overwrite either file (the error then wraps
// os.ErrExist), and leaves neither behind when it fails.
func WriteNew(certPath, keyPath string, c *Cert) error {
	keyPEM, err := c.KeyPEM()
	if err != nil {
		return err
	}
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w", p, os.ErrExist)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	// The key first: a failure then leaves no certificate without its key.
	if err := writeExcl(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeExcl(certPath, c.CertPEM(), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// writeExcl creates path (it must not exist: O_EXCL closes the race with
// another writer after WriteNew's check), writes data and syncs it.
func writeExcl(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err) // wraps os.ErrExist if it exists
	}
	// The umask may have narrowed perm; the mode is part of the contract.
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadCA reads a CA certificate and its key (as `orch tls ca create` wrote
// them, or any CA with a PKCS #8, SEC 1 or PKCS #1 key) and checks that
// they belong together.
func LoadCA(certFile, keyFile string) (*Cert, error) {
	chain, key, err := LoadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !chain[0].IsCA {
		return nil, fmt.Errorf("%s: %q is not a CA certificate (give the file \"orch tls ca create\" wrote)", certFile, chain[0].Subject.CommonName)
	}
	return &Cert{Cert: chain[0], Key: key}, nil
}

// LoadPair reads a certificate file (the certificate first, then any
// intermediates) and the private key of its first certificate, and checks
// that they belong together.
func LoadPair(certFile, keyFile string) ([]*x509.Certificate, crypto.Signer, error) {
	chain, cerr := ReadCertificates(certFile)
	key, kerr := ReadKey(keyFile)
	if err := errors.Join(cerr, kerr); err != nil {
		return nil, nil, err
	}
	if !publicKeyEqual(key.Public(), chain[0].PublicKey) {
		return nil, nil, fmt.Errorf("the key %s does not match the certificate %s (its public key is another)", keyFile, certFile)
	}
	return chain, key, nil
}

// ReadCertificates reads every certificate in a PEM file, in order. A file
// with none, or with any other kind of PEM block (a private key given by
// mistake), is an error.
func ReadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err // a *PathError: it names the operation and the file
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: holds a %q PEM block; want only CERTIFICATE blocks", file, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return certs, nil
}

// CertPool reads a PEM bundle of CA certificates into a pool, as a TLS
// peer's trust anchors.
func CertPool(file string) (*x509.CertPool, error) {
	certs, err := ReadCertificates(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// ReadKey reads the first private key of a PEM file: PKCS #8 ("PRIVATE
// KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
func ReadKey(file string) (crypto.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err // a *PathError: it names the operation and the file
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%s: no PEM private key in it", file)
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "CERTIFICATE":
			return nil, fmt.Errorf("%s: holds a certificate, not a private key", file)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: a %T cannot sign", file, k)
		}
		return s, nil
	}
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// newSerial is a random 128-bit serial number, as RFC 5280 recommends for
// CAs that keep no state.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}

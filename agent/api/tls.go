package api

// The remote API (#9): the same handler as the unix socket, also served on
// a TCP listener with TLS, to clients that present a certificate signed by
// a CA the operator names.
//
// TLS 1.3 only. Both ends are orch (the same Go TLS stack), so there is no
// older client to accommodate; every TLS 1.3 suite is an AEAD with forward
// secrecy, so there is no suite list to maintain; and TLS 1.3 encrypts the
// client's certificate, which TLS 1.2 sends in clear, so a passive observer
// does not learn who is calling. The gossip join and store sync streams use
// TLS 1.3 for the same reasons.
//
// A consequence of TLS 1.3: the client finishes its handshake before the
// server has checked the client's certificate, so a refusal reaches the
// client as an alert on its first read, not as a handshake error. The
// client turns both kinds into a [TLSError].
//
// The client's identity is the certificate's subject common name and the
// SHA-256 fingerprint of the certificate; every mutating call records them
// and the remote address in its [AuditRecord]. Any certificate the CA
// signed may do anything the root-only socket allows: the CA is the access
// list.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/orchproject/orch/internal/pki"
)

// tlsDialTimeout bounds connecting to a remote agent, TLS handshake
// included: a stream (orch events) has no other deadline, and a network
// that drops packets would otherwise hold it for minutes.
const tlsDialTimeout = 30 * time.Second

// HostEnv names the environment variable the CLI reads for --host, the
// agent to talk to when it is not the local socket.
const HostEnv = "ORCH_HOST"

// ServerTLS loads the TLS listener's settings: its certificate (certFile,
// the certificate first, then any intermediates) and key, and the PEM
// bundle of CA certificates that clients' certificates must chain to.
// Clients must present such a certificate, made for client authentication.
// Every problem is reported at once.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, cerr := loadKeyPair(certFile, keyFile, x509.ExtKeyUsageServerAuth)
	if cerr != nil {
		cerr = fmt.Errorf("server certificate: %w", cerr)
	}
	pool, perr := pki.CertPool(clientCAFile)
	if perr != nil {
		perr = fmt.Errorf("client CA: %w", perr)
	}
	if err := errors.Join(cerr, perr); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		// HTTP/1.1, as on the socket: one request per connection at a
		// time, and streams are plain chunked responses.
		NextProtos: []string{"http/1.1"},
	}, nil
}

// ClientTLS loads a client's settings: the PEM bundle of CAs the agent's
// certificate must chain to, and the client's own certificate and key.
// Every problem is reported at once.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, perr := pki.CertPool(caFile)
	if perr != nil {
		perr = fmt.Errorf("CA: %w", perr)
	}
	cert, cerr := loadKeyPair(certFile, keyFile, x509.ExtKeyUsageClientAuth)
	if cerr != nil {
		cerr = fmt.Errorf("client certificate: %w", cerr)
	}
	if err := errors.Join(perr, cerr); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		// Always present the certificate. With Certificates, Go sends
		// none when the agent's list of acceptable CAs does not name the
		// certificate's issuer, and the agent's refusal then reads
		// "certificate required" to a user who gave one; this way it
		// reads "unknown certificate authority", which is the problem.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		NextProtos:           []string{"http/1.1"},
	}, nil
}

// loadKeyPair reads a certificate and its key, and refuses one that the
// peer would refuse anyway: made for the other end (its extended key
// usage lacks want), or expired. Saying so here is clearer than the
// peer's alert.
func loadKeyPair(certFile, keyFile string, want x509.ExtKeyUsage) (tls.Certificate, error) {
	chain, key, err := pki.LoadPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := chain[0]
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, want) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		role, flag := "a TLS server", "--server"
		if want == x509.ExtKeyUsageClientAuth {
			role, flag = "a TLS client", "--client"
		}
		return tls.Certificate{}, fmt.Errorf("%s (%q) is not made for %s: its extended key usage lacks %s (make one with \"orch tls cert create %s\")",
			certFile, leaf.Subject.CommonName, role, usageName(want), flag)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("%s (%q) expired on %s", certFile, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	tc := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc, nil
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageClientAuth {
		return "clientAuth"
	}
	return "serverAuth"
}

// NewTLSClient returns a client for the agent's TLS listener at addr
// (HOST:PORT), with cfg from [ClientTLS]. The agent's certificate must
// name HOST (an IP address or DNS name) unless cfg.ServerName says
// otherwise.
func NewTLSClient(addr string, cfg *tls.Config) (*Client, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("agent address %q: want HOST:PORT", addr)
	}
	if cfg == nil || len(cfg.Certificates) == 0 && cfg.GetClientCertificate == nil || cfg.RootCAs == nil {
		return nil, errors.New("a TLS client needs a CA and a client certificate")
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion < tls.VersionTLS13 {
		cfg.MinVersion = tls.VersionTLS13
	}
	tr := &http.Transport{
		// TLS is set up by the dialer, under the same placeholder
		// http://orch URLs the socket uses: every method, present and
		// future, works over both without knowing which it uses.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: tlsDialTimeout}, Config: cfg}
			return d.DialContext(ctx, "tcp", addr)
		},
		MaxIdleConns: 2,
	}
	return &Client{host: "https://" + addr, hc: &http.Client{Transport: tr}}, nil
}

// TLSError means TLS between this client and the agent failed: the agent
// refused this client's certificate, or this client refused the agent's.
type TLSError struct {
	// Host is the agent, as https://HOST:PORT.
	Host string
	// Refused is true when the agent refused this client's certificate,
	// false when this client refused the agent's.
	Refused bool
	Err     error
}

func (e *TLSError) Error() string {
	if e.Refused {
		return fmt.Sprintf("the agent refused this client certificate: %v (the agent at %s accepts certificates signed by its --api-tls-client-ca and made with \"orch tls cert create --client\"; check --tls-cert, and the agent's log)", e.Err, e.Host)
	}
	var he x509.HostnameError
	if errors.As(e.Err, &he) {
		return fmt.Sprintf("the agent's certificate is not valid for the address dialled: %v (connect with a name or address its certificate holds, or make its certificate with \"orch tls cert create --server --ip IP --dns NAME\")", e.Err)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(e.Err, &ua) {
		return fmt.Sprintf("the agent at %s has a certificate signed by an unknown authority: %v (give --tls-ca the CA that signed the agent's --api-tls-cert)", e.Host, e.Err)
	}
	return fmt.Sprintf("the agent at %s has a certificate this client does not accept: %v", e.Host, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// tlsFailure returns err as a *TLSError if it is a TLS refusal on either
// side, else nil.
func (c *Client) tlsFailure(err error) error {
	if c.host == "" {
		return nil
	}
	var (
		ve *tls.CertificateVerificationError
		he x509.HostnameError
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
	)
	if errors.As(err, &ve) || errors.As(err, &he) || errors.As(err, &ua) || errors.As(err, &ci) {
		return &TLSError{Host: c.host, Err: unwrapVerification(err)}
	}
	// A TLS alert about a certificate from the agent: only ours can be
	// the subject (the agent does not judge its own). Its type is not
	// exported, hence the text.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && strings.Contains(op.Err.Error(), "certificate") {
		return &TLSError{Host: c.host, Refused: true, Err: op}
	}
	return nil
}

// unwrapVerification strips the wrappers around a certificate verification
// error (the URL, "tls: failed to verify certificate") down to the
// x509 reason, which is what users can act on.
func unwrapVerification(err error) error {
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) && ve.Err != nil {
		return ve.Err
	}
	return err
}

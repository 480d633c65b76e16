package gossip

// The join handshake admits a node to the cluster without a leader:
//
//  1. The joining node opens an orch stream (StreamJoin) to any member's
//     gossip port and starts TLS 1.3. It accepts only a certificate whose
//     public-key fingerprint equals the one in its token, so it talks to the
//     cluster it meant to, and nothing secret leaves it before that check.
//  2. Inside TLS it sends the join secret from the token, its name and its
//     stable node ID.
//  3. The member checks the secret (constant time) and asks its owner
//     whether the name is free (a different node ID on a live name is
//     refused). It replies with the cluster secrets, gossip keyring
//     included, or with the reason for refusal.
//
// Only then does the new node start gossiping, encrypted with that keyring.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

const (
	// joinTimeout bounds the whole handshake on the serving side.
	joinTimeout = 10 * time.Second
	// maxJoinFrame bounds a handshake message; the secrets are a few KiB.
	maxJoinFrame = 1 << 20
)

var (
	// ErrJoinRefused means a member rejected the join; the error text says why.
	ErrJoinRefused = errors.New("join refused")
	// ErrIdentityMismatch means the address answered with another cluster's
	// identity than the token pins.
	ErrIdentityMismatch = errors.New("cluster identity does not match the token")
)

// AdmitFunc decides whether a node may join under the given name. A nil
// error admits it. It must not block for long.
type AdmitFunc func(name, id string) error

type joinRequest struct {
	Secret []byte `json:"secret"`
	Name   string `json:"name"`
	ID     string `json:"id"`
}

type joinResponse struct {
	Error   string   `json:"error,omitempty"`
	Secrets *Secrets `json:"secrets,omitempty"`
}

// serveJoin runs the member's side of the handshake on conn.
func serveJoin(conn net.Conn, secrets *Secrets, admit AdmitFunc) error {
	defer conn.Close()
	cert, err := secrets.tlsCertificate()
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(joinTimeout))
	tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake with %s: %w", conn.RemoteAddr(), err)
	}
	var req joinRequest
	if err := readFrame(tc, &req); err != nil {
		return fmt.Errorf("read join request from %s: %w", conn.RemoteAddr(), err)
	}
	var resp joinResponse
	switch {
	case subtle.ConstantTimeCompare(req.Secret, secrets.JoinSecret) != 1:
		resp.Error = "wrong join secret: the token is not (or no longer) this cluster's; print the current one with \"orch token\" on a member"
	default:
		if err := admit(req.Name, req.ID); err != nil {
			resp.Error = err.Error()
		} else {
			resp.Secrets = secrets
		}
	}
	if err := writeFrame(tc, resp); err != nil {
		return fmt.Errorf("write join response to %s: %w", conn.RemoteAddr(), err)
	}
	if resp.Error != "" {
		return fmt.Errorf("%w: node %q from %s: %s", ErrJoinRefused, req.Name, conn.RemoteAddr(), resp.Error)
	}
	return nil
}

// FetchSecrets runs the joining side of the handshake against addr
// (host:port of a member's gossip port) and returns the cluster secrets.
func FetchSecrets(ctx context.Context, addr string, tok Token, name, id string) (*Secrets, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, joinTimeout)
		defer cancel()
	}
	conn, err := dialStream(ctx, addr, StreamJoin)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	pin := tok.Fingerprint
	tc := tls.Client(conn, &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The certificate is self-signed and pinned by fingerprint below,
		// so the usual chain verification has nothing to check.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: pinnedIdentity(pin),
	})
	defer tc.Close()
	if err := tc.HandshakeContext(ctx); err != nil {
		if errors.Is(err, ErrIdentityMismatch) {
			return nil, fmt.Errorf("%s: %w (is it a member of another cluster?)", addr, ErrIdentityMismatch)
		}
		return nil, fmt.Errorf("tls handshake with %s (is it an orch agent's gossip port?): %w", addr, err)
	}
	if err := writeFrame(tc, joinRequest{Secret: tok.Secret, Name: name, ID: id}); err != nil {
		return nil, fmt.Errorf("send join request to %s: %w", addr, err)
	}
	var resp joinResponse
	if err := readFrame(tc, &resp); err != nil {
		return nil, fmt.Errorf("read join response from %s: %w", addr, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("%w by %s: %s", ErrJoinRefused, addr, resp.Error)
	}
	if resp.Secrets == nil {
		return nil, fmt.Errorf("join response from %s holds no secrets", addr)
	}
	if err := resp.Secrets.Validate(); err != nil {
		return nil, fmt.Errorf("secrets from %s: %w", addr, err)
	}
	if fp, err := resp.Secrets.Fingerprint(); err != nil || fp != pin {
		return nil, fmt.Errorf("secrets from %s: %w", addr, ErrIdentityMismatch)
	}
	return resp.Secrets, nil
}

// pinnedIdentity accepts only a peer certificate whose public key has the
// given SHA-256 fingerprint: the cluster identity, pinned instead of
// checked against a CA.
func pinnedIdentity(pin [32]byte) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return ErrIdentityMismatch
		}
		leaf, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("parse peer certificate: %w", err)
		}
		if sha256.Sum256(leaf.RawSubjectPublicKeyInfo) != pin {
			return ErrIdentityMismatch
		}
		return nil
	}
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxJoinFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(b), maxJoinFrame)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxJoinFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", n, maxJoinFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

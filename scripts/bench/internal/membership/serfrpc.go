package main

// A minimal client of the stock serf agent's RPC protocol (the one
// github.com/hashicorp/serf/client speaks), enough to list members. The
// real client would need a new module (hashicorp/logutils); this needs
// only go-msgpack, which serf already brings in.
//
// The protocol is a TCP stream of msgpack values. Every request is a
// header {Command, Seq} followed by a body when the command has one; every
// response is a header {Seq, Error} followed by a body when the command has
// one. The first request must be a "handshake" with {Version: 1}.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"golang.org/x/sys/unix"
)

// serfRPCTimeout bounds one RPC call when ctx has no earlier deadline.
const serfRPCTimeout = 5 * time.Second

type serfRequestHeader struct {
	Command string
	Seq     uint64
}

type serfResponseHeader struct {
	Seq   uint64
	Error string
}

type serfHandshake struct {
	Version int32
}

// serfMember is the part of serf's RPC Member the benchmark reads; the
// decoder skips the other fields.
type serfMember struct {
	Name   string
	Status string
}

type serfMembersResponse struct {
	Members []serfMember
}

// serfRPC is one RPC connection; calls are serialised.
type serfRPC struct {
	mu   sync.Mutex
	conn net.Conn
	bw   *bufio.Writer
	enc  *codec.Encoder
	dec  *codec.Decoder
	seq  uint64
}

// msgpackHandle matches serf's own RPC client.
func msgpackHandle() *codec.MsgpackHandle {
	return &codec.MsgpackHandle{WriteExt: true, BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}} //nolint:staticcheck // as serf/client does
}

// dialSerfRPC connects to addr inside the network namespace at nsPath and
// shakes hands.
func dialSerfRPC(ctx context.Context, nsPath, addr string) (*serfRPC, error) {
	conn, err := dialInNetns(ctx, nsPath, addr)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(conn)
	c := &serfRPC{
		conn: conn,
		bw:   bw,
		enc:  codec.NewEncoder(bw, msgpackHandle()),
		dec:  codec.NewDecoder(bufio.NewReader(conn), msgpackHandle()),
	}
	if err := c.call(ctx, "handshake", &serfHandshake{Version: 1}, nil); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *serfRPC) close() { c.conn.Close() }

// members lists the agent's members.
func (c *serfRPC) members(ctx context.Context) ([]serfMember, error) {
	var resp serfMembersResponse
	if err := c.call(ctx, "members", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Members, nil
}

// call sends one request and reads its response. A failed call leaves the
// stream in an unknown state: the caller must close the connection.
func (c *serfRPC) call(ctx context.Context, command string, body, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(serfRPCTimeout)
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return err
	}
	c.seq++
	if err := c.enc.Encode(&serfRequestHeader{Command: command, Seq: c.seq}); err != nil {
		return fmt.Errorf("serf RPC %s: send: %w", command, err)
	}
	if body != nil {
		if err := c.enc.Encode(body); err != nil {
			return fmt.Errorf("serf RPC %s: send: %w", command, err)
		}
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("serf RPC %s: send: %w", command, err)
	}
	var h serfResponseHeader
	if err := c.dec.Decode(&h); err != nil {
		return fmt.Errorf("serf RPC %s: read: %w", command, err)
	}
	if h.Seq != c.seq {
		return fmt.Errorf("serf RPC %s: answer to request %d, want %d", command, h.Seq, c.seq)
	}
	if h.Error != "" {
		return fmt.Errorf("serf RPC %s: %s", command, h.Error)
	}
	if out != nil {
		if err := c.dec.Decode(out); err != nil {
			return fmt.Errorf("serf RPC %s: read: %w", command, err)
		}
	}
	return nil
}

// dialInNetns opens a TCP connection from inside the network namespace at
// nsPath. A socket belongs to the namespace it was created in, so the
// dial runs on an OS thread switched into that namespace; the thread is
// never switched back but discarded: the goroutine exits while still
// locked to it, and the Go runtime then terminates the thread.
func dialInNetns(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see above.
		ns, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter %s: %w", nsPath, err)}
			return
		}
		// "tcp4" and a literal address: one dial attempt, made by this
		// goroutine (no parallel happy-eyeballs dialers on other threads).
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp4", addr)
		ch <- result{conn, err}
	}()
	r := <-ch // DialContext returns promptly once ctx ends
	return r.conn, r.err
}

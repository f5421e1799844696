package router

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Deadlines set while the connection is bare hold: a read past its
// deadline fails at once even with bytes to read (as net's), and one that
// has to wait takes the deadline along when it registers.
func TestBareConnDeadlines(t *testing.T) {
	t.Parallel()
	c, peer := rawPair(t, "bare")
	peer.Write([]byte("ready"))
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(time.Unix(1, 0))
	var ne net.Error
	if _, err := c.Read(make([]byte, 8)); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline, with bytes to read: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	b := make([]byte, 8)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "ready" {
		t.Fatalf("read after the deadline was lifted: %q, %v", b[:n], err)
	}
	if c.(*bareConn).f != nil {
		t.Fatal("a read that found its bytes registered the connection")
	}

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 8)); done <- err }()
	select {
	case err := <-done:
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("a read that waits past its deadline: %v, want a timeout", err)
		}
		if d := time.Since(start); d < 40*time.Millisecond {
			t.Fatalf("the read ended after %v, before its deadline", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read that waited did not keep the deadline set before it")
	}

	// Registered now: deadlines go to the poller, and a later one lets a
	// read wait for the bytes.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	go func() { time.Sleep(20 * time.Millisecond); peer.Write([]byte("late")) }()
	if n, err := c.Read(b); err != nil || string(b[:n]) != "late" {
		t.Fatalf("a registered read: %q, %v", b[:n], err)
	}

	c.SetWriteDeadline(time.Unix(1, 0))
	if _, err := c.Write([]byte("x")); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write past its deadline: %v, want a timeout", err)
	}
}

// A bare connection's addresses, half-close, TCP_NODELAY (the listener's,
// inherited) and its close: a second Close and a read after it fail as
// net's do, and the peer sees the end.
func TestBareConnBasics(t *testing.T) {
	t.Parallel()
	c, peer := rawPair(t, "bare")
	if got, want := c.RemoteAddr().String(), peer.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %s, want the peer's %s", got, want)
	}
	if got, want := c.LocalAddr().String(), peer.RemoteAddr().String(); got != want {
		t.Errorf("LocalAddr %s, want %s", got, want)
	}
	bc := c.(*bareConn)
	if v, err := unix.GetsockoptInt(bc.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v == 0 {
		t.Errorf("TCP_NODELAY on the accepted connection: %d, %v; want it on", v, err)
	}
	if err := bc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(peer); err != nil || len(b) != 0 {
		t.Fatalf("the peer after CloseWrite: %q, %v; want the end", b, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v, want net.ErrClosed", err)
	}
	if !peerClosed(c) {
		t.Error("peerClosed on a closed connection: false")
	}
}

// The bare listener takes over the one it was given; its Close ends an
// Accept that waits with net.ErrClosed, and a router's Serve returns nil
// after Shutdown.
func TestBareListenerClose(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bl := listenBare(l)
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the listener given to listenBare still accepts: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := bl.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	bl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept ended by Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end an Accept that waits")
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("a connection was accepted after the bare listener closed")
	}

	r, err := New(Config{BaseDomain: "skiff.test", LogDir: t.TempDir(), TLSDir: t.TempDir()}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, serve := range []func(net.Listener) error{r.Serve, r.ServeTLS} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- serve(l) }()
	}
	time.Sleep(50 * time.Millisecond)
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve after Shutdown: %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after Shutdown")
		}
	}
}

// Deadlines set on a closed connection fail as net's do (rawTCP's are
// net's own): a *net.OpError holding net.ErrClosed, whether the connection
// was still bare or had registered with the poller.
func TestBareConnDeadlineAfterClose(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"raw", "bare", "registered"} {
		t.Run(kind, func(t *testing.T) {
			pairKind := kind
			if kind == "registered" {
				pairKind = "bare"
			}
			c, _ := rawPair(t, pairKind)
			if kind == "registered" {
				c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				c.Read(make([]byte, 1)) // waits, so registers
				if c.(*bareConn).f == nil {
					t.Fatal("a read that waited did not register the connection")
				}
			}
			c.Close()
			for name, set := range map[string]func(time.Time) error{"SetDeadline": c.SetDeadline, "SetReadDeadline": c.SetReadDeadline, "SetWriteDeadline": c.SetWriteDeadline} {
				err := set(time.Now().Add(time.Second))
				var oe *net.OpError
				if !errors.As(err, &oe) || !errors.Is(err, net.ErrClosed) {
					t.Errorf("%s after Close: %v (%T), want a *net.OpError with net.ErrClosed", name, err, err)
				}
			}
		})
	}
}

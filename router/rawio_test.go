package router

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// rawPair is a connected pair over loopback: the accepted side as a rawTCP
// or a bareConn (bareconn.go), the dialled side as net made it.
func rawPair(t *testing.T, kind string) (net.Conn, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if kind == "bare" {
		l = listenBare(l)
		if _, ok := l.(*bareListener); !ok {
			t.Fatalf("listenBare gave a %T", l)
		}
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var r net.Conn
	switch kind {
	case "raw":
		r = withRawIO(c)
		if _, ok := r.(*rawTCP); !ok {
			t.Fatalf("withRawIO(%T) is not a rawTCP", c)
		}
	case "bare":
		if _, ok := c.(*bareConn); !ok {
			t.Fatalf("the bare listener accepted a %T", c)
		}
		r = c
	}
	t.Cleanup(func() { r.Close(); peer.Close() })
	return r, peer.(*net.TCPConn)
}

// connKinds are the connections the shared tests below run on: both must
// do what net's do.
var connKinds = []string{"raw", "bare"}

func eachKind(t *testing.T, test func(t *testing.T, kind string)) {
	t.Parallel()
	for _, kind := range connKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			test(t, kind)
		})
	}
}

// What a proxy needs of a connection, read and written with raw system
// calls: bytes both ways, a write larger than the socket's buffers (it
// waits for the reader rather than failing), EOF, deadlines that are
// timeouts, a reset the peer sent, and a close that ends a blocked read.
func TestRawTCPReadsAndWrites(t *testing.T) {
	eachKind(t, func(t *testing.T, kind string) {
		r, peer := rawPair(t, kind)
		if _, err := peer.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := r.Read(buf)
		if err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n\r\n" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if n, err := r.Read(nil); n != 0 || err != nil {
			t.Fatalf("a read of nothing: %d, %v (want 0, nil)", n, err)
		}

		// 8 MiB is far more than loopback's socket buffers: the write waits
		// for the peer to read, and every byte arrives in order.
		big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
			got <- b
		}()
		if n, err := r.Write(big); n != len(big) || err != nil {
			t.Fatalf("write of %d bytes: %d, %v", len(big), n, err)
		}
		if b := <-got; !bytes.Equal(b, big) {
			t.Fatalf("the peer read %d bytes, not the %d written (or not the same)", len(b), len(big))
		}

		// A deadline ends a read that waits, as a timeout.
		r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = r.Read(buf)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past the deadline: %v, want a timeout", err)
		}
		r.SetReadDeadline(time.Time{})

		// A write that cannot go out before its deadline is a timeout too.
		// The peer reads nothing more, but the socket buffers may hold one
		// 8 MiB write (the receive buffer's autotuning can grow it to
		// tcp_rmem's maximum, 32 MiB on some hosts): write until they are
		// full, 128 MiB at most.
		r.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		err = nil
		for i := 0; i < 16 && err == nil; i++ {
			_, err = r.Write(big)
		}
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("write to a peer that reads nothing, past the deadline: %v, want a timeout", err)
		}
	})
}

func TestRawTCPEndOfStream(t *testing.T) {
	eachKind(t, func(t *testing.T, kind string) {
		r, peer := rawPair(t, kind)
		peer.Write([]byte("last"))
		peer.CloseWrite()
		b, err := io.ReadAll(r)
		if err != nil || string(b) != "last" {
			t.Fatalf("read to the end: %q, %v", b, err)
		}
		if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("read after the end: %d, %v (want io.EOF as net gives it)", n, err)
		}
	})
}

func TestRawTCPReset(t *testing.T) {
	eachKind(t, func(t *testing.T, kind string) {
		r, peer := rawPair(t, kind)
		peer.SetLinger(0)
		peer.Close() // an RST
		time.Sleep(20 * time.Millisecond)
		_, err := r.Read(make([]byte, 8))
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("read after the peer's reset: %v, want ECONNRESET in a *net.OpError", err)
		}
		_, err = r.Write([]byte("x"))
		if err == nil {
			_, err = r.Write([]byte("x"))
		}
		if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write after the peer's reset: %v, want EPIPE or ECONNRESET", err)
		}
	})
}

func TestRawTCPCloseEndsBlockedRead(t *testing.T) {
	eachKind(t, func(t *testing.T, kind string) {
		r, _ := rawPair(t, kind)
		done := make(chan error)
		go func() {
			_, err := r.Read(make([]byte, 8))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		r.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read ended by Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end a read that waits")
		}
		if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after Close: %v, want net.ErrClosed", err)
		}
	})
}

// Only TCP connections are wrapped (a pipe has no descriptor to call on).
func TestWithRawIOOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := withRawIO(a); c != a {
		t.Fatalf("withRawIO wrapped a %T", a)
	}
}

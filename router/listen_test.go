package router

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Listen's listener hands a connection over once its first bytes have
// arrived (TCP_DEFER_ACCEPT), and a client that sends nothing is still
// accepted when the kernel's deferral ends, so the router's header timeout
// still ends it.
func TestListenDefersAcceptUntilData(t *testing.T) {
	t.Parallel()
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	testDefersAccept(t, l)
}

// A listener opened elsewhere (as systemd's socket activation passes one)
// defers its accepts the same once DeferAccept has set the option on it.
func TestDeferAcceptOnActivatedListener(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := DeferAccept(l); err != nil {
		t.Fatal(err)
	}
	testDefersAccept(t, l)
}

func TestDeferAcceptRefusesWhatIsNoSocket(t *testing.T) {
	if err := DeferAccept(newConnListener()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("DeferAccept on a listener without a descriptor: %v, want an error that says it is not a socket", err)
	}
}

func testDefersAccept(t *testing.T, l net.Listener) {
	t.Helper()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()

	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	speaker, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer speaker.Close()
	select {
	case c := <-accepted:
		t.Fatalf("a connection from %v that sent nothing was accepted at once", c.RemoteAddr())
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.WriteString(speaker, "GET / HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		if c.RemoteAddr().String() != speaker.LocalAddr().String() {
			t.Fatalf("accepted %v, not the connection that spoke (%v)", c.RemoteAddr(), speaker.LocalAddr())
		}
		buf := make([]byte, 16)
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n" {
			t.Fatalf("first read: %q, %v", buf[:n], err)
		}
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("the connection that sent a request was not accepted")
	}
	// The silent one comes once the deferral ends (the kernel's next
	// SYN-ACK retransmission after deferAcceptSeconds).
	select {
	case c := <-accepted:
		if c.RemoteAddr().String() != silent.LocalAddr().String() {
			t.Fatalf("accepted %v, want the silent %v", c.RemoteAddr(), silent.LocalAddr())
		}
		c.Close()
	case <-time.After(time.Duration(deferAcceptSeconds)*time.Second + 5*time.Second):
		t.Fatal("a silent connection was never accepted: the header timeout could not end it")
	}
}

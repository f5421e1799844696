package e2e

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// countAccepts listens on addr and counts the connections that reach it,
// each answered with reply (if any) and closed: a place that nothing the
// test drives may connect to. The listener closes with the test.
func countAccepts(t *testing.T, addr, reply string) (net.Listener, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			if reply != "" {
				io.WriteString(c, reply)
			}
			c.Close()
		}
	}()
	return l, &accepted
}

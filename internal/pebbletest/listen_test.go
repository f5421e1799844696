package pebbletest

import (
	"net"
	"strconv"
	"testing"
)

// Listen's ports stay taken until the test ends: nothing else binds them
// between the time the CA is told them and the time they are served.
func TestListenHoldsThePorts(t *testing.T) {
	ls := Listen(t, 2)
	if Port(ls[0]) == Port(ls[1]) {
		t.Fatalf("one port twice: %d", Port(ls[0]))
	}
	for _, l := range ls {
		if other, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(Port(l))); err == nil {
			other.Close()
			t.Errorf("port %d was free for another listener", Port(l))
		}
	}
	// And they are listening: a connection is accepted.
	c, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	a, err := ls[0].Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}

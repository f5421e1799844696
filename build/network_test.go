package build

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/testnet"
)

// fakeInternet starts a TCP server at an address beyond the host, as a
// registry would be, that stays on this machine.
func fakeInternet(t *testing.T) string {
	t.Helper()
	// Not "sk…": skiff's own rules treat links with that prefix as app
	// containers', and a running skiff (or the runtime's tests) would
	// drop traffic to them.
	ln := testnet.Listen(t, "fnet", 250)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestBuildNetwork(t *testing.T) {
	requireRoot(t)
	p := newTestPlatform(t, Config{Network: testNetwork(t)}) // egress for npm and the Go module proxy
	builder := synthBuilder(t, p)
	internet := fakeInternet(t)

	// A service on the host's loopback, and one on all host addresses.
	lo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lo.Close()
	any, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	_, anyPort, _ := net.SplitHostPort(any.Addr().String())
	hostIP := hostAddress(t)

	for i, c := range []struct {
		target string
		ok     bool
	}{
		{internet, true},
		{lo.Addr().String(), false},
		{net.JoinHostPort(hostIP, anyPort), false},
		{"169.254.169.254:80", false},
	} {
		var out bytes.Buffer
		_, err := p.Build(context.Background(), &skiff.BuildRequest{
			App: &skiff.App{ID: "net", Name: "net"}, BuildID: fmt.Sprintf("n%d", i), Builder: builder,
			Source: tarOf(t, map[string]string{"synth.txt": "connect " + c.target}),
		}, &out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.target, err, out.String())
		}
		got := strings.Contains(out.String(), "connect "+c.target+": ok")
		if got != c.ok {
			t.Errorf("connect %s from a build: reachable=%v, want %v\n%s", c.target, got, c.ok, out.String())
		}
	}
}

// hostAddress returns a non-loopback IPv4 address of the host.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "10.250.") {
			return ipn.IP.String()
		}
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}

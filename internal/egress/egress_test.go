package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRefusedAddresses(t *testing.T) {
	own := netip.MustParseAddr("93.184.216.34")
	d, err := New(Config{
		Deny:      []netip.Prefix{netip.MustParsePrefix("10.213.0.0/16"), netip.MustParsePrefix("44.0.0.0/24")},
		HostAddrs: func() ([]netip.Addr, error) { return []netip.Addr{own}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback",
		"10.213.0.6": "private", "10.0.0.1": "private", "172.16.5.4": "private", "192.168.1.1": "private", "fd00::1": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"100.64.0.1": "carrier-grade", "0.0.0.0": "unspecified", "0.1.2.3": "reserved", "::": "unspecified",
		"224.0.0.1": "multicast", "ff02::1": "multicast", "255.255.255.255": "not a unicast",
		"240.0.0.1": "reserved", "198.18.0.1": "benchmarking", "192.0.2.1": "documentation",
		"::ffff:127.0.0.1": "loopback", "::ffff:10.0.0.1": "private",
		"64:ff9b::a00:1": "NAT64", "2002:7f00:1::1": "6to4", "2001::1": "Teredo",
		"93.184.216.34": "own address", "44.0.0.9": "private network",
		"1.1.1.1": "", "2606:4700:4700::1111": "", "8.8.8.8": "",
	} {
		got := d.refuse(netip.MustParseAddr(addr))
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

// listener counts the connections it accepts and answers each with line.
func listener(t *testing.T, line string) (addr string, accepted *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted = new(atomic.Int64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			io.WriteString(c, line)
			c.Close()
		}
	}()
	return l.Addr().String(), accepted
}

// A refused dial never reaches the listener, for an IP literal and for a
// name that resolves to it, and says why without having connected.
func TestDialRefusesBeforeConnecting(t *testing.T) {
	addr, accepted := listener(t, "SSH-2.0-skiff\r\n")
	_, port, _ := net.SplitHostPort(addr)
	d, _ := New(Config{})
	for _, target := range []string{addr, "localhost:" + port, "[::ffff:127.0.0.1]:" + port} {
		_, err := d.DialContext(context.Background(), "tcp", target)
		var refused *RefusedError
		if !errors.As(err, &refused) {
			t.Errorf("%s: %v, want a refusal", target, err)
			continue
		}
		if msg := Describe(target, 0, err); !strings.Contains(msg, "--allow-registry") || strings.Contains(msg, "SSH-2.0") {
			t.Errorf("%s: %q", target, msg)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the listener accepted %d connections", n)
	}
	if _, err := d.DialContext(context.Background(), "udp", "1.1.1.1:53"); err == nil {
		t.Error("udp dialled")
	}
}

// What an admin allows is dialled, by name with or without its port; no
// more than that.
func TestAllowedHosts(t *testing.T) {
	addr, accepted := listener(t, "hi\n")
	host, port, _ := net.SplitHostPort(addr)
	for _, allow := range []string{addr, host, "LOCALHOST:" + port} {
		d, err := New(Config{Allow: []string{"registry.example.com:5000", allow}})
		if err != nil {
			t.Fatal(err)
		}
		target := addr
		if strings.HasPrefix(allow, "LOCALHOST") {
			target = "localhost:" + port
		}
		c, err := d.DialContext(context.Background(), "tcp", target)
		if err != nil {
			t.Errorf("allowed %s, dial %s: %v", allow, target, err)
			continue
		}
		c.Close()
	}
	for i := 0; i < 100 && accepted.Load() < 3; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
	d, _ := New(Config{Allow: []string{host + ":1"}})
	if _, err := d.DialContext(context.Background(), "tcp", addr); err == nil {
		t.Error("allowing another port allowed this one")
	}
	for _, bad := range []string{"host:port", "a/b", "user@host", ":5000"} {
		if _, err := New(Config{Allow: []string{bad}}); err == nil {
			t.Errorf("allow %q accepted", bad)
		}
	}
}

// Through the Transport: an HTTP redirect to a refused address is refused
// too, and no proxy from the environment dials for it.
func TestTransportRedirectRefused(t *testing.T) {
	inner, accepted := listener(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+inner+"/v2/", http.StatusFound)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("HTTP_PROXY", "http://"+inner)
	d, _ := New(Config{Allow: []string{l.Addr().String()}})
	resp, err := (&http.Client{Transport: d.Transport()}).Get("http://" + l.Addr().String() + "/v2/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("redirect to %s followed: %d", inner, resp.StatusCode)
	}
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Errorf("redirect: %v, want a refusal", err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the redirect target got %d connections", n)
	}
}

// Describe never repeats what the peer sent.
func TestDescribeKeepsPeerWordsOut(t *testing.T) {
	peer := errors.New(`malformed HTTP response "SSH-2.0-skiff"`)
	for _, tc := range []struct {
		status int
		err    error
		want   string
	}{
		{0, peer, "did not answer as a registry does"},
		{401, fmt.Errorf("UNAUTHORIZED: secret words"), "refused access"},
		{404, fmt.Errorf("MANIFEST_UNKNOWN: secret words"), "no such image"},
		{500, fmt.Errorf("secret words"), "answered HTTP 500"},
		{0, &net.DNSError{Name: "nope.example", Err: "no such host"}, "cannot resolve nope.example"},
		{0, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, "cannot connect"},
		{0, context.DeadlineExceeded, "did not answer in time"},
	} {
		msg := Describe("registry.example.com", tc.status, tc.err)
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, "SSH-2.0") || strings.Contains(msg, "secret") {
			t.Errorf("%d %v: %q, want %q", tc.status, tc.err, msg, tc.want)
		}
	}
}

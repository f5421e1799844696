// Package pebbletest runs Pebble, the ACME test CA, in the test process on
// 127.0.0.1, with a DNS server that resolves every name to 127.0.0.1 so
// that Pebble validates challenges against the ports of a router under
// test. Tests of the router and end-to-end tests of the daemon share it.
package pebbletest

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// CA is a running Pebble.
type CA struct {
	Directory string         // the ACME directory URL
	Trust     *x509.CertPool // for the CA's own HTTPS endpoint
	Roots     *x509.CertPool // for the certificates it issues
	TrustPEM  string         // a file holding Trust's certificate, for daemons
	orders    atomic.Int64
}

// Orders counts the certificate orders the CA received.
func (c *CA) Orders() int64 { return c.orders.Load() }

// Start runs a CA that validates HTTP-01 on httpPort and TLS-ALPN-01 on
// tlsPort of 127.0.0.1, issuing certificates valid for validity.
func Start(t testing.TB, httpPort, tlsPort int, validity time.Duration) *CA {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", 0)
	}
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(validity.Seconds())}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, httpPort, tlsPort, false, startDNS(t), store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 0, 0)
	c := &CA{}
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			c.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.Directory = srv.URL + wfe.DirectoryPath
	c.Trust = x509.NewCertPool()
	c.Trust.AddCert(srv.Certificate())
	c.Roots = x509.NewCertPool()
	c.Roots.AddCert(authority.GetRootCert(0).Cert)
	c.TrustPEM = filepath.Join(t.TempDir(), "pebble-https.pem")
	if err := os.WriteFile(c.TrustPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// startDNS answers A queries for every name with 127.0.0.1, over TCP (what
// Pebble's validation authority uses).
func startDNS(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m) // to a resolver that may have given up
	})}
	go func() { _ = srv.ActivateAndServe() }() // ends at Shutdown
	t.Cleanup(func() { _ = srv.Shutdown() })
	return l.Addr().String()
}

// Listen returns n listeners on ports of 127.0.0.1, for the ports a CA
// validates on, held until the test ends. The process under test is handed
// the listeners themselves (or their files, as systemd hands a daemon its
// sockets): a port picked free, closed and bound again later could be
// taken meanwhile by another process on a busy host.
func Listen(t testing.TB, n int) []*net.TCPListener {
	t.Helper()
	var ls []*net.TCPListener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		ls = append(ls, l.(*net.TCPListener))
	}
	return ls
}

// Port is l's port.
func Port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/pebbletest"
)

// newACMERouter starts a router on two fresh ports and a Pebble that
// validates on them.
func newACMERouter(t *testing.T, validity, renewCheck time.Duration, challenge string) (*testRouter, *pebbletest.CA) {
	httpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpPort, tlsPort := httpL.Addr().(*net.TCPAddr).Port, tlsL.Addr().(*net.TCPAddr).Port
	p := pebbletest.Start(t, httpPort, tlsPort, validity)
	cfg := Config{BaseDomain: "skiff.test", LogDir: t.TempDir(), TLSDir: t.TempDir(), HTTPSPort: tlsPort,
		ACME: ACMEConfig{CA: p.Directory, Email: "ops@skiff.test", TrustedRoots: p.Trust, HTTPPort: httpPort, TLSPort: tlsPort,
			ListenHost: "127.0.0.1", RenewCheckInterval: renewCheck}}
	r, err := New(cfg, failureLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	switch challenge { // force one challenge type, so each is tested
	case "http-01":
		r.acme.issuer.DisableTLSALPNChallenge = true
	case "tls-alpn-01":
		r.acme.issuer.DisableHTTPChallenge = true
	}
	go r.Serve(httpL)
	go r.ServeTLS(tlsL)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return &testRouter{Router: r, addr: httpL.Addr().String(), tls: tlsL.Addr().String()}, p
}

// failureLogger keeps the router's log and writes it to the test's when
// the test fails (with -v, as it comes): an order's failure is otherwise
// invisible, and the router retries a failed one only after 15 minutes.
func failureLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return testLogger(t)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("the router's log:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// validCerts are the certificates in hand, without ACME hosts still pending.
func validCerts(infos []skiff.CertInfo) []skiff.CertInfo {
	var out []skiff.CertInfo
	for _, ci := range infos {
		if ci.Status == "valid" {
			out = append(out, ci)
		}
	}
	return out
}

func TestACMEWithPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an ACME CA")
	}
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			tr, p := newACMERouter(t, 0, 0, challenge)
			tr.addApp(t, skiff.AppRoute{Name: "app", Domains: []string{"www.example.com", "*.wild.example.com"}, ACME: true},
				startBackend(t, echo("a")))
			waitFor(t, 30*time.Second, "certificates", func() bool {
				return len(validCerts(tr.Certificates("id-app"))) == 2
			})
			for _, host := range []string{"www.example.com", "app.skiff.test"} {
				resp, err := tr.tlsClient(p.Roots, true).Get("https://" + host + "/")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].VerifyHostname(host) != nil {
					t.Errorf("%s over HTTPS: %d", host, resp.StatusCode)
				}
				resp, _ = get(t, tr.client(), "http://"+host+"/x")
				if resp.StatusCode != 301 || !strings.HasPrefix(resp.Header.Get("Location"), "https://"+host+":") {
					t.Errorf("%s: no redirect to HTTPS: %d %s", host, resp.StatusCode, resp.Header.Get("Location"))
				}
			}
			info := validCerts(tr.Certificates("id-app"))[0]
			if info.Source != "acme" || time.Until(info.NotAfter) < 24*time.Hour {
				t.Errorf("certificate info: %+v", info)
			}
			if n := p.Orders(); n != 2 {
				t.Errorf("%d orders for 2 names", n)
			}
			// Key material is private.
			filepath.Walk(tr.cfg.TLSDir, func(path string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() && (strings.HasSuffix(path, ".key") || strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".crt")) && fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("%s is mode %v", path, fi.Mode().Perm())
				}
				return nil
			})
		})
	}
}

// D7: handshakes for names that are not registered never cause an order,
// and an app cannot answer the challenge path of an ACME host.
func TestACMEOnlyForRegisteredNames(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an ACME CA")
	}
	tr, p := newACMERouter(t, 0, 0, "")
	b := startBackend(t, echo("a"))
	tr.addApp(t, skiff.AppRoute{Name: "plain", Domains: []string{"noacme.example.com", "*.wild.example.com"}}, b)
	for i := range 300 {
		for _, name := range []string{fmt.Sprintf("r%d.example.net", i), fmt.Sprintf("x%d.wild.example.com", i), "noacme.example.com"} {
			conn, err := tls.Dial("tcp", tr.tls, &tls.Config{ServerName: name, InsecureSkipVerify: true})
			if err == nil {
				conn.Close()
				t.Fatalf("handshake for %s succeeded", name)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := p.Orders(); n != 0 {
		t.Fatalf("%d certificate orders for unregistered names", n)
	}
	// The challenge path of a non-ACME app is the app's; of an ACME app, the router's.
	resp, body := get(t, tr.client(), "http://noacme.example.com/.well-known/acme-challenge/tok")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "a GET") {
		t.Errorf("non-ACME app's challenge path: %d %q", resp.StatusCode, body)
	}
	tr.SetApp(skiff.AppRoute{AppID: "id-plain", Name: "plain", Domains: []string{"noacme.example.com"}, ACME: true})
	before := b.requests.Load()
	resp, _ = get(t, tr.client(), "http://noacme.example.com/.well-known/acme-challenge/forged")
	if resp.StatusCode != 404 || b.requests.Load() != before {
		t.Errorf("ACME app's challenge path reached the app: %d", resp.StatusCode)
	}
}

// Renewal happens by itself once a third of the lifetime is left.
func TestACMERenewal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an ACME CA")
	}
	tr, p := newACMERouter(t, 30*time.Second, time.Second, "http-01")
	tr.addApp(t, skiff.AppRoute{Name: "app", ACME: true}, startBackend(t, echo("a")))
	var first time.Time
	waitFor(t, 30*time.Second, "a certificate", func() bool {
		if c := validCerts(tr.Certificates("id-app")); len(c) == 1 {
			first = c[0].NotAfter
			return true
		}
		return false
	})
	// (Generous: in CI, beside the end-to-end tests under the race
	// detector, 40 s once went by without one.)
	waitFor(t, 90*time.Second, "a renewal", func() bool {
		c := validCerts(tr.Certificates("id-app"))
		return len(c) == 1 && c[0].NotAfter.After(first)
	})
	if n := p.Orders(); n < 2 {
		t.Errorf("%d orders", n)
	}
}

// Only names that can get a public certificate are ordered.
func TestACMEHosts(t *testing.T) {
	a := &app{route: skiff.AppRoute{ACME: true}, hosts: []string{"app.localhost", "www.example.com", "*.wild.example.com", "shop.internal", "api.example.org"}}
	if got := strings.Join(acmeHosts(a), " "); got != "www.example.com api.example.org" {
		t.Errorf("acmeHosts = %q", got)
	}
	a.route.ACME = false
	if got := acmeHosts(a); got != nil {
		t.Errorf("ACME off: %q", got)
	}
}

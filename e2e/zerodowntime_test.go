package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// selfSigned makes a certificate and key (PEM) for host, and a pool that
// trusts it.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// load sends requests to an app through the router from several
// keep-alive clients, over HTTP and HTTPS, until stopped, and counts every
// failure: a transport error or any status but 200.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       context.CancelFunc
	wg         sync.WaitGroup
}

func startLoad(d *daemon, host string, pool *x509.CertPool) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel}
	_, httpsPort, _ := net.SplitHostPort(d.addr.HTTPS)
	client := func(scheme string) *http.Client {
		// Every name resolves to the router; a redirect to HTTPS (the app
		// has a certificate) names the HTTPS port.
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := d.addr.HTTP
			if _, port, _ := net.SplitHostPort(addr); port == httpsPort || port == "443" {
				target = d.addr.HTTPS
			}
			return (&net.Dialer{}).DialContext(ctx, network, target)
		}
		return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4,
			TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host}, ForceAttemptHTTP2: true}}
	}
	for i := range 6 {
		scheme := "http"
		if i%3 == 2 {
			scheme = "https"
		}
		c := client(scheme)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				url := scheme + "://" + host + "/"
				if scheme == "https" {
					url = "https://" + host + ":" + httpsPort + "/"
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := c.Do(req)
				if ctx.Err() != nil {
					return
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						l.ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				l.failed.Add(1)
				l.mu.Lock()
				l.failures = append(l.failures, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), scheme, err))
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) finish() {
	l.stop()
	l.wg.Wait()
}

// Twenty redeploys in a row — restarts, config changes, scaling and pushes,
// which all take the same start, health-gated switch and drain path — while
// clients keep sending requests over HTTP and HTTPS: not one fails.
func TestZeroDowntimeRedeploys(t *testing.T) {
	d, admin := fullDaemon(t)
	const app = "steady"
	host := hostOf(app)
	repo := newRepo(t, pyApp("1"))
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	certPEM, keyPEM, pool := selfSigned(t, host)
	if r := d.ssh(admin, string(certPEM)+string(keyPEM), "certs:add", app); r.code != 0 || !strings.Contains(r.stdout, "uploaded") {
		t.Fatalf("certs:add: %s", r)
	}

	l := startLoad(d, host, pool)
	deploys := 0
	redeploy := func(what string, r result) {
		t.Helper()
		deploys++
		if r.code != 0 {
			l.finish()
			t.Fatalf("redeploy %d (%s): %s", deploys, what, r)
		}
	}
	for i := range 20 {
		switch {
		case i == 7 || i == 15:
			commit(t, repo, "VERSION", fmt.Sprintf("%d\n", i), "change")
			redeploy("push", d.git(admin, repo, "push", "skiff", "main"))
		case i%5 == 1:
			redeploy("config:set", d.ssh(admin, "", "config:set", app, fmt.Sprintf("ROUND=%d", i)))
		case i == 10:
			redeploy("ps:scale web=2", d.ssh(admin, "", "ps:scale", app, "web=2"))
		case i == 12:
			redeploy("ps:scale web=1", d.ssh(admin, "", "ps:scale", app, "web=1"))
		default:
			redeploy("ps:restart", d.ssh(admin, "", "ps:restart", app))
		}
	}
	time.Sleep(500 * time.Millisecond)
	l.finish()
	t.Logf("%d redeploys: %d requests answered, %d failed", deploys, l.ok.Load(), l.failed.Load())
	if l.failed.Load() > 0 {
		t.Fatalf("%d requests failed during redeploys; first ones:\n%s", l.failed.Load(), strings.Join(l.failures[:min(10, len(l.failures))], "\n"))
	}
	if l.ok.Load() < 200 {
		t.Fatalf("only %d requests answered: the load did not run", l.ok.Load())
	}
	if code, _ := d.get(t, host, "/"); code != http.StatusMovedPermanently {
		t.Errorf("with a certificate, HTTP answers %d, want a redirect", code)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: host}}}
	req, _ := http.NewRequest("GET", "https://"+d.addr.HTTPS+"/", nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"version": "15"`) {
		t.Fatalf("after the redeploys the app answers %s", body)
	}
}

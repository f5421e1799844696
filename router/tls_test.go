package router

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// testCA issues certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a PEM chain (leaf, CA) and PEM key for the names.
func (ca *testCA) issue(t testing.TB, names ...string) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// tlsClient connects to the router's HTTPS port with the given SNI.
func (tr *testRouter) tlsClient(roots *x509.CertPool, h2 bool) *http.Client {
	tp := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, tr.tls)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{Transport: tp, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestUploadedCertificate(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) { c.HTTPSPort = 8443 })
	tr.startTLS(t)
	ca := newTestCA(t)
	tr.addApp(t, skiff.AppRoute{Name: "app", Domains: []string{"www.example.com"}, HSTS: true}, startBackend(t, echo("a")))
	tr.addApp(t, skiff.AppRoute{Name: "other"}, startBackend(t, echo("other")))

	// Before a certificate: plain HTTP serves, HTTPS has nothing to offer.
	if resp, _ := get(t, tr.client(), "http://www.example.com/"); resp.StatusCode != 200 {
		t.Fatalf("plain HTTP before a certificate: %d", resp.StatusCode)
	}
	if _, err := tr.tlsClient(ca.pool, false).Get("https://www.example.com/"); err == nil {
		t.Fatal("HTTPS answered without a certificate")
	}

	certPEM, keyPEM := ca.issue(t, "www.example.com", "app.skiff.test")
	wrongPEM, wrongKey := ca.issue(t, "elsewhere.example.org")
	if err := tr.SetCertificate("id-app", cat(wrongPEM, wrongKey)); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("certificate for foreign names: %v", err)
	}
	if err := tr.SetCertificate("id-app", cat(certPEM, wrongKey)); skiff.ErrorCode(err) != skiff.EINVALID {
		t.Errorf("mismatched key: %v", err)
	}
	if err := tr.SetCertificate("id-app", cat(certPEM, keyPEM)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(tr.cfg.TLSDir, "uploaded", "id-app.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored certificate: %v %v", fi.Mode(), err)
	}

	for _, h2 := range []bool{false, true} {
		resp, err := tr.tlsClient(ca.pool, h2).Get("https://www.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "X-Forwarded-Proto: [\"https\"]") {
			t.Errorf("h2=%v: %d %s", h2, resp.StatusCode, body)
		}
		if h2 && resp.ProtoMajor != 2 {
			t.Errorf("negotiated %s, want HTTP/2", resp.Proto)
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no HSTS header")
		}
	}
	// Plain HTTP now redirects.
	resp, _ := get(t, tr.client(), "http://www.example.com/a?b=c")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://www.example.com:8443/a?b=c" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	req, _ := http.NewRequest("POST", "http://app.skiff.test/form", strings.NewReader("x"))
	if resp, err := tr.client().Do(req); err != nil || resp.StatusCode != 308 {
		t.Errorf("POST redirect: %v %v", resp.StatusCode, err)
	}
	// An app may opt out of the redirect.
	tr.SetApp(skiff.AppRoute{AppID: "id-app", Name: "app", Domains: []string{"www.example.com"}, HSTS: true, NoRedirect: true})
	if resp, _ := get(t, tr.client(), "http://www.example.com/"); resp.StatusCode != 200 {
		t.Errorf("NoRedirect: %d", resp.StatusCode)
	}
	// The other app has no certificate and is not redirected.
	if resp, _ := get(t, tr.client(), "http://other.skiff.test/"); resp.StatusCode != 200 {
		t.Errorf("app without a certificate: %d", resp.StatusCode)
	}

	// Unknown SNI: no certificate at all.
	conn, err := tls.Dial("tcp", tr.tls, &tls.Config{ServerName: "random.example.net", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Error("handshake for an unknown name succeeded")
	}

	// Certificates survive a restart.
	r2, err := New(tr.cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Shutdown(context.Background())
	if r2.certs.get("id-app") == nil {
		t.Error("uploaded certificate not loaded at start")
	}
	infos := tr.Certificates("id-app")
	if len(infos) != 1 || infos[0].Source != "uploaded" || len(infos[0].Names) != 2 || infos[0].Status != "valid" {
		t.Errorf("Certificates = %+v", infos)
	}
	if err := tr.RemoveCertificate("id-app"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, tr.client(), "http://www.example.com/"); resp.StatusCode != 200 {
		t.Errorf("after removing the certificate: %d", resp.StatusCode)
	}
}

// D1: SNI for one app with the Host of another → 421 unless the presented
// certificate covers that Host.
func TestSNIHostMismatch(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	tr.addApp(t, skiff.AppRoute{Name: "one"}, startBackend(t, echo("one")))
	tr.addApp(t, skiff.AppRoute{Name: "two"}, startBackend(t, echo("two")))
	tr.addApp(t, skiff.AppRoute{Name: "three"}, startBackend(t, echo("three")))
	c1, k1 := ca.issue(t, "one.skiff.test", "three.skiff.test")
	c2, k2 := ca.issue(t, "two.skiff.test")
	c3, k3 := ca.issue(t, "three.skiff.test")
	tr.SetCertificate("id-one", cat(c1, k1))
	tr.SetCertificate("id-two", cat(c2, k2))
	tr.SetCertificate("id-three", cat(c3, k3))
	send := func(sni, host string, h2 bool) int {
		conf := &tls.Config{ServerName: sni, RootCAs: ca.pool}
		if h2 {
			conf.NextProtos = []string{"h2"}
		}
		tp := &http.Transport{
			DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return tls.Dial("tcp", tr.tls, conf)
			},
			ForceAttemptHTTP2: h2,
		}
		defer tp.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+host+"/", nil)
		resp, err := tp.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, h2 := range []bool{false, true} {
		if code := send("one.skiff.test", "one.skiff.test", h2); code != 200 {
			t.Errorf("h2=%v matching SNI and Host: %d", h2, code)
		}
		if code := send("one.skiff.test", "two.skiff.test", h2); code != http.StatusMisdirectedRequest {
			t.Errorf("h2=%v SNI one, Host two: %d, want 421", h2, code)
		}
		if code := send("one.skiff.test", "three.skiff.test", h2); code != 200 {
			t.Errorf("h2=%v SNI one, Host three (covered by one's certificate): %d, want 200", h2, code)
		}
	}
}

func TestParseCertBundle(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, "www.example.com")
	leafFirst := func(c []byte) bool {
		b, _ := pem.Decode(c)
		cert, err := x509.ParseCertificate(b.Bytes)
		return err == nil && cert.Subject.CommonName == "www.example.com"
	}
	// key first, then the chain with the CA before the leaf
	blocks := bytes.SplitAfter(certPEM, []byte("-----END CERTIFICATE-----\n"))
	shuffled := append(append(append([]byte{}, keyPEM...), blocks[1]...), blocks[0]...)
	for name, in := range map[string][]byte{
		"cert then key": append(append([]byte{}, certPEM...), keyPEM...),
		"key then CA":   shuffled,
		"dokku tar":     tarOf(t, map[string][]byte{"server.crt": certPEM, "server.key": keyPEM, "README": []byte("x")}),
	} {
		c, k, err := ParseCertBundle(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !leafFirst(c) || !bytes.Equal(k, keyPEM) {
			t.Errorf("%s: leaf not first or key changed", name)
		}
	}
	otherCert, _ := ca.issue(t, "other.example.com")
	for name, in := range map[string][]byte{
		"empty":      nil,
		"only cert":  certPEM,
		"only key":   keyPEM,
		"garbage":    []byte("hello"),
		"wrong key":  append(append([]byte{}, otherCert...), keyPEM...),
		"two keys":   append(append(append([]byte{}, certPEM...), keyPEM...), keyPEM...),
		"tar no key": tarOf(t, map[string][]byte{"server.crt": certPEM}),
		"too large":  bytes.Repeat([]byte("a"), skiff.MaxCertBundle+1),
	} {
		if _, _, err := ParseCertBundle(in); skiff.ErrorCode(err) != skiff.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

func tarOf(t testing.TB, files map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	return buf.Bytes()
}

func FuzzParseCertBundle(f *testing.F) {
	ca := newTestCA(f)
	certPEM, keyPEM := ca.issue(f, "www.example.com")
	f.Add(append(append([]byte{}, certPEM...), keyPEM...))
	f.Add(tarOf(f, map[string][]byte{"server.crt": certPEM, "server.key": keyPEM}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, k, err := ParseCertBundle(in)
		if err != nil {
			if skiff.ErrorCode(err) != skiff.EINVALID {
				t.Fatalf("error without EINVALID: %v", err)
			}
			return
		}
		if _, err := tls.X509KeyPair(c, k); err != nil {
			t.Fatalf("accepted a bundle that does not load: %v", err)
		}
	})
}

// The default certificate serves clients without SNI (or with an IP) and the
// hosts it covers whose apps have no certificate of their own.
func TestDefaultCertificate(t *testing.T) {
	tr := newTestRouter(t, nil)
	tr.startTLS(t)
	ca := newTestCA(t)
	tr.addApp(t, skiff.AppRoute{Name: "app", Domains: []string{"www.example.com"}}, startBackend(t, echo("a")))
	wc, wk := ca.issue(t, "*.skiff.test")
	if err := tr.SetDefaultCertificate(cat(wc, wk)); err != nil {
		t.Fatal(err)
	}
	for sni, want := range map[string]bool{"": true, "127.0.0.1": true, "app.skiff.test": true, "www.example.com": false, "nope.skiff.test": false} {
		conn, err := tls.Dial("tcp", tr.tls, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if (err == nil) != want {
			t.Errorf("SNI %q: handshake error %v, want success %v", sni, err, want)
		}
		if err == nil {
			conn.Close()
		}
	}
	if resp, _ := get(t, tr.client(), "http://app.skiff.test/"); resp.StatusCode != 301 {
		t.Errorf("a host covered by the default certificate is not redirected: %d", resp.StatusCode)
	}
	if resp, _ := get(t, tr.client(), "http://www.example.com/"); resp.StatusCode != 200 {
		t.Errorf("a host not covered was redirected: %d", resp.StatusCode)
	}
	r2, err := New(tr.cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Shutdown(context.Background())
	if r2.certs.def.Load() == nil {
		t.Error("default certificate not loaded at start")
	}
	tr.RemoveDefaultCertificate()
	if conn, err := tls.Dial("tcp", tr.tls, &tls.Config{InsecureSkipVerify: true}); err == nil {
		conn.Close()
		t.Error("handshake without SNI succeeded after removing the default certificate")
	}
}

func cat(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }

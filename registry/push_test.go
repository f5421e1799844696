package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/registrytest"
)

// Pushing to an external registry: a real OCI registry
// (internal/registrytest) on 127.0.0.1 with TLS and basic auth.

const pushPassword = "hunter2-never-printed"

// selfSigned is a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "registry"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func serveExternal(t *testing.T) (addr string, reg *registrytest.Registry, trusted http.RoundTripper) {
	t.Helper()
	cert, pool := selfSigned(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg = registrytest.Serve(l, cert, "bob", pushPassword)
	t.Cleanup(func() { reg.Close() })
	return l.Addr().String(), reg, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

func TestPushByDigest(t *testing.T) {
	addr, reg, tr := serveExternal(t)
	ctx := context.Background()
	img, err := random.Image(1<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	e := &External{Registry: addr + "/team", Username: "bob", Password: pushPassword, Transport: tr}
	if err := e.Check(ctx, "shop"); err != nil {
		t.Fatalf("check: %v", err)
	}
	var lines []string
	ref, err := e.Push(ctx, img, "shop", func(s string) { lines = append(lines, s) })
	if err != nil {
		t.Fatal(err)
	}
	if ref != addr+"/team/shop@"+digest.String() {
		t.Fatalf("pushed as %s", ref)
	}
	out := strings.Join(lines, "\n")
	if !strings.Contains(out, "Pushing sha256:") || !strings.Contains(out, "Pushed "+ref) || !strings.Contains(out, "50% (") {
		t.Errorf("progress:\n%s", out)
	}
	// The registry has the very image, by its digest, for its account only.
	got, err := remote.Image(must(name.NewDigest(ref)), remote.WithTransport(tr), remote.WithAuth(&authn.Basic{Username: "bob", Password: pushPassword}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != digest {
		t.Fatalf("the registry has %s, skiff pushed %s", d, digest)
	}
	if _, err := remote.Image(must(name.NewDigest(ref)), remote.WithTransport(tr)); err == nil {
		t.Fatal("the registry serves the image without credentials")
	}
	pushes, _ := reg.Counts()
	// Again: nothing sent.
	lines = nil
	if _, err := e.Push(ctx, img, "shop", func(s string) { lines = append(lines, s) }); err != nil || !strings.Contains(strings.Join(lines, " "), "already") {
		t.Fatalf("a second push: %v %v", lines, err)
	}
	if p, _ := reg.Counts(); p != pushes {
		t.Fatalf("a second push put the manifest again (%d → %d)", pushes, p)
	}
}

func TestPushRefusedSaysWhatToDo(t *testing.T) {
	addr, _, tr := serveExternal(t)
	ctx := context.Background()
	img, _ := random.Image(1024, 1)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	for _, tc := range []struct {
		e    *External
		want string
	}{
		{&External{Registry: addr + "/team", Username: "bob", Password: "wrong-" + pushPassword, Transport: tr}, "refused skiff's credentials"},
		{&External{Registry: addr + "/team", Transport: tr}, "refused skiff's credentials"},
		{&External{Registry: deadAddr + "/team", Username: "bob", Password: pushPassword, Transport: tr}, "cannot reach the registry " + deadAddr},
		{&External{Registry: addr + "/team", Username: "bob", Password: pushPassword}, "does not trust the certificate"},
	} {
		for what, err := range map[string]error{
			"check": tc.e.Check(ctx, "shop"),
			"push":  func() error { _, err := tc.e.Push(ctx, img, "shop", func(string) {}); return err }(),
		} {
			if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s to %s: want %q in %v", what, tc.e.Registry, tc.want, err)
			}
			if err != nil && strings.Contains(err.Error(), pushPassword) {
				t.Errorf("%s: the error shows the password: %v", what, err)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

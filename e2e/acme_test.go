package e2e

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/pebbletest"
)

// An app gets a certificate from an ACME CA (Pebble, on 127.0.0.1) with
// certs:auto, answers HTTPS with it, and HTTP redirects to HTTPS. Names
// that are not registered get no order.
func TestACMECertificate(t *testing.T) {
	requireFull(t)
	// The daemon is handed its sockets (as systemd would): the CA must be
	// told the ports before the daemon starts, and a port merely found
	// free could be another process's by the time the daemon bound it.
	sockets, addrs := activationSockets(t)
	ca := pebbletest.Start(t, portOf(t, addrs[1]), portOf(t, addrs[2]), 90*24*time.Hour)
	dir := sandboxDir(t)
	d := &daemon{t: t, dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer), sockets: sockets}
	hr := hostResources(2)
	d.start("--resource-prefix", hr.prefix, "--network-pool", hr.pool, "--debootstrap-cache", debootstrapCache,
		"--acme-ca", ca.Directory, "--acme-ca-roots", ca.TrustPEM, "--acme-email", "ops@skiff.test")
	if d.addr.HTTP != addrs[1] || d.addr.HTTPS != addrs[2] {
		t.Fatalf("the daemon serves %s and %s, not the sockets it was given %v", d.addr.HTTP, d.addr.HTTPS, addrs)
	}
	admin := d.addUser("admin", true)
	if r := d.local("", "builder:create"); r.code != 0 {
		t.Fatal(r)
	}
	const app = "secure"
	host := hostOf(app)
	repo := newRepo(t, pyApp("1"))
	if r := d.git(admin, repo, "push", d.remote(app), "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.teardown(hr.prefix, hr.pool)

	// A handshake for a name no app has orders nothing.
	probe, err := tls.Dial("tcp", d.addr.HTTPS, &tls.Config{ServerName: "random-name.example", InsecureSkipVerify: true})
	if err == nil {
		probe.Close()
	}
	if ca.Orders() != 0 {
		t.Fatalf("%d orders before certs:auto", ca.Orders())
	}

	if r := d.ssh(admin, "", "certs:auto", app, "on"); r.code != 0 {
		t.Fatalf("certs:auto: %s", r)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Roots, ServerName: host}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest("GET", "https://"+d.addr.HTTPS+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"version": "1"`) {
				t.Fatalf("HTTPS answer %d %q", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Pebble-issued certificate within 90s: %v\n%s", err, d.log.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r := d.ssh(admin, "", "certs", app); !strings.Contains(r.stdout, "acme") || !strings.Contains(r.stdout, host) {
		t.Errorf("certs report:\n%s", r)
	}
	// With a certificate, plain HTTP redirects to HTTPS.
	req, _ := http.NewRequest("GET", "http://"+d.addr.HTTP+"/x?y=1", nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusPermanentRedirect && resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://"+host) || !strings.HasSuffix(loc, "/x?y=1") {
		t.Fatalf("HTTP answered %d, Location %q", resp.StatusCode, loc)
	}
	if ca.Orders() != 1 {
		t.Errorf("%d orders for one name", ca.Orders())
	}
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

package router

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// Behind a trusted load balancer, the app learns the real client, scheme
// and port; everything a client puts left of it stays out. From a peer that
// is not trusted, the headers are ignored as ever (TestForwardedHeadersAreOurs).
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name, trust                  string
		xff, proto, port             string
		wantXFF, wantReal, wantProto string
		wantPort                     string // "" for the router's own
	}{
		{name: "trusted chain", trust: "127.0.0.0/8", xff: "6.6.6.6, 203.0.113.7, 127.0.0.2", proto: "https", port: "443",
			wantXFF: "203.0.113.7, 127.0.0.2, 127.0.0.1", wantReal: "203.0.113.7", wantProto: "https", wantPort: "443"},
		{name: "IPv6 client", trust: "127.0.0.1/32", xff: "2001:db8::1", proto: "HTTP",
			wantXFF: "2001:db8::1, 127.0.0.1", wantReal: "2001:db8::1", wantProto: "http"},
		{name: "garbage hop", trust: "127.0.0.0/8", xff: "1.2.3.4, nonsense, 127.0.0.5", proto: "gopher", port: "99999",
			wantXFF: "127.0.0.5, 127.0.0.1", wantReal: "127.0.0.5", wantProto: "http"},
		{name: "no header", trust: "127.0.0.0/8",
			wantXFF: "127.0.0.1", wantReal: "127.0.0.1", wantProto: "http"},
		{name: "peer not trusted", trust: "10.0.0.0/8", xff: "203.0.113.7", proto: "https", port: "443",
			wantXFF: "127.0.0.1", wantReal: "127.0.0.1", wantProto: "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestRouter(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tc.trust)} })
			got := make(chan http.Header, 1)
			tr.addApp(t, skiff.AppRoute{Name: "app"}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("User-Agent") != "skiff-health-check" {
					got <- r.Header.Clone()
				}
			}))
			port := tr.addr[strings.LastIndexByte(tr.addr, ':')+1:]
			if tc.wantPort == "" {
				tc.wantPort = port
			}
			var hdr []string
			for _, kv := range [][2]string{{"X-Forwarded-For", tc.xff}, {"X-Forwarded-Proto", tc.proto}, {"X-Forwarded-Port", tc.port}} {
				if kv[1] != "" {
					hdr = append(hdr, kv[0], kv[1])
				}
			}
			get(t, tr.client(), "http://app.skiff.test/", hdr...)
			h := <-got
			for k, v := range map[string]string{"X-Forwarded-For": tc.wantXFF, "X-Real-Ip": tc.wantReal,
				"X-Forwarded-Proto": tc.wantProto, "X-Forwarded-Port": tc.wantPort} {
				if len(h[k]) != 1 || h[k][0] != v {
					t.Errorf("app got %s = %q, want %q", k, h[k], v)
				}
			}
		})
	}
}

// A TLS-terminating load balancer talks plain HTTP to the router: its
// X-Forwarded-Proto: https must not be answered with a redirect to HTTPS
// (a loop), and HSTS applies as it would over TLS.
func TestTrustedProxyHTTPS(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} })
	ca := newTestCA(t)
	tr.addApp(t, skiff.AppRoute{Name: "app", HSTS: true}, startBackend(t, echo("a")))
	certPEM, keyPEM := ca.issue(t, "app.skiff.test")
	if err := tr.SetCertificate("id-app", cat(certPEM, keyPEM)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, tr.client(), "http://app.skiff.test/"); resp.StatusCode != http.StatusMovedPermanently {
		t.Errorf("plain HTTP with a certificate: %d, want a redirect", resp.StatusCode)
	}
	resp, _ := get(t, tr.client(), "http://app.skiff.test/", "X-Forwarded-Proto", "https")
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("HTTPS through the load balancer: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
}

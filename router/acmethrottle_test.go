package router

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/pebbletest"
)

func TestACMEThrottle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acme-failures.json")
	th := newACMEThrottle(15*time.Minute, path)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	th.now = func() time.Time { return now }
	ctx := context.Background()
	ev := func(event string, data map[string]any) error { return th.onEvent(ctx, event, data) }
	name := map[string]any{"identifier": "www.example.com"}
	if err := ev("cert_obtaining", name); err != nil {
		t.Fatalf("first attempt refused: %v", err)
	}
	ev("cert_failed", map[string]any{"identifier": "www.example.com", "error": errors.New("connection refused")})
	for _, after := range []time.Duration{time.Minute, 2 * time.Minute, 14 * time.Minute} {
		now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC).Add(after)
		if err := ev("cert_obtaining", name); err == nil || !strings.Contains(err.Error(), "12:15:00") {
			t.Errorf("attempt %v after a failure: %v", after, err)
		}
	}
	if err := ev("cert_obtaining", map[string]any{"identifier": "other.example.com"}); err != nil {
		t.Errorf("another name is throttled: %v", err)
	}
	f, next, ok := th.lastFailure("www.example.com")
	if !ok || f.Err != "connection refused" || !next.Equal(time.Date(2026, 1, 1, 12, 15, 0, 0, time.UTC)) {
		t.Errorf("lastFailure: %+v %v %v", f, next, ok)
	}
	// A restarted daemon keeps the spacing.
	th2 := newACMEThrottle(15*time.Minute, path)
	th2.now = th.now
	if err := th2.onEvent(ctx, "cert_obtaining", name); err == nil {
		t.Error("the spacing did not survive a restart")
	}
	now = now.Add(time.Minute) // 15 minutes after the failure
	if err := ev("cert_obtaining", name); err != nil {
		t.Errorf("attempt 15 minutes after the failure: %v", err)
	}
	ev("cert_obtained", name)
	if _, _, ok := th.lastFailure("www.example.com"); ok {
		t.Error("the failure outlived a certificate")
	}
}

// D7: a name whose validation fails is not sent to the CA again within the
// retry spacing, even when the app asks again; `certs` shows why.
func TestACMEFailedValidationIsSpaced(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an ACME CA")
	}
	// The CA validates on ports where something else answers, closing
	// every connection at once (so certmagic does not answer there either).
	var dead []int
	for _, l := range pebbletest.Listen(t, 2) {
		dead = append(dead, pebbletest.Port(l))
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	p := pebbletest.Start(t, dead[0], dead[1], 0)
	tr := newTestRouter(t, func(c *Config) {
		c.ACME = ACMEConfig{CA: p.Directory, Email: "ops@skiff.test", TrustedRoots: p.Trust, HTTPPort: dead[0], TLSPort: dead[1], ListenHost: "127.0.0.1"}
	})
	route := skiff.AppRoute{Name: "app", Domains: []string{"www.example.com"}, ACME: true}
	tr.addApp(t, route, startBackend(t, echo("a")))
	// Both of the app's names (www.example.com and app.skiff.test) fail.
	var info skiff.CertInfo
	waitFor(t, 30*time.Second, "failed validations", func() bool {
		infos := tr.Certificates("id-app")
		for _, ci := range infos {
			if ci.Status != "failed" {
				return false
			}
			if ci.Names[0] == "www.example.com" {
				info = ci
			}
		}
		return len(infos) == 2
	})
	if info.Error == "" || info.NextRetry == nil || time.Until(*info.NextRetry) < 14*time.Minute {
		t.Errorf("failed certificate info: %+v", info)
	}
	orders := p.Orders()
	// Turning ACME off and on again asks certmagic to obtain at once: the
	// attempt is cancelled before it reaches the CA.
	route.AppID = "id-app"
	route.ACME = false
	tr.SetApp(route)
	route.ACME = true
	tr.SetApp(route)
	time.Sleep(2 * time.Second)
	if n := p.Orders(); n != orders {
		t.Errorf("%d new orders within the retry spacing", n-orders)
	}
}

// A certificate in hand whose renewal failed is listed as valid, with the
// CA's error and the next attempt beside it.
func TestACMERenewalFailureShown(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) {
		c.ACME = ACMEConfig{CA: "https://127.0.0.1:1/directory", Email: "ops@skiff.test", RetryEvery: time.Hour}
	})
	// No ACME on the route: nothing is ordered while the test adds the
	// certificate to certmagic's cache by hand.
	tr.addApp(t, skiff.AppRoute{Name: "app", Domains: []string{"www.example.com"}}, startBackend(t, echo("a")))
	certPEM, keyPEM := newTestCA(t).issue(t, "www.example.com")
	if _, err := tr.acme.magic.CacheUnmanagedCertificatePEMBytes(context.Background(), certPEM, keyPEM, nil); err != nil {
		t.Fatal(err)
	}
	tr.acme.throttle.onEvent(context.Background(), "cert_failed", map[string]any{"identifier": "www.example.com", "error": errors.New("rate limited")})
	a := *tr.lookupID("id-app") // a copy, as if ACME were on
	a.route.ACME = true
	infos := tr.acme.certInfos(&a)
	var www *skiff.CertInfo
	for i := range infos {
		if infos[i].Names[0] == "www.example.com" {
			www = &infos[i]
		}
	}
	if www == nil || www.Status != "valid" || www.Error != "rate limited" || www.NextRetry == nil || www.NotAfter.IsZero() {
		t.Errorf("certificate with a failed renewal: %+v", www)
	}
}

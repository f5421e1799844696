package e2e

import (
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// h2specKnown are the h2spec cases (package/case, as h2spec numbers them,
// e.g. "http2/4.2/3") the router is allowed to fail, each with the reason:
// only for what Go itself would have to change, and the README's router
// section names them. A known failure that starts passing fails the test
// too, so this list stays true. Today it is empty: 145 of 145.
var h2specKnown = map[string]string{}

// TestH2Spec runs h2spec, the HTTP/2 conformance suite, against the
// router of a real daemon, over TLS, in front of a deployed static app
// with an uploaded certificate: every case passes (strict ones included)
// but those in h2specKnown. It is a tier of its own (scripts/test.sh
// builds the pinned h2spec and sets SKIFF_H2SPEC); `go test ./...` skips it.
func TestH2Spec(t *testing.T) {
	bin := os.Getenv("SKIFF_H2SPEC")
	if bin == "" {
		t.Skip("the HTTP/2 conformance tier of scripts/test.sh runs this, with SKIFF_H2SPEC=bin/h2spec")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("h2spec runs in a mount namespace of its own (for /etc/hosts): needs unshare (util-linux)")
	}
	d, admin := fullDaemon(t)
	const app = "h2spec"
	host := hostOf(app)
	repo := copyApp(t, "../buildpacks/testdata/apps/static")
	if r := d.git(admin, repo, "push", d.remote(app), "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	defer d.ssh(admin, "", "apps:destroy", app, "--force")
	certPEM, keyPEM, _ := selfSigned(t, host)
	if r := d.ssh(admin, string(certPEM)+string(keyPEM), "certs:add", app); r.code != 0 {
		t.Fatalf("certs:add: %s", r)
	}
	// h2spec names the host it connects to in SNI and :authority alike, so
	// the app's host must resolve: to 127.0.0.1, in a hosts file that only
	// h2spec's mount namespace sees.
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 "+host+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(d.addr.HTTPS)
	for _, strict := range []bool{false, true} {
		report := filepath.Join(dir, fmt.Sprintf("h2spec-strict-%v.xml", strict))
		args := []string{"--mount", "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts,
			bin, "--tls", "--insecure", "--host", host, "--port", port, "--timeout", "5", "--junit-report", report}
		if strict {
			args = append(args, "--strict")
		}
		out, runErr := exec.Command("unshare", args...).CombinedOutput()
		total, failed, err := h2specResults(report)
		if err != nil {
			t.Fatalf("h2spec (strict %v) left no report (%v): %v\n%s", strict, runErr, err, tail(out, 40))
		}
		var unexpected, fixed []string
		for _, id := range failed {
			if _, ok := h2specKnown[id]; !ok {
				unexpected = append(unexpected, id)
			}
		}
		for id := range h2specKnown {
			if !slices.Contains(failed, id) {
				fixed = append(fixed, id)
			}
		}
		t.Logf("h2spec (strict %v): %d of %d passed", strict, total-len(failed), total)
		if len(unexpected) > 0 {
			t.Errorf("h2spec (strict %v) cases failed or were skipped: %s\n%s", strict, strings.Join(unexpected, ", "), tail(out, 60))
		}
		if len(fixed) > 0 {
			t.Errorf("known h2spec failures now pass, take them off h2specKnown and the README: %s", strings.Join(fixed, ", "))
		}
		if total < 145 {
			t.Errorf("h2spec ran %d cases, want at least 145", total)
		}
	}
}

// h2specResults reads h2spec's JUnit report: how many cases ran, and the
// ones that failed or erred, as package/case ("http2/4.2/3").
func h2specResults(path string) (total int, failed []string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	var rep struct {
		Suites []struct {
			Package string `xml:"package,attr"`
			Cases   []struct {
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &rep); err != nil {
		return 0, nil, err
	}
	for _, s := range rep.Suites {
		for i, c := range s.Cases {
			total++
			if c.Failure != nil || c.Error != nil || c.Skipped != nil {
				failed = append(failed, fmt.Sprintf("%s/%d", s.Package, i+1))
			}
		}
	}
	return total, failed, nil
}

// tail is the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

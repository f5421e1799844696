package nodejs

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

// A cached yarn is reused only for the packageManager hash it was checked
// against: the same version with another hash is downloaded and checked
// again (and fails when it does not match), as corepack would check it.
func TestInstallManagerChecksAChangedHash(t *testing.T) {
	reg := newFakeRegistry(t)
	path := "/tarballs/yarn-1.22.22.tgz"
	reg.tarballs[path] = tgz(t, map[string]string{"bin/yarn.js": "#!/usr/bin/env node\n"})
	sum := sha512.Sum512(reg.tarballs[path])
	doc := map[string]any{"version": "1.22.22", "dist": map[string]string{"tarball": reg.URL + path, "integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum[:])}}
	reg.docs["/yarn"] = map[string]any{"dist-tags": map[string]string{"latest": "1.22.22"}, "versions": map[string]any{"1.22.22": doc}}
	reg.docs["/@yarnpkg/cli-dist"] = map[string]any{"dist-tags": map[string]string{"latest": "4.9.2"}, "versions": map[string]any{"4.9.2": map[string]any{"version": "4.9.2"}}}
	r := &registry{base: reg.URL, client: fetch.New("test")}
	r.client.Backoff = []time.Duration{time.Millisecond}
	layers := t.TempDir()
	node := semver.MustParse("24.2.0")
	install := func(hash string) (string, error) {
		bc, out := newBuildContext(t, layers)
		req := &managerRequest{Name: "yarn", Range: "1.22.22", Hash: hash, Source: "packageManager", Lockfile: "yarn.lock"}
		_, err := installManager(bc, r, req, node, "x64")
		return out.String(), err
	}
	good := "sha512." + hex.EncodeToString(sum[:])
	if out, err := install(good); err != nil || !strings.Contains(out, "and packageManager's sha512 hash") {
		t.Fatalf("first install: %v\n%s", err, out)
	}
	if out, err := install(good); err != nil || !strings.Contains(out, "Using cached yarn 1.22.22") {
		t.Fatalf("the same pin again: %v\n%s", err, out)
	}
	if out, err := install(""); err != nil || !strings.Contains(out, "Using cached yarn 1.22.22") {
		t.Fatalf("the version without a hash: %v\n%s", err, out)
	}
	bad := "sha512." + strings.Repeat("0", 128)
	out, err := install(bad)
	var ue *cnb.UserError
	if !errors.As(err, &ue) || !strings.Contains(ue.Message, "does not match the hash in package.json's packageManager") {
		t.Fatalf("a changed hash was not checked: %v\n%s", err, out)
	}
	if strings.Contains(out, "Using cached") {
		t.Errorf("a changed hash used the cache:\n%s", out)
	}
}

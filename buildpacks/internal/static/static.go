// Package static is the buildpack for static sites: an index.html at the
// top of the app, or a public/ directory. It adds no build step; it installs
// the buildpack binary as the site's web server (skiff-static, see package
// staticserver) in a launch layer and makes it the web process.
package static

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// ServerName is the web server's file name; the buildpack binary behaves as
// the server when run under this name.
const ServerName = "skiff-static"

// Buildpack is the static site buildpack.
var Buildpack = &cnb.Buildpack{
	ID:          "skiff/static",
	Name:        "Static site",
	Description: "Serves index.html or public/ with a small web server",
	Detect:      detect,
	Build:       build,
}

func detect(dc *cnb.DetectContext) (*cnb.BuildPlan, error) {
	if root(dc.AppDir) == "" {
		return nil, nil
	}
	return &cnb.BuildPlan{}, nil
}

// root returns the directory to serve: the app itself when it has an
// index.html (its public/ is then just a folder of the site), else public/,
// else "".
func root(app string) string {
	if fi, err := os.Stat(filepath.Join(app, "index.html")); err == nil && fi.Mode().IsRegular() {
		return app
	}
	if fi, err := os.Stat(filepath.Join(app, "public")); err == nil && fi.IsDir() {
		return filepath.Join(app, "public")
	}
	return ""
}

type serverMeta struct {
	Binary string `toml:"binary"` // sha256 of the server binary
}

func build(bc *cnb.BuildContext) error {
	bc.Log.Step("Static site detected")
	dir := root(bc.AppDir)
	if dir == "" {
		return cnb.Failf("no index.html and no public/ directory to serve").Hint("Add an index.html, or put the site in public/.")
	}
	rel, _ := filepath.Rel(bc.AppDir, dir)
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		bc.Log.Warn("%s has no index.html: / will answer 404", rel)
	}
	fallback, err := Fallback(bc.Env, "")
	if err != nil {
		return err
	}
	proc, err := Install(bc, dir, fallback)
	if err != nil {
		return err
	}
	bc.Log.Detail("Serving %s/ as the web process", rel)
	if fallback != "" {
		bc.Log.Detail("Paths without a file get %s (SKIFF_STATIC_FALLBACK)", fallback)
	}
	bc.AddProcess(proc)
	return nil
}

// Fallback reads SKIFF_STATIC_FALLBACK, the build-time config var that
// names the file a single-page app's client-side routes get (see
// staticserver.Handler.Fallback): a file name relative to the site, or
// "off" for none; def when it is not set.
func Fallback(env cnb.Env, def string) (string, error) {
	v, ok := env.Lookup("SKIFF_STATIC_FALLBACK")
	if !ok {
		return def, nil
	}
	switch v = strings.TrimSpace(v); strings.ToLower(v) {
	case "", "off", "false", "no", "0", "none":
		return "", nil
	}
	clean := path.Clean("/" + v)[1:]
	if clean == "" || strings.HasPrefix(v, "-") || strings.ContainsAny(v, "\x00\n") {
		return "", cnb.Failf("SKIFF_STATIC_FALLBACK=%q is not a file of the site; use a name like index.html, or off.", v)
	}
	return clean, nil
}

// Install puts the web server (this binary, as ServerName) in the server
// launch layer, reused from the previous image while it is the same
// binary, and returns the web process that serves dir with it.
func Install(bc *cnb.BuildContext, dir, fallback string) (cnb.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return cnb.Process{}, fmt.Errorf("find the server binary: %w", err)
	}
	sum, err := fileSHA256(self)
	if err != nil {
		return cnb.Process{}, err
	}
	layer, err := bc.Layer("server")
	if err != nil {
		return cnb.Process{}, err
	}
	server := filepath.Join(layer.Path, "bin", ServerName)
	var old serverMeta
	if ok, _ := layer.Metadata(&old); ok && old.Binary == sum {
		// Same server as the image being replaced: the exporter reuses
		// that layer as it is.
		bc.Log.Detail("Reusing the web server from the previous build")
	} else {
		bc.Log.Detail("Installing the web server")
		if err := layer.Reset(); err != nil {
			return cnb.Process{}, err
		}
		if err := cnb.CopyFile(self, server, 0o755); err != nil {
			return cnb.Process{}, fmt.Errorf("install the web server: %w", err)
		}
	}
	if err := layer.Commit(cnb.LayerTypes{Launch: true}, serverMeta{Binary: sum}); err != nil {
		return cnb.Process{}, err
	}
	cmd := []string{server, "--root", dir}
	if fallback != "" {
		cmd = append(cmd, "--fallback", fallback)
	}
	return cnb.Process{Type: "web", Command: cmd, Default: true}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

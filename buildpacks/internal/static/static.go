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
	"path/filepath"

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
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the server binary: %w", err)
	}
	sum, err := fileSHA256(self)
	if err != nil {
		return err
	}
	layer, err := bc.Layer("server")
	if err != nil {
		return err
	}
	server := filepath.Join(layer.Path, "bin", ServerName)
	var old serverMeta
	if ok, _ := layer.Metadata(&old); ok && old.Binary == sum {
		// Same server as the image being replaced: the exporter reuses
		// that layer as it is.
		bc.Log.Detail("Reusing the web server from the previous build")
		if err := layer.Commit(cnb.LayerTypes{Launch: true}, serverMeta{Binary: sum}); err != nil {
			return err
		}
	} else {
		bc.Log.Detail("Installing the web server")
		if err := layer.Reset(); err != nil {
			return err
		}
		if err := cnb.CopyFile(self, server, 0o755); err != nil {
			return fmt.Errorf("install the web server: %w", err)
		}
		if err := layer.Commit(cnb.LayerTypes{Launch: true}, serverMeta{Binary: sum}); err != nil {
			return err
		}
	}
	bc.Log.Detail("Serving %s/ as the web process", rel)
	bc.AddProcess(cnb.Process{Type: "web", Command: []string{server, "--root", dir}, Default: true})
	return nil
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

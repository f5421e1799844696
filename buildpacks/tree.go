package buildpacks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/BurntSushi/toml"
)

// WriteTree lays out the buildpacks for a builder under dir, the way a
// builder image holds them under /cnb/buildpacks:
//
//	dir/<escaped id>/<version>/buildpack.toml
//	dir/<escaped id>/<version>/bin/build    the buildpack binary
//	dir/<escaped id>/<version>/bin/detect   -> build (relative symlink)
//	dir/order.toml                          the builder's order
//
// binary is the static buildpack binary (cmd/skiff-buildpack, built with
// CGO_ENABLED=0) for arch, a GOARCH name. Each buildpack directory is
// self-contained; the copies are hard links when dir's file system allows.
func WriteTree(dir, binary, arch string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, bp := range all {
		bpDir := filepath.Join(dir, EscapeID(bp.ID), bp.Version)
		if err := os.RemoveAll(bpDir); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(bpDir, "bin"), 0o755); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(bpDir, "buildpack.toml"), descriptor(bp.ID, bp.Version, bp.Name, bp.Description, arch), 0o644); err != nil {
			return err
		}
		if err := linkOrCopy(binary, filepath.Join(bpDir, "bin", "build")); err != nil {
			return fmt.Errorf("buildpack %s: %w", bp.ID, err)
		}
		if err := os.Symlink("build", filepath.Join(bpDir, "bin", "detect")); err != nil {
			return fmt.Errorf("buildpack %s: %w", bp.ID, err)
		}
	}
	var order bytes.Buffer
	if err := toml.NewEncoder(&order).Encode(struct {
		Order []Group `toml:"order"`
	}{Order()}); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "order.toml"), order.Bytes(), 0o644)
}

// EscapeID turns a buildpack ID into its directory name, as the lifecycle
// does ("skiff/nodejs" -> "skiff_nodejs").
func EscapeID(id string) string { return strings.ReplaceAll(id, "/", "_") }

type descriptorTOML struct {
	API       string           `toml:"api"`
	Buildpack descriptorInfo   `toml:"buildpack"`
	Targets   []descriptorTarg `toml:"targets"`
}

type descriptorInfo struct {
	ID          string `toml:"id"`
	Version     string `toml:"version"`
	Name        string `toml:"name"`
	Description string `toml:"description,omitempty"`
	Homepage    string `toml:"homepage,omitempty"`
	ClearEnv    bool   `toml:"clear-env"`
}

type descriptorTarg struct {
	OS   string `toml:"os"`
	Arch string `toml:"arch"`
}

// descriptor renders buildpack.toml. clear-env stays false: the buildpacks
// want the user's build-time config vars (GOPROXY, npm_config_*, BP_*) in
// their environment, which is what the lifecycle then gives them. No distro
// is named: the binaries are static and need nothing from the base image.
func descriptor(id, version, name, description, arch string) []byte {
	var b bytes.Buffer
	_ = toml.NewEncoder(&b).Encode(descriptorTOML{ // a struct of strings into memory cannot fail
		API:       "0.10",
		Buildpack: descriptorInfo{ID: id, Version: version, Name: name, Description: description, ClearEnv: false},
		Targets:   []descriptorTarg{{OS: "linux", Arch: arch}},
	})
	return b.Bytes()
}

func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return err
	}
	return os.Chmod(path, perm)
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return os.Chmod(dst, 0o755)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return errors.Join(out.Close(), os.Chmod(dst, 0o755))
}

// HostArch is the GOARCH of this process, the default target of a tree.
func HostArch() string { return runtime.GOARCH }

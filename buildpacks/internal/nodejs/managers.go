package nodejs

import (
	"crypto/sha1" //nolint:gosec // npm's integrity of old packages is SHA-1 (shasum); newer ones carry SHA-512
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

// manager is the package manager that installs the app's dependencies.
type manager struct {
	Name    string // "npm", "yarn", "pnpm"
	Version string
	Berry   bool   // Yarn 2 or later
	Dir     string // the manager layer (bin/yarn or bin/pnpm); "" for npm, which comes with Node.js
	meta    managerMeta
}

func (m *manager) major() uint64 {
	v, _ := semver.Parse(m.Version)
	return v.Major
}

type managerMeta struct {
	Layout  string `toml:"layout"`
	Name    string `toml:"name"`
	Version string `toml:"version"`
	Package string `toml:"package"`
	Arch    string `toml:"arch"`
	// Hash is the packageManager hash the layer's files were checked
	// against when downloaded ("" when there was none). A cached manager
	// is reused for a request with a hash only when it is this one: a
	// changed hash is checked against the download again, as corepack does.
	Hash string `toml:"hash,omitempty"`
}

// verifies reports whether a cached manager layer recorded as m stands for
// the hash a request asks for.
func (m managerMeta) verifies(hash string) bool { return hash == "" || m.Hash == hash }

// distribution is the npm registry package a manager version ships in:
// Yarn 1 in "yarn", later Yarn in "@yarnpkg/cli-dist" (corepack's npm
// source for it), pnpm in "pnpm" until 11 and as a native executable in
// "@pnpm/exe.linux-<arch>" from 12 on.
func distribution(name string, major uint64, arch string) (pkg, bin string) {
	switch {
	case name == "yarn" && major == 1:
		return "yarn", "bin/yarn.js"
	case name == "yarn":
		return "@yarnpkg/cli-dist", "bin/yarn.js"
	case name == "pnpm" && major >= 12:
		return "@pnpm/exe.linux-" + arch, "pnpm"
	}
	return "pnpm", "" // bin from the version document: bin/pnpm.cjs, bin/pnpm.mjs
}

// installManager makes the manager layer hold the yarn or pnpm the app asks
// for, downloaded from the npm registry and checked against the registry's
// integrity digest (and packageManager's own hash, when it has one), as
// corepack would, without corepack: its signature check needs keys only
// the public registry serves.
func installManager(bc *cnb.BuildContext, reg *registry, req *managerRequest, node semver.Version, arch string) (*manager, error) {
	if req.Name == "npm" {
		return &manager{Name: "npm"}, nil
	}
	layer, err := bc.Layer("manager")
	if err != nil {
		return nil, err
	}
	bc.Log.Step("Installing %s (%s)", req.Name, req.Source)
	want, err := semver.ParseRange(req.Range)
	if err != nil {
		return nil, cnb.Failf("%s: %v.", req.Source, err)
	}
	line := semver.Range{}
	if req.Line != "" {
		if line, err = semver.ParseRange(req.Line); err != nil {
			return nil, err
		}
	}
	var old managerMeta
	hasOld, _ := layer.Metadata(&old)
	exact, exactErr := semver.Parse(req.Range)
	if exactErr == nil && hasOld && old.Layout == layoutVersion && old.Name == req.Name && old.Version == exact.String() && old.Arch == arch && old.verifies(req.Hash) && layer.HasContents() &&
		cnb.Exists(filepath.Join(layer.Path, "bin", req.Name)) {
		bc.Log.Detail("Using cached %s %s", req.Name, old.Version)
		return committedManager(layer, old)
	}
	// Resolve in the package that holds the line: the newest Yarn 1 for a
	// Yarn 1 lockfile, else the newest later Yarn; pnpm likewise.
	var doc *versionDoc
	var v semver.Version
	var pkgName string
	for _, major := range candidateMajors(req.Name) {
		pkg, _ := distribution(req.Name, major, arch)
		if pkg == pkgName {
			continue
		}
		pkgName = pkg
		p, err := reg.packument(bc.Context, pkg)
		if err != nil {
			return nil, fmt.Errorf("list %s versions: %w", req.Name, err)
		}
		if cand, d, ok := p.resolveWithin(want, line); ok && (doc == nil || cand.Compare(v) > 0) {
			v, doc = cand, d
		}
	}
	if doc == nil {
		return nil, cnb.Failf("No %s release matches %s (%s).", req.Name, req.Range, req.Source).
			Hint(`Pin a released version in package.json, like "packageManager": "%s@%s".`, req.Name, map[string]string{"yarn": "4.9.2", "pnpm": "10.12.1"}[req.Name])
	}
	if !doc.enginesNode().Contains(node) {
		bc.Log.Warn("%s %s asks for Node.js %s; this is Node.js %s", req.Name, v, string(doc.Engines), node)
	}
	pkg, bin := distribution(req.Name, v.Major, arch)
	m := managerMeta{Layout: layoutVersion, Name: req.Name, Version: v.String(), Package: pkg, Arch: arch, Hash: req.Hash}
	// The cached layer serves if it holds this version and its files were
	// checked against the hash asked for, if any (it keeps its record).
	sameFiles := old
	sameFiles.Hash = m.Hash
	if hasOld && sameFiles == m && old.verifies(req.Hash) && layer.HasContents() && cnb.Exists(filepath.Join(layer.Path, "bin", req.Name)) {
		bc.Log.Detail("Using cached %s %s", req.Name, m.Version)
		return committedManager(layer, old)
	}
	if pkg == "@pnpm/exe.linux-"+arch {
		// The native pnpm's document is the platform package's.
		if doc, err = reg.version(bc.Context, pkg, v.String()); err != nil {
			return nil, fmt.Errorf("find %s %s: %w", pkg, v, err)
		}
	}
	if bin == "" {
		bin = doc.binPath(req.Name)
		if bin == "" {
			return nil, cnb.Failf("The npm registry's %s %s names no %s executable.", pkg, v, req.Name)
		}
	}
	start := time.Now()
	if err := layer.Reset(); err != nil {
		return nil, err
	}
	bc.Log.Detail("Downloading %s %s (%s)", req.Name, v, pkg)
	lib := filepath.Join(layer.Path, "lib", req.Name)
	if err := unpackManager(bc, reg.client, doc.Dist, req.Hash, lib, layer.Path, bin, fmt.Sprintf("%s %s", req.Name, v)); err != nil {
		return nil, err
	}
	exe := filepath.Join(lib, filepath.FromSlash(bin))
	if fi, err := os.Stat(exe); err != nil || !fi.Mode().IsRegular() {
		return nil, cnb.Failf("The npm registry's %s %s has no %s.", pkg, v, bin)
	}
	if err := os.Chmod(exe, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(layer.Path, "bin"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(filepath.Join("..", "lib", req.Name, filepath.FromSlash(bin)), filepath.Join(layer.Path, "bin", req.Name)); err != nil {
		return nil, err
	}
	if req.Hash != "" {
		bc.Log.Detail("Verified against the registry's integrity digest and packageManager's %s hash", strings.SplitN(req.Hash, ".", 2)[0])
	} else {
		bc.Log.Detail("Verified against the registry's integrity digest")
	}
	bc.Log.Done(start)
	return committedManager(layer, m)
}

func committedManager(layer *cnb.Layer, m managerMeta) (*manager, error) {
	v, _ := semver.Parse(m.Version)
	mgr := &manager{Name: m.Name, Version: m.Version, Berry: m.Name == "yarn" && v.Major >= 2, Dir: layer.Path, meta: m}
	return mgr, layer.Commit(cnb.LayerTypes{Build: true, Cache: true}, m)
}

// candidateMajors returns one major per distribution package to resolve
// a range in: Yarn 1 and later Yarn live in different packages (the
// newest match of either wins); every pnpm version is listed in "pnpm".
func candidateMajors(name string) []uint64 {
	if name == "yarn" {
		return []uint64{1, 2}
	}
	return []uint64{1}
}

// unpackManager downloads a manager's tarball (integrity-checked), checks
// packageManager's hash against the tarball or, as corepack computes it for
// Yarn's single-file releases, against the executable, and extracts it.
// what names the manager and version for an error ("yarn 1.22.22").
func unpackManager(bc *cnb.BuildContext, c *fetch.Client, d dist, pmHash, dst, tmpDir, bin, what string) error {
	if d.Tarball == "" {
		return fmt.Errorf("the registry gives no tarball")
	}
	path, err := c.File(bc.Context, d.Tarball, tmpDir, maxTarball, d.Integrity)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	matched := pmHash == ""
	if !matched {
		matched, err = hashMatches(path, pmHash)
		if err != nil {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fetch.ExtractTarGz(f, dst, 1); err != nil {
		return err
	}
	if !matched {
		if matched, err = hashMatches(filepath.Join(dst, filepath.FromSlash(bin)), pmHash); err != nil {
			return err
		}
	}
	if !matched {
		return cnb.Failf("%s from the npm registry does not match the hash in package.json's packageManager (%s): neither its tarball nor its %s does.", what, pmHash, bin).
			Hint("If you wrote packageManager yourself, let corepack write it: corepack use <manager>@<version>.")
	}
	return nil
}

// hashMatches reports whether the file's digest is want ("sha512.<hex>").
func hashMatches(path, want string) (bool, error) {
	algo, digest, _ := strings.Cut(want, ".")
	var h hash.Hash
	switch algo {
	case "sha1":
		h = sha1.New() //nolint:gosec // what the registry gives for old packages; checked, not trusted for more
	case "sha224":
		h = sha256.New224()
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	default:
		return false, cnb.Failf("packageManager's hash %q uses an unknown algorithm.", want)
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == digest, nil
}

package python

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
)

// DebianPythons are the Pythons newer than the builder's that the buildpack
// installs from a newer Debian release's packages, from the mirror the
// builder itself was made from: a source every Debian server reaches. They
// run from a layer on the builder's older Debian with their own C library
// (the interpreter's ELF interpreter and library path point into the
// layer, set with patchelf), so nothing of the run image is replaced.
var DebianPythons = []Interpreter{{Version: "3.13", Origin: "Debian 13's packages", Suite: "trixie"}}

// debianSkip are packages of a Python's dependency closure the layer does
// without: data the run image has (time zones, MIME types, protocols,
// CA certificates), and packaging machinery (debconf, perl).
var debianSkip = map[string]bool{
	"tzdata": true, "debconf": true, "perl-base": true, "media-types": true, "mime-support": true, "netbase": true,
	"readline-common": true, "ca-certificates": true, "openssl-provider-legacy": true, "dpkg": true, "install-info": true,
	"libc-bin": true, "gcc-14-base": true, "sensible-utils": true,
}

const (
	debianResolveTTL = 24 * time.Hour
	maxPackagesIndex = 256 << 20
	maxDeb           = 256 << 20
)

// debianMeta is the python layer's metadata.
type debianMeta struct {
	Layout   string `toml:"layout"`
	Suite    string `toml:"suite"`
	Arch     string `toml:"arch"`
	Version  string `toml:"version"`  // the interpreter's Debian version
	Packages string `toml:"packages"` // digest of the package set
	Resolved string `toml:"resolved"` // RFC 3339
}

// debianArch maps a GOARCH to Debian's architecture, its multiarch triplet
// and its dynamic loader.
func debianArch(goarch string) (arch, triplet, loader string, err error) {
	switch goarch {
	case "amd64":
		return "amd64", "x86_64-linux-gnu", "usr/lib64/ld-linux-x86-64.so.2", nil
	case "arm64":
		return "arm64", "aarch64-linux-gnu", "usr/lib/ld-linux-aarch64.so.1", nil
	}
	return "", "", "", cnb.Failf("Python from Debian's packages is not set up for the %s architecture.", goarch)
}

// installDebianPython makes the python layer (build and launch) hold the
// Python of interp.Suite and returns the interpreter's path and version.
func installDebianPython(bc *cnb.BuildContext, interp Interpreter, goarch string) (string, string, error) {
	arch, triplet, loader, err := debianArch(goarch)
	if err != nil {
		return "", "", err
	}
	layer, err := bc.Layer("python")
	if err != nil {
		return "", "", err
	}
	exe := filepath.Join(layer.Path, "usr", "bin", "python"+interp.Version)
	var old debianMeta
	hasOld, _ := layer.Metadata(&old)
	intact := hasOld && old.Layout == layoutVersion && old.Suite == interp.Suite && old.Arch == arch && layer.HasContents() && cnb.Exists(exe)
	commit := func(m debianMeta) (string, string, error) {
		if err := layer.Commit(cnb.LayerTypes{Build: true, Launch: true, Cache: true}, m); err != nil {
			return "", "", err
		}
		return exe, pythonVersion(m.Version), nil
	}
	bc.Log.Step("Installing Python %s (%s)", interp.Version, interp.Origin)
	if intact && cnb.Fresh(old.Resolved, debianResolveTTL) {
		bc.Log.Detail("Using cached Python %s (Debian %s)", pythonVersion(old.Version), old.Version)
		return commit(old)
	}
	mirror := debianMirror(bc)
	client := fetch.New("skiff-buildpacks")
	index, err := debianIndex(bc, client, mirror, interp.Suite, arch)
	if err != nil {
		if intact {
			bc.Log.Warn("cannot read Debian's package index (%v); using the cached Python %s", err, pythonVersion(old.Version))
			return commit(old)
		}
		return "", "", err
	}
	roots := []string{"python" + interp.Version, "python" + interp.Version + "-venv"}
	pkgs, err := index.closure(roots)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	for _, p := range pkgs {
		fmt.Fprintf(h, "%s=%s\n", p.Name, p.Version)
	}
	m := debianMeta{Layout: layoutVersion, Suite: interp.Suite, Arch: arch, Version: index["python"+interp.Version].Version,
		Packages: hex.EncodeToString(h.Sum(nil)), Resolved: cnb.Timestamp()}
	if intact && old.Packages == m.Packages {
		bc.Log.Detail("Using cached Python %s (Debian %s)", pythonVersion(m.Version), m.Version)
		return commit(m)
	}
	start := time.Now()
	if err := layer.Reset(); err != nil {
		return "", "", err
	}
	bc.Log.Detail("Downloading Python %s and %d libraries from Debian %s (%s)", pythonVersion(m.Version), len(pkgs)-1, interp.Suite, mirror)
	for _, p := range pkgs {
		if err := installDeb(bc, client, mirror, p, layer.Path); err != nil {
			return "", "", fmt.Errorf("install %s %s: %w", p.Name, p.Version, err)
		}
	}
	// The interpreter loads the layer's C library with the layer's loader,
	// never the run image's, whatever the run image's Debian is.
	libs := []string{filepath.Join(layer.Path, "usr", "lib", triplet), filepath.Join(layer.Path, "lib", triplet)}
	if _, err := bc.Output(cnb.Cmd{Name: "patchelf", Args: []string{"--set-interpreter", filepath.Join(layer.Path, loader),
		"--force-rpath", "--set-rpath", strings.Join(libs, ":"), exe}, Env: bc.Env}); err != nil {
		return "", "", cnb.Failf("patchelf could not point Python %s at its own C library: %v", interp.Version, err).
			Hint("The builder needs patchelf (skiff's default builder has it).")
	}
	out, err := bc.Output(cnb.Cmd{Name: exe, Args: []string{"-c", "import ssl, sqlite3, ctypes, lzma, bz2, zlib, venv, sys; print('%d.%d.%d' % sys.version_info[:3])"}, Env: bc.Env})
	if err != nil {
		return "", "", fmt.Errorf("the installed Python %s does not run: %w", interp.Version, err)
	}
	bc.Log.Detail("Python %s runs with Debian %s's C library and OpenSSL", strings.TrimSpace(out), interp.Suite)
	bc.Log.Done(start)
	return commit(m)
}

// pythonVersion turns a Debian version ("3.13.5-2+deb13u5") into Python's.
func pythonVersion(debian string) string {
	v, _, _ := strings.Cut(debian, "-")
	return v
}

// debianMirror is where the builder's own packages came from (its apt
// sources), unless SKIFF_DEBIAN_MIRROR says otherwise.
func debianMirror(bc *cnb.BuildContext) string {
	if m := strings.TrimSpace(bc.Env.Get("SKIFF_DEBIAN_MIRROR")); m != "" {
		return strings.TrimRight(m, "/")
	}
	for _, f := range []string{"/etc/apt/sources.list", "/etc/apt/sources.list.d/debian.sources"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			switch {
			case len(fields) >= 3 && fields[0] == "deb" && strings.HasPrefix(fields[1], "http"):
				return strings.TrimRight(fields[1], "/")
			case len(fields) >= 2 && fields[0] == "URIs:" && strings.HasPrefix(fields[1], "http"):
				return strings.TrimRight(fields[1], "/")
			}
		}
	}
	return "http://deb.debian.org/debian"
}

// debPackage is one entry of a Packages index.
type debPackage struct {
	Name, Version, Filename, SHA256 string
	Depends                         []string // first alternative of each Depends and Pre-Depends
	Provides                        []string
}

type debIndex map[string]*debPackage

// debianIndex downloads the suite's main Packages index, checked against
// the InRelease file whose signature gpgv verifies with the builder's
// Debian archive keyring, as apt does.
func debianIndex(bc *cnb.BuildContext, c *fetch.Client, mirror, suite, arch string) (debIndex, error) {
	dir, err := os.MkdirTemp("", "debian-index-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	release, err := c.File(bc.Context, mirror+"/dists/"+suite+"/InRelease", dir, 4<<20, "")
	if err != nil {
		return nil, fmt.Errorf("download the %s release file: %w", suite, err)
	}
	signed, err := verifyRelease(bc, release, filepath.Join(dir, "Release"))
	if err != nil {
		return nil, err
	}
	want := ""
	inSHA := false
	for _, line := range strings.Split(signed, "\n") {
		if strings.HasPrefix(line, "SHA256:") {
			inSHA = true
			continue
		}
		if inSHA && !strings.HasPrefix(line, " ") {
			inSHA = false
		}
		if f := strings.Fields(line); inSHA && len(f) == 3 && f[2] == "main/binary-"+arch+"/Packages.gz" {
			want = f[0]
		}
	}
	if want == "" {
		return nil, fmt.Errorf("the %s release file lists no main/binary-%s/Packages.gz", suite, arch)
	}
	path, err := c.File(bc.Context, mirror+"/dists/"+suite+"/main/binary-"+arch+"/Packages.gz", dir, maxPackagesIndex, sriSHA256(want))
	if err != nil {
		return nil, fmt.Errorf("download the %s package index: %w", suite, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	return parsePackages(gz)
}

// verifyRelease checks an InRelease file's signature and writes and returns
// the signed text (never what surrounds it).
func verifyRelease(bc *cnb.BuildContext, inRelease, out string) (string, error) {
	keyrings, _ := filepath.Glob("/usr/share/keyrings/debian-archive-*.gpg")
	var args []string
	for _, k := range keyrings {
		if !strings.Contains(k, "removed") {
			args = append(args, "--keyring", k)
		}
	}
	if len(args) == 0 {
		return "", cnb.Failf("The builder has no Debian archive keyring to verify Debian's packages with.").Hint("Use a builder with debian-archive-keyring.")
	}
	args = append(args, "--status-fd", "1", "--output", out, inRelease)
	cmd := exec.CommandContext(bc.Context, "gpgv", args...)
	cmd.Env = bc.Env
	status, _ := cmd.Output() // gpgv exits 2 when some signatures are by keys it lacks
	good := false
	for _, line := range strings.Split(string(status), "\n") {
		switch {
		case strings.HasPrefix(line, "[GNUPG:] VALIDSIG "):
			good = true
		case strings.HasPrefix(line, "[GNUPG:] BADSIG "), strings.HasPrefix(line, "[GNUPG:] EXPKEYSIG "), strings.HasPrefix(line, "[GNUPG:] REVKEYSIG "):
			return "", fmt.Errorf("Debian's release file has a bad signature: %s", strings.TrimPrefix(line, "[GNUPG:] "))
		}
	}
	if !good {
		return "", fmt.Errorf("Debian's release file has no signature the builder's archive keyring verifies")
	}
	data, err := os.ReadFile(out)
	return string(data), err
}

func sriSHA256(hexDigest string) string {
	b, err := hex.DecodeString(hexDigest)
	if err != nil {
		return "sha256-invalid"
	}
	return "sha256-" + base64.StdEncoding.EncodeToString(b)
}

// parsePackages reads a Packages index.
func parsePackages(r io.Reader) (debIndex, error) {
	idx := debIndex{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	cur := &debPackage{}
	flush := func() {
		if cur.Name != "" && idx[cur.Name] == nil {
			idx[cur.Name] = cur
		}
		cur = &debPackage{}
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Filename":
			cur.Filename = v
		case "SHA256":
			cur.SHA256 = v
		case "Depends", "Pre-Depends":
			for _, alt := range strings.Split(v, ",") {
				first := strings.TrimSpace(strings.Split(alt, "|")[0])
				if name := strings.Fields(first); len(name) > 0 {
					n, _, _ := strings.Cut(name[0], ":")
					cur.Depends = append(cur.Depends, n)
				}
			}
		case "Provides":
			for _, p := range strings.Split(v, ",") {
				if name := strings.Fields(strings.TrimSpace(p)); len(name) > 0 {
					cur.Provides = append(cur.Provides, name[0])
				}
			}
		}
	}
	flush()
	return idx, sc.Err()
}

// closure returns the packages roots need, dependencies first resolved by
// name or by what a package provides, without debianSkip's.
func (idx debIndex) closure(roots []string) ([]*debPackage, error) {
	provides := map[string]string{}
	for name, p := range idx {
		for _, pr := range p.Provides {
			if _, ok := provides[pr]; !ok {
				provides[pr] = name
			}
		}
	}
	seen := map[string]*debPackage{}
	todo := append([]string(nil), roots...)
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if debianSkip[n] {
			continue
		}
		p := idx[n]
		if p == nil {
			if alt, ok := provides[n]; ok {
				p = idx[alt]
			}
		}
		if p == nil {
			return nil, fmt.Errorf("Debian's package index has no %s", n)
		}
		if seen[p.Name] != nil || debianSkip[p.Name] {
			continue
		}
		seen[p.Name] = p
		todo = append(todo, p.Depends...)
	}
	out := make([]*debPackage, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// installDeb downloads a package (its digest checked against the signed
// index) and unpacks its files into dst; dpkg-deb reads the archive, the
// buildpack's own extraction writes it.
func installDeb(bc *cnb.BuildContext, c *fetch.Client, mirror string, p *debPackage, dst string) error {
	path, err := c.File(bc.Context, mirror+"/"+p.Filename, dst, maxDeb, sriSHA256(p.SHA256))
	if err != nil {
		return err
	}
	defer os.Remove(path)
	cmd := exec.CommandContext(bc.Context, "dpkg-deb", "--fsys-tarfile", path)
	cmd.Env = bc.Env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	xerr := fetch.ExtractTar(stdout, dst, 0, fetch.RelativeLinks)
	_, _ = io.Copy(io.Discard, stdout) // what the extraction left, so that dpkg-deb ends
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("dpkg-deb: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return xerr
}

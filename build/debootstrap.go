package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/skiffhq/skiff"
)

// Debian packages of the default builder's two images, beyond debootstrap's
// minbase. cmd/skiff passes the buildpacks package's lists (which know what
// each buildpack needs); these defaults cover the same ground.
var (
	DefaultBuildPackages = []string{"ca-certificates", "git", "libstdc++6", "python3", "python3-venv", "xz-utils", "tzdata", "netbase"}
	DefaultRunPackages   = []string{"ca-certificates", "libstdc++6", "python3", "tzdata", "netbase"}
)

// The default builder's images.
const (
	DefaultBuildBase = "skiff.local/build-base:bookworm"
	DefaultRunImage  = "skiff.local/run:bookworm"
)

// CreateOptions configure builder:create.
type CreateOptions struct {
	// BuildpacksDir holds the buildpacks and order.toml to put in the
	// builder (the buildpacks package's WriteTree output).
	BuildpacksDir string
	// Mirror is the Debian mirror; "" reads the machine's apt sources, and
	// falls back to the distribution's main mirror.
	Mirror string
	Suite  string // default bookworm
	// BuildPackages and RunPackages default to DefaultBuildPackages and
	// DefaultRunPackages.
	BuildPackages, RunPackages []string
	// Rebase re-runs debootstrap even when a cached root file system exists.
	Rebase bool
	// CacheDir keeps debootstrap's results and downloads; default
	// DATA/builder/debootstrap.
	CacheDir string
	// noDaemons makes debootstrap keep the packages' maintainer scripts
	// from starting any server (for the service images).
	noDaemons bool
	// ExtraCACerts are PEM files of certificate authorities to trust in
	// builds and apps besides Debian's, such as a company's TLS-inspecting
	// proxy. nil means the machine's own locally added ones
	// (/usr/local/share/ca-certificates); an empty list means none.
	ExtraCACerts []string
}

// CreateDefaultBuilder makes the default builder (DefaultBuilder) with no
// registry: Debian root file systems from debootstrap, cached under
// DATA/builder/debootstrap/ so that re-running is fast, turned into the
// build base and run images, plus the lifecycle and the buildpacks.
// Progress goes to out. Running it again replaces the builder; apps built
// with the old one keep their images.
func (p *Platform) CreateDefaultBuilder(ctx context.Context, opts CreateOptions, out io.Writer) error {
	start := time.Now()
	p.making.CompareAndSwap(0, start.UnixNano())
	defer p.making.Store(0)
	if opts.Suite == "" {
		opts.Suite = "bookworm"
	}
	if opts.BuildPackages == nil {
		opts.BuildPackages = DefaultBuildPackages
	}
	if opts.RunPackages == nil {
		opts.RunPackages = DefaultRunPackages
	}
	if opts.BuildpacksDir == "" {
		return skiff.Errorf(skiff.EINVALID, "builder:create needs the buildpacks directory")
	}
	if _, err := loadLifecycle(p.cfg.LifecycleDir); err != nil {
		return err
	}
	if opts.Mirror == "" {
		opts.Mirror = aptMirror("/etc/apt", opts.Suite)
	}
	if opts.ExtraCACerts == nil {
		opts.ExtraCACerts, _ = filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	}
	cas, err := readCACerts(opts.ExtraCACerts)
	if err != nil {
		return err
	}
	step := time.Now()
	done := func() {
		fmt.Fprintf(out, "       done in %.0fs\n", time.Since(step).Seconds())
		step = time.Now()
	}
	runRoot, err := p.debootstrap(ctx, opts, "run", opts.RunPackages, out)
	if err != nil {
		return err
	}
	done()
	fmt.Fprintf(out, "-----> Storing the run image %s\n", DefaultRunImage)
	runLayers, err := p.rootfsLayers(ctx, runRoot, opts.Suite, cas)
	if err != nil {
		return fmt.Errorf("run image: %w", err)
	}
	if _, err := p.imageFromLayers(ctx, DefaultRunImage, opts.Suite, runLayers); err != nil {
		return fmt.Errorf("run image: %w", err)
	}
	done()
	// The build image: the run image's root file system with the build
	// packages on top (buildbase.go).
	upper, err := p.buildOnRun(ctx, opts, runRoot, opts.BuildPackages, out)
	if err != nil {
		return err
	}
	done()
	fmt.Fprintf(out, "-----> Storing the build image %s\n", DefaultBuildBase)
	l, err := p.store.PutLayer(ctx, func(w io.Writer) error {
		t := newTarBuilder(w)
		t.overlayUpper = true
		if err := t.tree(upper, "/", true); err != nil {
			return err
		}
		return t.close()
	})
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	buildLayers := []mutate.Addendum{runLayers[0], {Layer: l, History: v1.History{CreatedBy: "skiff: apt-get install " + strings.Join(slices.Sorted(slices.Values(opts.BuildPackages)), " ")}}}
	bundle, err := readUpperOrLower(upper, runRoot, caBundle)
	if len(cas) > 0 && err != nil {
		return fmt.Errorf("extra CA certificates need ca-certificates in the image: %w", err)
	}
	if ca, ok, err := p.caLayer(ctx, bundle, cas); err != nil {
		return fmt.Errorf("build image: %w", err)
	} else if ok {
		buildLayers = append(buildLayers, ca)
	}
	if _, err := p.imageFromLayers(ctx, DefaultBuildBase, opts.Suite, buildLayers); err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	done()
	fmt.Fprintf(out, "-----> Assembling %s (lifecycle and buildpacks)\n", DefaultBuilder)
	h, err := p.CreateBuilderImage(ctx, BuilderSpec{
		Ref: DefaultBuilder, BaseRef: DefaultBuildBase, RunRef: DefaultRunImage,
		UID: cnbUID, GID: cnbUID, StackID: "io.skiff." + opts.Suite,
		Description:   "skiff's default builder: Debian " + opts.Suite + ", skiff's buildpacks",
		BuildpacksDir: opts.BuildpacksDir,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "-----> Builder %s ready (%s) in %.0fs\n", DefaultBuilder, h.String()[:19], time.Since(start).Seconds())
	return nil
}

// cnbUID is the build and run user of the default builder.
const cnbUID = 1000

// debootstrap returns a Debian root file system with pkgs, from the cache
// or made now.
func (p *Platform) debootstrap(ctx context.Context, opts CreateOptions, kind string, pkgs []string, out io.Writer) (string, error) {
	pkgs = slices.Sorted(slices.Values(pkgs))
	key := opts.Suite + "\n" + opts.Mirror + "\n" + strings.Join(pkgs, ",")
	if opts.noDaemons {
		key += "\nsecurity updates"
	}
	sum := sha256.Sum256([]byte(key))
	base := p.debootstrapCacheDir(opts)
	dir := filepath.Join(base, kind+"-"+opts.Suite+"-"+hex.EncodeToString(sum[:6]))
	// Two daemons or test binaries sharing a cache take turns: the second
	// waits, then finds the first one's result complete.
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock the debootstrap cache: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil && !opts.Rebase {
		fmt.Fprintf(out, "-----> Using the cached Debian %s %s root file system\n", opts.Suite, kind)
		return filepath.Join(dir, "rootfs"), nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", skiff.Errorf(skiff.EUNAVAILABLE, "debootstrap is not installed (apt-get install debootstrap)")
	}
	fmt.Fprintf(out, "-----> Creating a Debian %s %s root file system from %s\n", opts.Suite, kind, opts.Mirror)
	fmt.Fprintf(out, "       packages: %s\n", strings.Join(pkgs, " "))
	if err := unmountUnder(dir); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	debs := filepath.Join(base, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", err
	}
	root := filepath.Join(dir, "rootfs")
	// dpkg's fsync of every file is most of its time, and worth nothing
	// here: an interrupted debootstrap is thrown away and made again.
	// dpkg reads the setting from the target once debootstrap runs it
	// there; finishRootfs removes it.
	if err := os.MkdirAll(filepath.Join(root, "etc", "dpkg", "dpkg.cfg.d"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "dpkg", "dpkg.cfg.d", unsafeIOConf), []byte("force-unsafe-io\n"), 0o644); err != nil {
		return "", err
	}
	args := []string{"--variant=minbase", "--components=main", "--include=" + strings.Join(pkgs, ","), "--cache-dir=" + debs}
	if opts.noDaemons {
		args = append(args, "--foreign")
	}
	err = runDebootstrap("debootstrap", exec.CommandContext(ctx, "debootstrap", append(args, opts.Suite, root, opts.Mirror)...), out)
	if err == nil && opts.noDaemons {
		// Packages of servers start them from their maintainer scripts
		// (invoke-rc.d), which in a chroot would run them on the host:
		// policy-rc.d forbids it before the second stage configures them.
		if err = os.WriteFile(filepath.Join(root, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err == nil {
			err = runDebootstrap("debootstrap --second-stage", exec.CommandContext(ctx, "chroot", root, "/debootstrap/debootstrap", "--second-stage"), out)
		}
		if err == nil {
			// Servers get the distribution's security and stable
			// updates, which debootstrap's one suite does not carry.
			err = upgradeRootfs(ctx, root, opts.Suite, opts.Mirror, out)
		}
	}
	if uerr := unmountUnder(root); uerr != nil {
		return "", fmt.Errorf("unmount debootstrap's file systems: %w", uerr)
	}
	if err != nil {
		return "", err
	}
	if err := finishRootfs(root); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", err
	}
	return root, nil
}

// upgradeRootfs installs the updates of suite-security and suite-updates
// in root, with apt in a chroot.
func upgradeRootfs(ctx context.Context, root, suite, mirror string, out io.Writer) error {
	security := strings.TrimSuffix(mirror, "/debian") + "/debian-security"
	sources := fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n", mirror, suite, mirror, suite, security, suite)
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return err
	}
	for _, m := range []struct{ src, dst, typ string }{{"proc", "proc", "proc"}, {"/dev", "dev", ""}} {
		flags := uintptr(0)
		if m.typ == "" {
			flags = syscall.MS_BIND | syscall.MS_REC
		}
		if err := syscall.Mount(m.src, filepath.Join(root, m.dst), m.typ, flags, ""); err != nil {
			return fmt.Errorf("mount %s in the root file system: %w", m.dst, err)
		}
	}
	fmt.Fprintf(out, "       Installing security and stable updates\n")
	apt := []string{"-o", "Dpkg::Options::=--force-confold", "-o", "APT::Get::Assume-Yes=true", "-q"}
	for _, args := range [][]string{{"update"}, {"dist-upgrade"}, {"clean"}} {
		if err := runDebootstrap("apt-get "+args[0], exec.CommandContext(ctx, "chroot", append(append([]string{root, "apt-get"}, apt...), args...)...), io.Discard); err != nil {
			return err
		}
	}
	return nil
}

// runDebootstrap runs a stage of debootstrap (or apt in its chroot),
// showing its steps on out; a failure carries its last lines.
func runDebootstrap(what string, cmd *exec.Cmd, out io.Writer) error {
	return runShowing(what, cmd, out, func(line string) bool {
		return strings.HasPrefix(line, "I: Retrieving Release") || strings.HasPrefix(line, "I: Resolving") ||
			strings.HasPrefix(line, "I: Installing core") || strings.HasPrefix(line, "I: Configuring required") ||
			strings.HasPrefix(line, "I: Base system installed") || strings.HasPrefix(line, "E:")
	})
}

// runShowing runs cmd in the environment package tools expect, showing on
// out the lines show picks (debootstrap's "I: " dropped); a failure
// carries the last lines.
func runShowing(what string, cmd *exec.Cmd, out io.Writer, show func(line string) bool) error {
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sanitize(sc.Text())
			tail = append(tail, line)
			if len(tail) > tailLines {
				tail = tail[1:]
			}
			if show(line) {
				fmt.Fprintf(out, "       %s\n", strings.TrimPrefix(line, "I: "))
			}
		}
		_, _ = io.Copy(io.Discard, pr) // drain what the scanner left
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "%s failed (%v):\n%s", what, err, strings.Join(tail, "\n"))
	}
	return nil
}

// finishRootfs adds the cnb user and drops what an image does not need.
func finishRootfs(root string) error {
	for file, line := range map[string]string{
		"etc/passwd": fmt.Sprintf("cnb:x:%d:%d:CNB build and run user:/home/cnb:/bin/bash\n", cnbUID, cnbUID),
		"etc/group":  fmt.Sprintf("cnb:x:%d:\n", cnbUID),
	} {
		p := filepath.Join(root, file)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "\ncnb:") {
			if err := os.WriteFile(p, append(b, line...), 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "home", "cnb"), 0o755); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(root, "home", "cnb"), cnbUID, cnbUID); err != nil {
		return err
	}
	for _, glob := range []string{"etc/dpkg/dpkg.cfg.d/" + unsafeIOConf, "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*", "var/log/*.log", "var/log/apt/*"} {
		matches, _ := filepath.Glob(filepath.Join(root, glob))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
	// debootstrap leaves device nodes in /dev; builds and apps get theirs
	// from skiff.
	ents, _ := os.ReadDir(filepath.Join(root, "dev"))
	for _, e := range ents {
		os.RemoveAll(filepath.Join(root, "dev", e.Name()))
	}
	return nil
}

// imageFromLayers stores an image of adds with the CNB base image labels.
func (p *Platform) imageFromLayers(ctx context.Context, ref, suite string, adds []mutate.Addendum) (v1.Hash, error) {
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		fmt.Sprintf("CNB_USER_ID=%d", cnbUID), fmt.Sprintf("CNB_GROUP_ID=%d", cnbUID),
		// Node.js ships its own CA list; this makes it trust the system's
		// too, extra CAs included.
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt"}
	cf.Config.User = fmt.Sprintf("%d:%d", cnbUID, cnbUID)
	cf.Config.Labels = map[string]string{
		labelStackID:                        "io.skiff." + suite,
		"io.buildpacks.base.distro.name":    "debian",
		"io.buildpacks.base.distro.version": debianVersion(suite),
		"io.buildpacks.base.maintainer":     "skiff",
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return v1.Hash{}, err
	}
	return p.store.Put(ctx, ref, img)
}

// rootfsLayers stores a root file system as image layers: one
// uncompressed layer, and one more with the extra certificate authorities
// (kept apart so that the cached root file system stays as debootstrap
// made it).
func (p *Platform) rootfsLayers(ctx context.Context, root, suite string, cas []caCert) ([]mutate.Addendum, error) {
	l, err := p.store.PutLayer(ctx, func(w io.Writer) error {
		t := newTarBuilder(w)
		if err := t.tree(root, "/", true); err != nil {
			return err
		}
		return t.close()
	})
	if err != nil {
		return nil, err
	}
	adds := []mutate.Addendum{{Layer: l, History: v1.History{CreatedBy: "skiff: debootstrap " + suite}}}
	if len(cas) > 0 {
		bundle, err := os.ReadFile(filepath.Join(root, caBundle))
		if err != nil {
			return nil, fmt.Errorf("extra CA certificates need ca-certificates in the image: %w", err)
		}
		ca, _, err := p.caLayer(ctx, bundle, cas)
		if err != nil {
			return nil, err
		}
		adds = append(adds, ca)
	}
	return adds, nil
}

// caBundle is Debian's bundle of trusted certificate authorities.
const caBundle = "etc/ssl/certs/ca-certificates.crt"

// caLayer is the layer of the extra certificate authorities: the PEM files,
// and the system bundle with them added. false when there are none.
func (p *Platform) caLayer(ctx context.Context, bundle []byte, cas []caCert) (mutate.Addendum, bool, error) {
	if len(cas) == 0 {
		return mutate.Addendum{}, false, nil
	}
	bundle = slices.Clone(bundle)
	cl, err := p.store.PutLayer(ctx, func(w io.Writer) error {
		t := newTarBuilder(w)
		for _, ca := range cas {
			bundle = append(append(bundle, '\n'), ca.pem...)
			if err := t.file("/usr/local/share/ca-certificates/"+ca.name, 0o644, ca.pem); err != nil {
				return err
			}
		}
		if err := t.file("/"+caBundle, 0o644, bundle); err != nil {
			return err
		}
		return t.close()
	})
	if err != nil {
		return mutate.Addendum{}, false, err
	}
	return mutate.Addendum{Layer: cl, History: v1.History{CreatedBy: "skiff: extra CA certificates"}}, true, nil
}

// caCert is an extra certificate authority for the images.
type caCert struct {
	name string
	pem  []byte
}

func readCACerts(paths []string) ([]caCert, error) {
	var out []caCert
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("extra CA certificate: %w", err)
		}
		if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
			return nil, skiff.Errorf(skiff.EINVALID, "extra CA certificate %s is not a PEM certificate", p)
		}
		name := filepath.Base(p)
		if !strings.HasSuffix(name, ".crt") {
			name += ".crt"
		}
		out = append(out, caCert{name: name, pem: b})
	}
	return out, nil
}

func debianVersion(suite string) string {
	switch suite {
	case "bookworm":
		return "12"
	case "trixie":
		return "13"
	}
	return suite
}

// aptMirror finds the Debian mirror in the machine's apt sources (one-line
// and deb822 formats) for suite, or returns the distribution's main mirror.
func aptMirror(aptDir, suite string) string {
	files := []string{filepath.Join(aptDir, "sources.list")}
	more, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", "*"))
	files = append(files, more...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorFromSources(string(b), suite); m != "" {
			return m
		}
	}
	return "http://deb.debian.org/debian"
}

func mirrorFromSources(text, suite string) string {
	// deb822 stanzas: URIs: + Suites:.
	for _, stanza := range strings.Split(text, "\n\n") {
		var uris, suites []string
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "uris":
				uris = strings.Fields(v)
			case "suites":
				suites = strings.Fields(v)
			}
		}
		if slices.Contains(suites, suite) {
			for _, u := range uris {
				if strings.HasPrefix(u, "http") && strings.HasSuffix(strings.TrimSuffix(u, "/"), "/debian") {
					return strings.TrimSuffix(u, "/")
				}
			}
		}
	}
	// One-line: deb [opts] URI suite components.
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite && strings.HasPrefix(f[0], "http") && strings.HasSuffix(strings.TrimSuffix(f[0], "/"), "/debian") {
			return strings.TrimSuffix(f[0], "/")
		}
	}
	return ""
}

package build

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/skiffhq/skiff"
)

// ServiceImageOptions are where CreateServiceImages gets Debian from.
type ServiceImageOptions struct {
	Mirror   string // "" reads the machine's apt sources
	CacheDir string // debootstrap's cache; "" for DATA/builder/debootstrap
}

// CreateServiceImages makes the images of backing services (PostgreSQL,
// Redis) the way the default builder is made: a Debian root file system
// from debootstrap with req.Packages, cached under the debootstrap cache
// (no maintainer script may start a server while it is made), stored as
// one uncompressed layer that every image of req shares, each with its own
// config. Each image is tagged twice, as asked and with its digest
// appended, so that a service keeps its image when a later call replaces
// the first tag. The versions dpkg installed of the packages come back
// and are recorded in each image's labels (io.skiff.package.<name>). An
// image whose tag exists is not made again unless req.Rebase.
func (p *Platform) CreateServiceImages(ctx context.Context, req *skiff.DebianImageRequest, opts ServiceImageOptions, out io.Writer) (*skiff.DebianImages, error) {
	if len(req.Images) == 0 || req.Suite == "" {
		return nil, skiff.Errorf(skiff.EINVALID, "service images: no image or suite asked for")
	}
	if !req.Rebase {
		if res, ok := p.existingServiceImages(req); ok {
			return res, nil
		}
	}
	copts := CreateOptions{Suite: req.Suite, Mirror: opts.Mirror, CacheDir: opts.CacheDir, Rebase: req.Rebase, noDaemons: true}
	if copts.Mirror == "" {
		copts.Mirror = aptMirror("/etc/apt", req.Suite)
	}
	root, err := p.debootstrap(ctx, copts, "services", req.Packages, out)
	if err != nil {
		return nil, err
	}
	versions, err := dpkgVersions(root, req.Packages)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "-----> Storing the service images (Debian %s: %s)\n", req.Suite, formatVersions(versions))
	adds, err := p.rootfsLayers(ctx, root, req.Suite, nil)
	if err != nil {
		return nil, err
	}
	res := &skiff.DebianImages{Digests: map[string]string{}, Packages: versions, Users: map[string]string{}}
	for _, ic := range req.Images {
		if ic.User != "" {
			passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
			if err != nil {
				return nil, err
			}
			uid, gid, ok := passwdIDs(passwd, ic.User)
			if !ok {
				return nil, fmt.Errorf("service image %s: no user %s in the root file system", ic.Ref, ic.User)
			}
			ic.User = uid + ":" + gid
		}
		res.Users[ic.Ref] = ic.User
		h, err := p.putServiceImage(ctx, adds, req.Suite, ic, versions)
		if err != nil {
			return nil, fmt.Errorf("service image %s: %w", ic.Ref, err)
		}
		res.Digests[ic.Ref] = h.String()
	}
	return res, nil
}

// existingServiceImages answers from the store when every image exists.
func (p *Platform) existingServiceImages(req *skiff.DebianImageRequest) (*skiff.DebianImages, bool) {
	res := &skiff.DebianImages{Digests: map[string]string{}, Packages: map[string]string{}, Users: map[string]string{}}
	for _, ic := range req.Images {
		h, err := p.store.Resolve(ic.Ref)
		if err != nil {
			return nil, false
		}
		img, err := p.store.Image(h.String())
		if err != nil {
			return nil, false
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, false
		}
		for k, v := range cf.Config.Labels {
			if name, ok := strings.CutPrefix(k, packageLabel); ok {
				res.Packages[name] = v
			}
		}
		res.Digests[ic.Ref] = h.String()
		res.Users[ic.Ref] = cf.Config.User
	}
	return res, true
}

const packageLabel = "io.skiff.package."

func (p *Platform) putServiceImage(ctx context.Context, adds []mutate.Addendum, suite string, ic skiff.ImageConfig, versions map[string]string) (v1.Hash, error) {
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
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, ic.Env...)
	cf.Config.User, cf.Config.Cmd, cf.Config.WorkingDir = ic.User, ic.Cmd, ic.WorkingDir
	cf.Config.Labels = map[string]string{"io.skiff.debian.suite": suite}
	maps.Copy(cf.Config.Labels, ic.Labels)
	for name, v := range versions {
		cf.Config.Labels[packageLabel+name] = v
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, err
	}
	h, err := p.store.Put(ctx, ic.Ref, img)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := p.store.Put(ctx, ic.Ref+"-"+h.Hex[:12], img); err != nil {
		return v1.Hash{}, err
	}
	return h, nil
}

// dpkgVersions reads the installed versions of pkgs from the root file
// system's dpkg status; a package asked for and not installed is an error.
func dpkgVersions(root string, pkgs []string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, fmt.Errorf("read dpkg status: %w", err)
	}
	installed := map[string]string{}
	for stanza := range bytes.SplitSeq(b, []byte("\n\n")) {
		var name, version, status string
		sc := bufio.NewScanner(bytes.NewReader(stanza))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				name = v
			case "Version":
				version = v
			case "Status":
				status = v
			}
		}
		if name != "" && strings.HasSuffix(status, " installed") {
			installed[name] = version
		}
	}
	out := map[string]string{}
	for _, p := range pkgs {
		v, ok := installed[p]
		if !ok {
			return nil, fmt.Errorf("package %s is not installed in the service root file system", p)
		}
		out[p] = v
	}
	return out, nil
}

func formatVersions(v map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(v) {
		parts = append(parts, k+" "+v[k])
	}
	return strings.Join(parts, ", ")
}

// passwdIDs finds a user's numeric ids in a passwd file.
func passwdIDs(passwd []byte, name string) (uid, gid string, ok bool) {
	for line := range strings.SplitSeq(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			return f[2], f[3], true
		}
	}
	return "", "", false
}

package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/layer"
)

// builderInfo is what a build needs to know about its builder.
type builderInfo struct {
	Ref      string
	Digest   v1.Hash
	Rootfs   string // unpacked, shared read-only by all builds
	UID, GID int
	RunImage string
	Env      []string
}

// builder resolves ref in the store, unpacks its root file system under
// DATA/builder/<digest>/ the first time, and reads its CNB settings.
func (p *Platform) builder(ctx context.Context, ref string) (*builderInfo, error) {
	h, err := p.store.Resolve(ref)
	if err != nil {
		hint := "run skiff builder:create"
		if ref != DefaultBuilder {
			hint = "set it again with builder:set"
		} else if since := p.making.Load(); since != 0 {
			return nil, skiff.Errorf(skiff.EUNAVAILABLE, "the default builder is being made (for %s now; the first time takes about two minutes, "+
				"later ones seconds): push again when it is ready", time.Since(time.Unix(0, since)).Round(time.Second))
		}
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "builder %s is not in the image store; %s", ref, hint)
	}
	img, err := p.store.Image(h.String())
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w", ref, err)
	}
	bi := &builderInfo{Ref: ref, Digest: h, Env: cf.Config.Env}
	env := map[string]string{}
	for _, e := range cf.Config.Env {
		if k, v, ok := strings.Cut(e, "="); ok {
			env[k] = v
		}
	}
	if bi.UID, err = strconv.Atoi(env["CNB_USER_ID"]); err != nil || bi.UID <= 0 || bi.UID >= 65536 {
		return nil, skiff.Errorf(skiff.EINVALID, "builder %s: CNB_USER_ID must be a non-root uid below 65536 (got %q)", ref, env["CNB_USER_ID"])
	}
	if bi.GID, err = strconv.Atoi(env["CNB_GROUP_ID"]); err != nil || bi.GID < 0 || bi.GID >= 65536 {
		return nil, skiff.Errorf(skiff.EINVALID, "builder %s: CNB_GROUP_ID must be a gid below 65536 (got %q)", ref, env["CNB_GROUP_ID"])
	}
	var meta struct {
		Stack struct {
			RunImage runImageRef `json:"runImage"`
		} `json:"stack"`
		Images []runImageRef `json:"images"`
	}
	if s := cf.Config.Labels[labelBuilderMetadata]; s != "" {
		if err := json.Unmarshal([]byte(s), &meta); err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "builder %s: bad %s label: %v", ref, labelBuilderMetadata, err)
		}
	}
	bi.RunImage = meta.Stack.RunImage.Image
	if len(meta.Images) > 0 {
		bi.RunImage = meta.Images[0].Image
	}
	if bi.RunImage == "" {
		return nil, skiff.Errorf(skiff.EINVALID, "builder %s names no run image; is it a CNB builder?", ref)
	}
	if bi.Rootfs, err = p.unpackBuilder(ctx, h, img); err != nil {
		return nil, fmt.Errorf("unpack builder %s: %w", ref, err)
	}
	return bi, nil
}

func (p *Platform) unpackBuilder(ctx context.Context, h v1.Hash, img v1.Image) (string, error) {
	dir := filepath.Join(p.cfg.DataDir, "builder", h.Hex)
	p.rootfsMu.Lock()
	mu := p.rootfs[h.Hex]
	if mu == nil {
		mu = &sync.Mutex{}
		p.rootfs[h.Hex] = mu
	}
	p.rootfsMu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "rootfs")); err == nil {
		return filepath.Join(dir, "rootfs"), nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(p.cfg.DataDir, "builder"), ".unpack-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	layers, err := img.Layers()
	if err != nil {
		return "", err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return "", err
		}
		// Owners are kept as they are: the builder runs in a user namespace
		// where they show as nobody, and its root file system is read-only.
		_, err = layer.Extract(ctx, rc, root, layer.Options{Whiteouts: layer.ApplyWhiteouts})
		rc.Close()
		if err != nil {
			return "", err
		}
	}
	if err := prepareBuilderRootfs(root); err != nil {
		return "", err
	}
	// The build's user namespace maps no host id to root, so the way down
	// to the root file system must be open to others (search only).
	for _, d := range []string{tmp, root} {
		if err := os.Chmod(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, "rootfs"), nil
}

// layoutPath is where the lifecycle looks for ref inside its layout
// directory: <registry>/<repository>/<tag>, or …/<algorithm>/<hex> for a
// digest (imgutil's layout.ParseRefToPath).
func layoutPath(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", err
	}
	p := filepath.Join(r.Context().RegistryStr(), r.Context().RepositoryStr())
	id := r.Identifier()
	if alg, hex, ok := strings.Cut(id, ":"); ok {
		return filepath.Join(p, alg, hex), nil
	}
	return filepath.Join(p, id), nil
}

// sandboxMountPoints are the directories a build mounts over, all at the
// top of the root file system.
var sandboxMountPoints = []string{"proc", "dev", "sys", "tmp", "home", "workspace", "layers", "platform", "layout-repo", "cache"}

// prepareBuilderRootfs readies an unpacked builder for read-only use: every
// mount point a real directory (runc cannot create them in a read-only
// root, and must not follow an image's symlinks), and /etc/resolv.conf a
// regular file to mount the build's resolvers over.
func prepareBuilderRootfs(root string) error {
	for _, d := range sandboxMountPoints {
		p := filepath.Join(root, d)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			continue
		} else if err == nil {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	}
	etc, err := securejoin.SecureJoin(root, "/etc")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	rc := filepath.Join(etc, "resolv.conf")
	if fi, err := os.Lstat(rc); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(rc); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(rc, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// HasBuilder reports whether the store holds the builder ref (make run
// creates the default builder when it does not).
func (p *Platform) HasBuilder(ref string) bool {
	_, err := p.store.Resolve(ref)
	return err == nil
}

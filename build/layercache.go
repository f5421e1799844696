package build

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/layer"
)

// layerCache is an app's build cache: the cache=true layers of its last
// successful build, kept as the directories the buildpacks made, under
// DATA/cache/<app-id>/layers/<buildpack>/<layer>/ with their <layer>.toml.
//
// A build sees them through an overlay: the kept layers are its lower
// directory, an upper one in the build's work directory takes every
// change, and the merged view is the build's /layers. Restoring costs a
// mount, whatever the layers hold; a failed build leaves the cache as it
// was (its upper directory goes with the work directory); a successful one
// moves its changes into the kept layers by rename (layer.MergeUpper),
// keeping only the layers its buildpacks marked cache=true. The lifecycle
// gets no cache of its own (no -cache-dir): its volume cache stores each
// layer as a tarball, so every build untarred and re-hashed toolchains on
// restore and tarred and hashed them again on export.
//
// What the buildpacks see is what the lifecycle's restorer gives them: for
// each cached layer its directory and a <layer>.toml holding its metadata
// without the [types] table, which a buildpack sets again to keep it.
type layerCache struct {
	dir      string // DATA/cache/<app-id>
	uid, gid int    // host ids of the build user, who owns the layers
}

// cacheInfo is DATA/cache/<app-id>/cache.json. A cache of another format
// or made for other ids is dropped rather than used.
type cacheInfo struct {
	Format int `json:"format"`
	UID    int `json:"uid"`
	GID    int `json:"gid"`
}

const (
	cacheFormat = 1
	// cacheMerging exists while a build's changes move into the kept
	// layers; found at the next build, it means the move was interrupted
	// and the kept layers are a mix: they are dropped.
	cacheMerging = "merging"
	// maxLayerTOML caps a <layer>.toml the cache reads.
	maxLayerTOML = 1 << 20
)

// openLayerCache returns the app's cache, ready to be mounted: an empty one
// when there was none, or when what is there cannot be trusted (an
// interrupted merge, another format such as the lifecycle's volume cache of
// earlier skiffs, other ids).
func openLayerCache(dir string, uid, gid int) (*layerCache, error) {
	c := &layerCache{dir: dir, uid: uid, gid: gid}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var info cacheInfo
	b, err := os.ReadFile(filepath.Join(dir, "cache.json"))
	valid := err == nil && json.Unmarshal(b, &info) == nil && info == cacheInfo{Format: cacheFormat, UID: uid, GID: gid}
	if _, err := os.Lstat(filepath.Join(dir, cacheMerging)); err == nil {
		valid = false
	}
	if fi, err := os.Lstat(c.lower()); err != nil || !fi.IsDir() {
		valid = false
	}
	if valid {
		return c, nil
	}
	if err := c.reset(); err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	return c, nil
}

// lower is the directory of the kept layers.
func (c *layerCache) lower() string { return filepath.Join(c.dir, "layers") }

// reset empties the cache: everything in its directory goes (the
// lifecycle's volume cache of earlier skiffs too), and an empty layers
// directory owned by the build user is left.
func (c *layerCache) reset() error {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(c.dir, e.Name())); err != nil {
			return err
		}
	}
	if err := os.Mkdir(c.lower(), 0o755); err != nil {
		return err
	}
	if err := os.Chown(c.lower(), c.uid, c.gid); err != nil {
		return err
	}
	b, _ := json.Marshal(cacheInfo{Format: cacheFormat, UID: c.uid, GID: c.gid})
	return os.WriteFile(filepath.Join(c.dir, "cache.json"), b, 0o600)
}

// mount mounts the kept layers at target with upper and work (empty
// directories on the cache's file system) taking the build's changes.
func (c *layerCache) mount(upper, work, target string) error {
	for _, d := range []string{c.lower(), upper, work} {
		if strings.ContainsAny(d, ",:") {
			return fmt.Errorf("build cache: the path %s has a ',' or ':', which overlay mounts cannot take; move the data directory", d)
		}
	}
	// The merged root shows the upper root's owner: the build user's, so
	// that the lifecycle finds /layers its own and chowns nothing.
	if err := os.Chown(upper, c.uid, c.gid); err != nil {
		return err
	}
	// redirect_dir, index and metacopy off: the upper directory then holds
	// only what layer.MergeUpper understands (whole files, whiteouts,
	// opaque directories). Renaming a directory the build did not create
	// fails with EXDEV, which tools handle by copying, as across mounts.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,index=off,metacopy=off", c.lower(), upper, work)
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("build cache: mount overlay: %w", err)
	}
	return nil
}

// cachedLayers reads, from the build's merged layers directory, which
// layers the buildpacks of the group that ran marked cache=true: buildpack
// directory → layer names. Nothing in the directory (which the build
// wrote) is trusted: no symlink is followed, and a file that cannot be
// read or parsed marks nothing.
func cachedLayers(layersDir string) (map[string][]string, error) {
	root, err := unix.Open(layersDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: layersDir, Err: err}
	}
	defer unix.Close(root)
	b, err := readBeneath(root, "group.toml")
	if err != nil {
		return nil, fmt.Errorf("build cache: group.toml: %w", err)
	}
	var g groupTOML
	if err := decodeTOML(b, &g); err != nil {
		return nil, fmt.Errorf("build cache: group.toml: %w", err)
	}
	out := map[string][]string{}
	for _, bp := range g.Group {
		dir := escapeID(bp.ID)
		if dir == "" || dir == "." || dir == ".." || strings.Contains(dir, "/") {
			continue
		}
		out[dir] = nil
		names, err := listBeneath(root, dir)
		if err != nil {
			continue // no layers of its own
		}
		for _, n := range names {
			name, ok := strings.CutSuffix(n, ".toml")
			if !ok || name == "" || name == "store" || name == "launch" || name == "build" {
				continue
			}
			if !isDirBeneath(root, dir+"/"+name) {
				continue // cache=true without contents: nothing to keep
			}
			b, err := readBeneath(root, dir+"/"+n)
			if err != nil {
				continue
			}
			var lt layerTOML
			if decodeTOML(b, &lt) == nil && lt.Types.Cache {
				out[dir] = append(out[dir], name)
			}
		}
	}
	return out, nil
}

// commit moves the build's changes to the layers in keep (cachedLayers'
// answer, read before the overlay was unmounted) from upper into the kept
// layers, and drops every other layer. Each kept <layer>.toml loses its
// [types] table on the way, as the lifecycle's restorer writes it.
func (c *layerCache) commit(upper string, keep map[string][]string) error {
	for dir, names := range keep {
		for _, name := range names {
			if err := c.stripTypes(upper, dir, name); err != nil {
				return err
			}
		}
	}
	marker := filepath.Join(c.dir, cacheMerging)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return err
	}
	err := layer.MergeUpper(upper, c.lower(), func(rel string) layer.Choice {
		dir, name, nested := strings.Cut(rel, "/")
		names, ok := keep[dir]
		switch {
		case !ok:
			return layer.Drop
		case !nested:
			return layer.Descend
		}
		for _, n := range names {
			if name == n || name == n+".toml" || strings.HasPrefix(name, n+".sbom.") {
				return layer.Keep
			}
		}
		return layer.Drop
	})
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	return os.Remove(marker)
}

// stripTypes rewrites upper/dir/name.toml with its metadata only. A layer
// marked cache=true had its toml rewritten by this build, so it is in upper.
func (c *layerCache) stripTypes(upper, dir, name string) error {
	ufd, err := unix.Open(upper, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(ufd)
	b, err := readBeneath(ufd, dir+"/"+name+".toml")
	if err != nil {
		return fmt.Errorf("build cache: %s/%s.toml: %w", dir, name, err)
	}
	var lt layerTOML
	if err := decodeTOML(b, &lt); err != nil {
		return fmt.Errorf("build cache: %s/%s.toml: %w", dir, name, err)
	}
	out, err := encodeTOML(restoredLayerTOML{Metadata: lt.Metadata})
	if err != nil {
		return err
	}
	dfd, err := openBeneath(ufd, dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	tmp := ".skiff-" + name + ".toml"
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: tmp, Err: err}
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(out)
	if err == nil {
		err = f.Chown(c.uid, c.gid)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name+".toml")
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0) // the rewrite failed already
		return fmt.Errorf("build cache: rewrite %s/%s.toml: %w", dir, name, err)
	}
	return nil
}

// escapeID is the directory of a buildpack in <layers>, as the lifecycle
// names it (launch.EscapeID).
func escapeID(id string) string { return strings.ReplaceAll(id, "/", "_") }

// openBeneath opens rel below the directory root without following any
// symlink or leaving root.
func openBeneath(root int, rel string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC), //nolint:gosec // open flags: small and positive
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for {
		fd, err := unix.Openat2(root, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: rel, Err: err}
		}
		return fd, nil
	}
}

// readBeneath reads the regular file rel below root, up to maxLayerTOML.
func readBeneath(root int, rel string) ([]byte, error) {
	fd, err := openBeneath(root, rel, unix.O_RDONLY|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxLayerTOML+1))
	if err == nil && len(b) > maxLayerTOML {
		err = fmt.Errorf("%s is over %d bytes", rel, maxLayerTOML)
	}
	return b, err
}

// listBeneath lists the directory rel below root.
func listBeneath(root int, rel string) ([]string, error) {
	fd, err := openBeneath(root, rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	return f.Readdirnames(-1)
}

func isDirBeneath(root int, rel string) bool {
	fd, err := openBeneath(root, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

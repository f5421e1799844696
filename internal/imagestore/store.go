// Package imagestore owns skiff's one content-addressed OCI image store: a
// single OCI image layout (DATA/images) whose blobs are shared by builder,
// run and app images. It names images (ref → manifest digest, kept as
// org.opencontainers.image.ref.name annotations in index.json), reads them
// with go-containerregistry, writes new ones with every blob verified against
// its digest, lends images to the lifecycle as hardlinked per-build layouts,
// and collects garbage.
//
// Blobs are written once, atomically (temporary file, digest check, rename)
// and made read-only, so a hardlink lent to a build can never be rewritten
// through the build's copy.
package imagestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefAnnotation names an image in index.json (the OCI image-spec key).
const RefAnnotation = "org.opencontainers.image.ref.name"

// Store is an OCI image layout on disk. It is safe for concurrent use by one
// process: writers share a read lock, garbage collection takes the write lock
// so it never sweeps a blob that an unfinished write has not tagged yet.
type Store struct {
	dir  string
	path layout.Path

	gcMu    sync.RWMutex // held for reading by writers, for writing by GC
	indexMu sync.Mutex   // serializes read-modify-write of index.json
}

// Entry is a named image in the store.
type Entry struct {
	Name   string  // normalized reference, e.g. skiff.local/run:bookworm
	Digest v1.Hash // manifest digest
}

// Open opens the store in dir, creating an empty layout when there is none.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s := &Store{dir: dir, path: layout.Path(dir)}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
		if err := s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	return s, nil
}

// Dir is the layout's directory.
func (s *Store) Dir() string { return s.dir }

// BlobPath is where the blob with digest h lives (it may not exist).
func (s *Store) BlobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// ParseRef parses an image reference. A bare name such as "heroku/builder:24"
// means Docker Hub, as everywhere else; skiff's own images live under the
// dotted pseudo-registry skiff.local so that they never do.
func ParseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return r, nil
}

// Resolve returns the manifest digest of ref: a name in the store, or a
// digest ("sha256:…", or name@sha256:…) of an image the store holds.
func (s *Store) Resolve(ref string) (v1.Hash, error) {
	im, err := s.readIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	if h, err := v1.NewHash(ref); err == nil {
		for _, d := range im.Manifests {
			if d.Digest == h {
				return h, nil
			}
		}
		return v1.Hash{}, notFound(ref)
	}
	r, err := ParseRef(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if dr, ok := r.(name.Digest); ok {
		return s.Resolve(dr.DigestStr())
	}
	for _, d := range im.Manifests {
		if d.Annotations[RefAnnotation] == r.Name() {
			return d.Digest, nil
		}
	}
	return v1.Hash{}, notFound(ref)
}

// ErrNotFound is returned (wrapped) for images the store does not hold.
var ErrNotFound = errors.New("image not found")

func notFound(ref string) error { return fmt.Errorf("%w: %s", ErrNotFound, ref) }

// Image returns the image that ref (a name or digest) resolves to.
func (s *Store) Image(ref string) (v1.Image, error) {
	h, err := s.Resolve(ref)
	if err != nil {
		return nil, err
	}
	img, err := s.path.Image(h)
	if err != nil {
		return nil, fmt.Errorf("read image %s: %w", ref, err)
	}
	return img, nil
}

// List returns the named images, sorted by name.
func (s *Store) List() ([]Entry, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, d := range im.Manifests {
		if n := d.Annotations[RefAnnotation]; n != "" {
			out = append(out, Entry{Name: n, Digest: d.Digest})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Put writes img's blobs (those the store lacks) and names it ref, replacing
// whatever ref named before. It returns the manifest digest. Every blob is
// checked against its digest on the way in, so a tampered source (such as a
// build's output directory) cannot poison the store.
func (s *Store) Put(ctx context.Context, ref string, img v1.Image) (v1.Hash, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if _, ok := r.(name.Tag); !ok {
		return v1.Hash{}, fmt.Errorf("put image: %q must be a tag, not a digest", ref)
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	desc, err := s.writeImage(ctx, img)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image %s: %w", ref, err)
	}
	desc.Annotations = map[string]string{RefAnnotation: r.Name()}
	err = s.updateIndex(func(im *v1.IndexManifest) {
		im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool {
			return d.Annotations[RefAnnotation] == r.Name()
		})
		im.Manifests = append(im.Manifests, *desc)
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image %s: %w", ref, err)
	}
	return desc.Digest, nil
}

// Untag removes the name ref. The image's blobs stay until garbage
// collection finds nothing else referring to them.
func (s *Store) Untag(ref string) error {
	r, err := ParseRef(ref)
	if err != nil {
		return err
	}
	return s.updateIndex(func(im *v1.IndexManifest) {
		im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool {
			return d.Annotations[RefAnnotation] == r.Name()
		})
	})
}

// writeImage writes layers, config and manifest, and returns the manifest's
// descriptor.
func (s *Store) writeImage(ctx context.Context, img v1.Image) (*v1.Descriptor, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if s.has(d) {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d, err)
		}
		err = s.writeBlob(d, rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d, err)
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if err := s.writeBlobBytes(cfgName, cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	h, _, err := v1.SHA256(strings.NewReader(string(raw)))
	if err != nil {
		return nil, err
	}
	if err := s.writeBlobBytes(h, raw); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return &v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: h}, nil
}

func (s *Store) has(h v1.Hash) bool {
	fi, err := os.Stat(s.BlobPath(h))
	return err == nil && fi.Mode().IsRegular()
}

func (s *Store) writeBlobBytes(h v1.Hash, b []byte) error {
	if s.has(h) {
		return nil
	}
	return s.writeBlob(h, io.NopCloser(strings.NewReader(string(b))))
}

// writeBlob copies r into the store under h, failing when the content does
// not hash to h. The file appears only complete and read-only.
func (s *Store) writeBlob(h v1.Hash, r io.Reader) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %s", h)
	}
	dir := filepath.Join(s.dir, "blobs", "sha256")
	tmp, err := os.CreateTemp(dir, ".tmp-"+h.Hex[:12]+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, sum), r); err != nil {
		tmp.Close()
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h.Hex {
		tmp.Close()
		return fmt.Errorf("content does not match digest %s (got sha256:%s)", h, got)
	}
	return commitTemp(tmp, 0o444, s.BlobPath(h))
}

// commitTemp makes the written temporary file tmp durable with mode and
// renames it to dst (or, with dst "", only closes it), closing it in any case.
func commitTemp(tmp *os.File, mode os.FileMode, dst string) error {
	err := tmp.Chmod(mode)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil || dst == "" {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	return &im, nil
}

func (s *Store) updateIndex(f func(*v1.IndexManifest)) error {
	s.indexMu.Lock()
	defer s.indexMu.Unlock()
	im, err := s.readIndex()
	if err != nil {
		return err
	}
	f(im)
	return s.writeIndex(im)
}

func (s *Store) writeIndex(im *v1.IndexManifest) error {
	if im.Manifests == nil {
		im.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, "index.json"), b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	return commitTemp(tmp, 0o644, path)
}

package imagestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Lend writes a one-image OCI layout at dir for the image ref resolves to,
// its blobs hardlinked from the store (copied when dir is on another file
// system), so the lifecycle can read a run or previous image without a copy.
// The store's blobs are read-only and owned by root, so a build cannot write
// through the links. Lend returns the manifest digest.
func (s *Store) Lend(ref, dir string) (v1.Hash, error) {
	return s.lend(ref, dir, func(v1.Hash) bool { return true })
}

// LendSparse is Lend without the layer blobs, except those listed: an
// image the lifecycle reads the config and manifest of, and whose layers
// it only names (a run image, a previous image whose layers the export
// reuses). The lifecycle's layout code takes a missing blob's diffID from
// the config; given the blob, it decompresses and hashes the whole layer to
// learn it, seconds per build for a toolchain layer.
func (s *Store) LendSparse(ref, dir string, layers ...v1.Hash) (v1.Hash, error) {
	return s.lend(ref, dir, func(h v1.Hash) bool { return slices.Contains(layers, h) })
}

func (s *Store) lend(ref, dir string, withLayer func(v1.Hash) bool) (v1.Hash, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	h, err := s.Resolve(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	im, err := s.readIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	var desc *v1.Descriptor
	for i := range im.Manifests {
		if im.Manifests[i].Digest == h {
			desc = &im.Manifests[i]
			break
		}
	}
	all, err := s.imageBlobs(h)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("lend %s: %w", ref, err)
	}
	blobs := all[:2] // the manifest and the config
	for _, l := range all[2:] {
		if withLayer(l) {
			blobs = append(blobs, l)
		}
	}
	if err := s.LinkBlobs(dir, blobs...); err != nil {
		return v1.Hash{}, fmt.Errorf("lend %s: %w", ref, err)
	}
	d := *desc
	d.Annotations = nil
	out := v1.IndexManifest{SchemaVersion: 2, MediaType: im.MediaType, Manifests: []v1.Descriptor{d}}
	b, err := json.Marshal(out)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		return v1.Hash{}, fmt.Errorf("lend %s: %w", ref, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return v1.Hash{}, fmt.Errorf("lend %s: %w", ref, err)
	}
	return h, nil
}

// LinkBlobs makes the given blobs of the store appear in the OCI layout at
// dir (hardlinks, or copies across file systems). Seeding an output layout
// with the run image's layers this way lets the lifecycle skip copying them.
func (s *Store) LinkBlobs(dir string, blobs ...v1.Hash) error {
	bdir := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return err
	}
	for _, b := range blobs {
		dst := filepath.Join(bdir, b.Hex)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		err := os.Link(s.BlobPath(b), dst)
		if err != nil && !errors.Is(err, os.ErrExist) {
			if err := copyFile(s.BlobPath(b), dst); err != nil {
				return fmt.Errorf("link blob %s: %w", b, err)
			}
		}
	}
	return nil
}

// ImageBlobs lists the manifest, config and layer digests of an image.
func (s *Store) ImageBlobs(ref string) ([]v1.Hash, error) {
	h, err := s.Resolve(ref)
	if err != nil {
		return nil, err
	}
	return s.imageBlobs(h)
}

func (s *Store) imageBlobs(h v1.Hash) ([]v1.Hash, error) {
	b, err := os.ReadFile(s.BlobPath(h))
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", h, err)
	}
	out := []v1.Hash{h, m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ImportLayout puts the single image of the OCI layout at dir (such as the
// lifecycle's export) into the store under ref. Blobs the store already has
// are not read again; new ones are verified against their digests.
func (s *Store) ImportLayout(ctx context.Context, ref, dir string) (v1.Hash, error) {
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return v1.Hash{}, fmt.Errorf("import %s: want one image in the layout, found %d", dir, len(im.Manifests))
	}
	img, err := ii.Image(im.Manifests[0].Digest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("import %s: %w", dir, err)
	}
	return s.Put(ctx, ref, img)
}

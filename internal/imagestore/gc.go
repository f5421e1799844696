package imagestore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppRepo is the repository under which app images are named: one tag per
// build, skiff.local/app/<app-id>:<build-id>.
const AppRepo = "skiff.local/app"

// AppRef names the image of an app's build.
func AppRef(appID, buildID string) string { return AppRepo + "/" + appID + ":" + buildID }

// GCResult says what a collection removed.
type GCResult struct {
	Untagged     []string // app image names dropped
	BlobsRemoved int
	BytesFreed   int64
}

// GC drops the names of app images whose digest is not in keep (the caller
// passes what releases still reference: the images of each app's last N
// releases and any build in progress), then removes every blob that no
// remaining image refers to. Builder, run and pulled images keep their names.
func (s *Store) GC(ctx context.Context, keep []v1.Hash) (*GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	res := &GCResult{}
	err := s.updateIndex(func(im *v1.IndexManifest) {
		im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool {
			n := d.Annotations[RefAnnotation]
			if strings.HasPrefix(n, AppRepo+"/") && !slices.Contains(keep, d.Digest) {
				res.Untagged = append(res.Untagged, n)
				return true
			}
			return false
		})
	})
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	im, err := s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	live := map[string]bool{}
	for _, d := range im.Manifests {
		if err := s.mark(d, live); err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
	}
	dir := filepath.Join(s.dir, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if live[e.Name()] {
			continue
		}
		// Unreferenced blobs and leftovers of interrupted writes alike:
		// no write is in flight while GC holds the lock.
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return res, fmt.Errorf("gc: %w", err)
		}
		res.BlobsRemoved++
		res.BytesFreed += fi.Size()
	}
	return res, nil
}

// mark records the blobs that descriptor d reaches.
func (s *Store) mark(d v1.Descriptor, live map[string]bool) error {
	if live[d.Digest.Hex] {
		return nil
	}
	live[d.Digest.Hex] = true
	b, err := os.ReadFile(s.BlobPath(d.Digest))
	if err != nil {
		return fmt.Errorf("read manifest %s: %w", d.Digest, err)
	}
	if d.MediaType.IsIndex() {
		var idx v1.IndexManifest
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("parse index %s: %w", d.Digest, err)
		}
		for _, m := range idx.Manifests {
			if err := s.mark(m, live); err != nil {
				return err
			}
		}
		return nil
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("parse manifest %s: %w", d.Digest, err)
	}
	live[m.Config.Digest.Hex] = true
	for _, l := range m.Layers {
		live[l.Digest.Hex] = true
	}
	return nil
}

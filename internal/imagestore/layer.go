package imagestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blobLayer is an uncompressed layer stored as a blob: its digest is its
// diffID. skiff keeps the layers it makes (builder and run images)
// uncompressed because the lifecycle copies run-image layers into every
// exported image, and gunzipping a base image costs seconds per build.
type blobLayer struct {
	path string
	h    v1.Hash
	size int64
}

var _ v1.Layer = (*blobLayer)(nil)

func (l *blobLayer) Digest() (v1.Hash, error)             { return l.h, nil }
func (l *blobLayer) DiffID() (v1.Hash, error)             { return l.h, nil }
func (l *blobLayer) Size() (int64, error)                 { return l.size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)   { return os.Open(l.path) }
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) { return os.Open(l.path) }

// PutLayer stores the uncompressed tar stream that write produces and
// returns it as a layer, ready to be appended to an image and Put.
func (s *Store) PutLayer(ctx context.Context, write func(w io.Writer) error) (v1.Layer, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	dir := filepath.Join(s.dir, "blobs", "sha256")
	tmp, err := os.CreateTemp(dir, ".tmp-layer-")
	if err != nil {
		return nil, fmt.Errorf("put layer: %w", err)
	}
	defer os.Remove(tmp.Name())
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, sum)}
	if err := write(cw); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("put layer: %w", err)
	}
	if err := ctx.Err(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := commitTemp(tmp, 0o444, ""); err != nil {
		return nil, fmt.Errorf("put layer: %w", err)
	}
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum.Sum(nil))}
	if !s.has(h) {
		if err := os.Rename(tmp.Name(), s.BlobPath(h)); err != nil {
			return nil, fmt.Errorf("put layer: %w", err)
		}
	}
	return &blobLayer{path: s.BlobPath(h), h: h, size: cw.n}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

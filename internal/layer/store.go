package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Store unpacks image layers into dir (DATA/layers), once per diffID:
// dir/<hex of the sha256 diffID>/ is the root of one layer, with overlay
// whiteouts, shared read-only by every container that uses it. The short
// name keeps overlay's lowerdir option (one page at most) room for deep
// images, and has no ':' (overlay's separator).
//
// A Store is safe for concurrent use; callers asking for a layer that is
// being unpacked wait for that one extraction.
type Store struct {
	dir  string
	opt  Options
	log  *slog.Logger
	mu   sync.Mutex
	busy map[string]*flight
}

type flight struct {
	done chan struct{}
	err  error
}

var diffIDRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// NewStore returns a store in dir, creating it (mode 0700: containers reach
// layers only through overlay mounts made by root). opt applies to every
// layer; its Whiteouts is forced to OverlayWhiteouts. Leftovers of
// interrupted extractions are removed.
func NewStore(dir string, opt Options, log *slog.Logger) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer store: %w", err)
	}
	opt.Whiteouts = OverlayWhiteouts
	s := &Store{dir: dir, opt: opt, log: log, busy: map[string]*flight{}}
	tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, t := range tmps {
		if err := os.RemoveAll(t); err != nil {
			log.Warn("remove interrupted layer extraction", "dir", t, "err", err)
		}
	}
	return s, nil
}

// Path returns the directory of the unpacked layer diffID, whether or not
// it exists yet.
func (s *Store) Path(diffID string) (string, error) {
	if !diffIDRE.MatchString(diffID) {
		return "", fmt.Errorf("invalid diffID %s", quote(diffID))
	}
	return filepath.Join(s.dir, strings.TrimPrefix(diffID, "sha256:")), nil
}

// Has reports whether the layer is unpacked.
func (s *Store) Has(diffID string) bool {
	p, err := s.Path(diffID)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Unpack makes sure the layer diffID is unpacked and returns its directory.
// open is called only when the layer is missing; it returns the layer blob
// (compressed or not), whose uncompressed content must hash to diffID, or
// nothing is kept.
func (s *Store) Unpack(ctx context.Context, diffID string, open func() (io.ReadCloser, error)) (string, error) {
	dst, err := s.Path(diffID)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(dst); err == nil {
			return dst, nil
		}
		s.mu.Lock()
		f, waiting := s.busy[diffID]
		if !waiting {
			f = &flight{done: make(chan struct{})}
			s.busy[diffID] = f
		}
		s.mu.Unlock()
		if waiting {
			select {
			case <-f.done:
				if f.err != nil && !errors.Is(f.err, context.Canceled) {
					return "", f.err
				}
				continue // done, or the other caller gave up: look again
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		f.err = s.unpack(ctx, diffID, dst, open)
		s.mu.Lock()
		delete(s.busy, diffID)
		s.mu.Unlock()
		close(f.done)
		if f.err != nil {
			return "", f.err
		}
		return dst, nil
	}
}

func (s *Store) unpack(ctx context.Context, diffID, dst string, open func() (io.ReadCloser, error)) error {
	tmp, err := os.MkdirTemp(s.dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	blob, err := open()
	if err != nil {
		return fmt.Errorf("open layer %s: %w", diffID, err)
	}
	defer blob.Close()
	plain, err := Decompress(blob)
	if err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer plain.Close()
	h := sha256.New()
	limit := s.opt.MaxBytes
	if limit == 0 {
		limit = DefaultMaxBytes
	}
	// The tar framing adds to the content; allow a generous margin for it
	// and for the zero blocks at the end, and no more.
	body := io.TeeReader(io.LimitReader(plain, limit+limit/8+1<<20), h)
	st, err := Extract(ctx, body, tmp, s.opt)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return fmt.Errorf("read layer %s: %w", diffID, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return fmt.Errorf("layer %s: content hashes to %s", diffID, got)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another process unpacked it first
		}
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	s.log.Debug("layer unpacked", "diffID", diffID, "entries", st.Entries, "bytes", st.Bytes, "dropped", st.Dropped)
	return nil
}

// Remove deletes an unpacked layer. The caller makes sure nothing uses it.
func (s *Store) Remove(diffID string) error {
	p, err := s.Path(diffID)
	if err != nil {
		return err
	}
	// Rename first so a half-removed layer is never taken for a whole one.
	tmp := filepath.Join(s.dir, ".tmp-rm-"+filepath.Base(p))
	if err := os.Rename(p, tmp); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(tmp)
}

// List returns the diffIDs of the unpacked layers.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id := "sha256:" + e.Name(); diffIDRE.MatchString(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

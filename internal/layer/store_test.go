package layer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestStoreUnpacksOnceAndVerifies(t *testing.T) {
	requireRoot(t)
	plain := mktar(t, dir("app"), file("app/server", "bin"), file(".wh.gone", ""))
	sum := sha256.Sum256(plain)
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	s, err := NewStore(filepath.Join(t.TempDir(), "layers"), Options{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var opens atomic.Int32
	open := func() (io.ReadCloser, error) {
		opens.Add(1)
		return io.NopCloser(bytes.NewReader(gz(t, plain))), nil
	}
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	errs := make([]error, 8)
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = s.Unpack(context.Background(), diffID, open) })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("caller %d: %q %v", i, dirs[i], errs[i])
		}
	}
	if n := opens.Load(); n != 1 {
		t.Fatalf("layer opened %d times, want 1", n)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "app/server")); err != nil || string(b) != "bin" {
		t.Fatalf("content: %q %v", b, err)
	}
	if ids, _ := s.List(); len(ids) != 1 || ids[0] != diffID {
		t.Fatalf("List = %v", ids)
	}

	// Content that does not match its diffID is not kept.
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := s.Unpack(context.Background(), bad, open); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("mismatched diffID: %v", err)
	}
	if s.Has(bad) {
		t.Fatal("mismatched layer kept")
	}
	if _, err := s.Unpack(context.Background(), "sha256:../../x", open); err == nil {
		t.Fatal("invalid diffID accepted")
	}
	if err := s.Remove(diffID); err != nil || s.Has(diffID) {
		t.Fatalf("remove: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dirs[0]))
	if len(ents) != 0 {
		t.Fatalf("leftovers in the store: %v", ents)
	}
}

package router

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// close waits for a held lock to be released, and nothing locks or writes
// after it.
func TestACMEStorageClose(t *testing.T) {
	s := &acmeStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	ctx := context.Background()
	if err := s.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(released)
		s.Unlock(ctx, "issue_cert_a.example")
	}()
	if err := s.close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-released:
	default:
		t.Fatal("close returned while a lock was held")
	}
	if err := s.Lock(ctx, "b"); !errors.Is(err, errStorageClosed) {
		t.Errorf("Lock after close: %v", err)
	}
	if err := s.Store(ctx, "k", []byte("v")); !errors.Is(err, errStorageClosed) {
		t.Errorf("Store after close: %v", err)
	}
	if s.Exists(ctx, "k") {
		t.Error("stored after close")
	}
	// A lock never released: close gives up when its context ends.
	s2 := &acmeStorage{FileStorage: &certmagic.FileStorage{Path: t.TempDir()}}
	s2.Lock(ctx, "stuck")
	defer s2.Unlock(ctx, "stuck")
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s2.close(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close with a stuck lock: %v", err)
	}
}

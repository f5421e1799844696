package router

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// acmeStorage is certmagic's file storage with an end: certmagic obtains and
// renews in goroutines it does not let anyone wait for, so a router that
// shuts down mid-order could leave a lock file behind (delaying the next
// order after a restart) or write into a directory being removed. close
// refuses new writes and locks, and waits until the held locks are released.
type acmeStorage struct {
	*certmagic.FileStorage
	mu     sync.Mutex
	closed bool
	busy   int // writes in flight plus locks held
}

var errStorageClosed = errors.New("acme storage: router is shutting down")

func (s *acmeStorage) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errStorageClosed
	}
	s.busy++
	return nil
}

func (s *acmeStorage) leave() {
	s.mu.Lock()
	s.busy--
	s.mu.Unlock()
}

func (s *acmeStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.FileStorage.Store(ctx, key, value)
}

func (s *acmeStorage) Delete(ctx context.Context, key string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.FileStorage.Delete(ctx, key)
}

// Lock counts as busy until the matching Unlock.
func (s *acmeStorage) Lock(ctx context.Context, name string) error {
	if err := s.enter(); err != nil {
		return err
	}
	if err := s.FileStorage.Lock(ctx, name); err != nil {
		s.leave()
		return err
	}
	return nil
}

func (s *acmeStorage) TryLock(ctx context.Context, name string) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	ok, err := s.FileStorage.TryLock(ctx, name)
	if !ok || err != nil {
		s.leave()
	}
	return ok, err
}

func (s *acmeStorage) Unlock(ctx context.Context, name string) error {
	defer s.leave()
	return s.FileStorage.Unlock(ctx, name)
}

// close stops new writes and waits, at most until ctx ends, for the ones in
// flight and the locks held to finish.
func (s *acmeStorage) close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	for {
		s.mu.Lock()
		busy := s.busy
		s.mu.Unlock()
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

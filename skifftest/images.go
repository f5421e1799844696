package skifftest

import (
	"fmt"
	"maps"
	"sync"
)

// Image is a fake app image: what the image config of a real one holds.
type Image struct {
	Digest       string
	ProcessTypes map[string]string // process type → command line
	Env          []string          // KEY=VALUE, below the release's config
}

// Images is the fake image store that Builder writes and Scheduler reads.
type Images struct {
	mu sync.Mutex
	m  map[string]*Image
}

// NewImages returns an empty store.
func NewImages() *Images { return &Images{m: map[string]*Image{}} }

// Add stores img, replacing any image of the same digest.
func (s *Images) Add(img *Image) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *img
	c.ProcessTypes = maps.Clone(img.ProcessTypes)
	s.m[img.Digest] = &c
}

// Get returns the image; like runtime's, a missing one is an internal
// error (deploy only starts images it released).
func (s *Images) Get(digest string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img := s.m[digest]
	if img == nil {
		return nil, fmt.Errorf("image %s: not in the image store", digest)
	}
	return img, nil
}

// Has reports whether the store holds the image.
func (s *Images) Has(digest string) bool {
	_, err := s.Get(digest)
	return err == nil
}

// Retain removes every image whose digest is not in keep.
func (s *Images) Retain(keep []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := map[string]bool{}
	for _, d := range keep {
		k[d] = true
	}
	for d := range s.m {
		if !k[d] {
			delete(s.m, d)
		}
	}
}

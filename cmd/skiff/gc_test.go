package main

import (
	"context"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/skiffhq/skiff/internal/imagestore"
)

// After a collection that keeps no release (the last app destroyed), the
// layers kept are the run image's, not the gone app's: a new app's first
// start must not unpack Debian again.
func TestCollectionKeepsTheRunImagesLayers(t *testing.T) {
	store, err := imagestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(ref string) v1.Hash {
		img, err := random.Image(512, 2)
		if err != nil {
			t.Fatal(err)
		}
		h, err := store.Put(context.Background(), ref, img)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	run := put("skiff.local/run:bookworm")
	gone := put(imagestore.AppRef("app1", "b1"))
	kept := put(imagestore.AppRef("app2", "b1"))
	if _, err := store.GC(context.Background(), []v1.Hash{kept}); err != nil {
		t.Fatal(err)
	}
	named, err := namedImages(store)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(named, run.String()) || !slices.Contains(named, kept.String()) {
		t.Errorf("kept %v, want the run image %s and the kept release %s", named, run, kept)
	}
	if slices.Contains(named, gone.String()) {
		t.Errorf("kept %v, with the collected release %s", named, gone)
	}
	if _, err := store.GC(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if named, _ = namedImages(store); !slices.Equal(named, []string{run.String()}) {
		t.Errorf("with no release left, kept %v, want only the run image %s", named, run)
	}
}

package runtime

import (
	"context"
	"errors"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// PruneLayers removes unpacked layers that belong to none of the images in
// keep (manifest digests: the releases the caller keeps) and to no image a
// current instance runs. A layer is an overlay lowerdir of every instance
// that uses it, so it must never go while one does.
func (r *Runtime) PruneLayers(ctx context.Context, keep []string) error {
	r.gcMu.Lock()
	defer r.gcMu.Unlock()
	images := map[string]bool{}
	for _, k := range keep {
		images[k] = true
	}
	r.mu.Lock()
	for _, in := range r.inst {
		images[in.rec.Spec.Image] = true
	}
	for img := range r.pinned {
		images[img] = true
	}
	r.mu.Unlock()
	used := map[string]bool{}
	for ref := range images {
		h, err := v1.NewHash(ref)
		if err != nil {
			continue
		}
		img, err := layout.Path(r.cfg.ImageDir).Image(h)
		if err != nil {
			continue // gone from the store: nothing of it to keep
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err // unreadable: keep everything rather than guess
		}
		for _, d := range cf.RootFS.DiffIDs {
			used[d.String()] = true
		}
	}
	ids, err := r.layers.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !used[id] {
			r.log.Info("removing unused layer", "diffID", id)
			if err := r.layers.Remove(id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

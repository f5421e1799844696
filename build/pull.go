package build

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/skiffhq/skiff"
)

// PullBuilder pulls a standard CNB builder image (heroku/builder:24,
// paketobuildpacks/builder-jammy-base, …) and its run image from their
// registry into the store, and returns the builder's normalized name, which
// builder:set records for the app. The run image's layers are stored
// uncompressed (see imagestore); the builder's stay as pulled, as they are
// unpacked only once. opts reach go-containerregistry (credentials,
// transport); without them the pull is anonymous.
func (p *Platform) PullBuilder(ctx context.Context, ref string, out io.Writer, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", skiff.Errorf(skiff.EINVALID, "invalid builder image %q: %v", ref, err)
	}
	if r.Context().RegistryStr() == "skiff.local" {
		if _, err := p.store.Resolve(r.Name()); err != nil {
			return "", skiff.Errorf(skiff.ENOTFOUND, "builder %s is not in the image store", ref)
		}
		return r.Name(), nil
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuth(authn.Anonymous),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})}, opts...)
	fmt.Fprintf(out, "-----> Pulling builder %s\n", r.Name())
	img, err := remote.Image(r, opts...)
	if err != nil {
		return "", skiff.Errorf(skiff.EUNAVAILABLE, "pull builder %s: %v", r.Name(), err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", skiff.Errorf(skiff.EUNAVAILABLE, "pull builder %s: %v", r.Name(), err)
	}
	if cf.Config.Labels[labelBuilderMetadata] == "" {
		return "", skiff.Errorf(skiff.EINVALID, "%s is not a CNB builder image (it has no %s label)", r.Name(), labelBuilderMetadata)
	}
	h, err := p.store.Put(ctx, r.Name(), img)
	if err != nil {
		return "", fmt.Errorf("store builder %s: %w", r.Name(), err)
	}
	bi, err := p.builder(ctx, r.Name())
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "       %s\n", h)
	rr, err := name.ParseReference(bi.RunImage)
	if err != nil {
		return "", skiff.Errorf(skiff.EINVALID, "builder %s names an invalid run image %q", r.Name(), bi.RunImage)
	}
	fmt.Fprintf(out, "-----> Pulling run image %s\n", rr.Name())
	run, err := remote.Image(rr, opts...)
	if err != nil {
		return "", skiff.Errorf(skiff.EUNAVAILABLE, "pull run image %s: %v", rr.Name(), err)
	}
	run, err = p.uncompressed(ctx, run)
	if err != nil {
		return "", fmt.Errorf("run image %s: %w", rr.Name(), err)
	}
	// Stored under the name the builder uses for it.
	if _, err := p.store.Put(ctx, bi.RunImage, run); err != nil {
		return "", fmt.Errorf("store run image %s: %w", rr.Name(), err)
	}
	fmt.Fprintf(out, "-----> Builder %s ready\n", r.Name())
	return r.Name(), nil
}

// uncompressed rewrites img with its layers stored uncompressed in the
// store; its config (and so its diffIDs) stay as they were.
func (p *Platform) uncompressed(ctx context.Context, img v1.Image) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var adds []mutate.Addendum
	for _, l := range layers {
		diff, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		nl, err := p.store.PutLayer(ctx, func(w io.Writer) error {
			rc, err := l.Uncompressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(w, rc)
			return err
		})
		if err != nil {
			return nil, err
		}
		if got, _ := nl.DiffID(); got != diff {
			return nil, fmt.Errorf("layer %s uncompresses to %s", diff, got)
		}
		adds = append(adds, mutate.Addendum{Layer: nl})
	}
	out, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), adds...)
	if err != nil {
		return nil, err
	}
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	return mutate.ConfigFile(out, cf)
}

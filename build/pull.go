package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/egress"
)

// PullBuilder pulls a standard CNB builder image (heroku/builder:24,
// paketobuildpacks/builder-jammy-base, …) and its run image from their
// registry into the store, and returns the builder's normalized name, which
// builder:set records for the app. The run image's layers are stored
// uncompressed (see imagestore); the builder's stay as pulled, as they are
// unpacked only once. Every connection goes through Config.Egress, and
// errors name what went wrong in skiff's words, never the registry's (those
// go to the log). opts reach go-containerregistry (credentials); without
// them the pull is anonymous.
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
	if p.cfg.Egress == nil {
		return "", skiff.Errorf(skiff.EUNAVAILABLE, "this server pulls no images from registries")
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuth(authn.Anonymous),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}),
		remote.WithTransport(p.cfg.Egress.Transport())}, opts...)
	fmt.Fprintf(out, "-----> Pulling builder %s\n", r.Name())
	img, err := remote.Image(r, opts...)
	if err != nil {
		return "", p.pullError("builder", r, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", p.pullError("builder", r, err)
	}
	if cf.Config.Labels[labelBuilderMetadata] == "" {
		return "", skiff.Errorf(skiff.EINVALID, "%s is not a CNB builder image (it has no %s label)", r.Name(), labelBuilderMetadata)
	}
	h, err := p.store.Put(ctx, r.Name(), img)
	if err != nil {
		return "", p.pullError("builder", r, err)
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
		return "", p.pullError("run image", rr, err)
	}
	run, err = p.uncompressed(ctx, run)
	if err != nil {
		return "", p.pullError("run image", rr, err)
	}
	// Stored under the name the builder uses for it.
	if _, err := p.store.Put(ctx, bi.RunImage, run); err != nil {
		return "", fmt.Errorf("store run image %s: %w", rr.Name(), err)
	}
	fmt.Fprintf(out, "-----> Builder %s ready\n", r.Name())
	return r.Name(), nil
}

// StoredBuilder reports whether the builder ref (and its run image) is in
// the store already, and its normalized name: what builder:set may pick
// without pulling.
func (p *Platform) StoredBuilder(ctx context.Context, ref string) (string, bool) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", false
	}
	bi, err := p.builder(ctx, r.Name())
	if err != nil {
		return "", false
	}
	if rr, err := name.ParseReference(bi.RunImage); err != nil {
		return "", false
	} else if _, err := p.store.Resolve(rr.Name()); err != nil {
		if _, err := p.store.Resolve(bi.RunImage); err != nil {
			return "", false
		}
	}
	return r.Name(), true
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

// pullError logs what a failed pull met and tells the user, in skiff's
// words, what went wrong: a registry's answer (or whatever answered in its
// place) never reaches them.
func (p *Platform) pullError(what string, r name.Reference, err error) error {
	var terr *transport.Error
	status := 0
	if errors.As(err, &terr) {
		status = terr.StatusCode
	}
	p.log.Warn("pull failed", "image", r.Name(), "err", err)
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return fmt.Errorf("store %s %s: %w", what, r.Name(), pathErr) // this server's own trouble (a full disk)
	}
	code := skiff.EUNAVAILABLE
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		code = skiff.EINVALID
	}
	return skiff.Errorf(code, "pull %s %s: %s", what, r.Name(), egress.Describe(r.Context().RegistryStr(), status, err))
}

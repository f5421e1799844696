package runtime

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/skiffhq/skiff"
)

// image is what an instance needs of a release image.
type image struct {
	layers     []string // unpacked layer directories, bottom first
	entrypoint []string
	cmd        []string
	env        []string
	workdir    string
	uid, gid   uint32
	user       string // a user name to look up in the image instead of uid and gid
	cnb        bool   // built by Cloud Native Buildpacks: has /cnb/process and the launcher
}

// cnbMetadataLabel marks images the CNB lifecycle exported.
const cnbMetadataLabel = "io.buildpacks.build.metadata"

// loadImage reads the image with manifest digest ref from the OCI layout
// and makes sure its layers are unpacked.
func (r *Runtime) loadImage(ctx context.Context, ref string) (*image, error) {
	h, err := v1.NewHash(ref)
	if err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid image digest %q", ref)
	}
	img, err := layout.Path(r.cfg.ImageDir).Image(h)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s layers: %w", ref, err)
	}
	out := &image{
		entrypoint: cf.Config.Entrypoint, cmd: cf.Config.Cmd, env: cf.Config.Env,
		workdir: cf.Config.WorkingDir, cnb: cf.Config.Labels[cnbMetadataLabel] != "",
	}
	if out.uid, out.gid, out.user, err = parseUser(cf.Config.User); err != nil {
		return nil, skiff.Errorf(skiff.EINVALID, "image %s: %v", ref, err)
	}
	// The diffIDs come from the config: asking a compressed layer for its
	// DiffID decompresses and hashes the whole blob, seconds per start for
	// an image with a toolchain in it. Unpack checks the content against
	// the diffID whenever it reads a blob, so a config that lies fails there.
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return nil, skiff.Errorf(skiff.EINVALID, "image %s: %d layers but %d diffIDs in its config", ref, len(ls), len(cf.RootFS.DiffIDs))
	}
	for i, l := range ls {
		diffID := cf.RootFS.DiffIDs[i]
		dir, err := r.layers.Unpack(ctx, diffID.String(), func() (io.ReadCloser, error) { return l.Compressed() })
		if err != nil {
			return nil, err
		}
		out.layers = append(out.layers, dir)
	}
	return out, nil
}

// parseUser reads the image config's User. Numeric ids are used as they
// are; a name (USER cnb, USER cnb:staff) is returned as is, to be looked up
// in the image's /etc/passwd and /etc/group once its root file system is
// mounted (container.Spec.User). An image with no user runs as root of its
// user namespace, which is no host root.
func parseUser(u string) (uid, gid uint32, name string, err error) {
	if u == "" {
		return 0, 0, "", nil
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	if us == "" || (hasGroup && gs == "") {
		return 0, 0, "", fmt.Errorf("image user %q has an empty user or group", u)
	}
	n, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, u, nil
	}
	m := n
	if hasGroup {
		if m, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, u, nil
		}
	}
	if n >= 65536 || m >= 65536 {
		return 0, 0, "", fmt.Errorf("image user %q is outside the container's id range", u)
	}
	return uint32(n), uint32(m), "", nil
}

// args is the command line of a process type. CNB images run
// /cnb/process/<type> (the launcher with the buildpacks' environment), and
// an explicit command goes through the launcher, which runs it with a shell
// like Heroku does. Other images follow Docker's rule: the command replaces
// the image's Cmd after its Entrypoint.
func (img *image) args(processType string, command []string) ([]string, error) {
	switch {
	case len(command) > 0 && img.cnb:
		return []string{"/cnb/lifecycle/launcher", strings.Join(command, " ")}, nil
	case img.cnb:
		return []string{"/cnb/process/" + processType}, nil
	}
	cmd := img.cmd
	if len(command) > 0 {
		cmd = command
	}
	a := append(append([]string(nil), img.entrypoint...), cmd...)
	if len(a) == 0 {
		return nil, skiff.Errorf(skiff.EINVALID, "the image has no command for process type %s", processType)
	}
	return a, nil
}

package k8stestbed

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Images every node has without a registry (imported into containerd): the
// pods' sandbox, and a small HTTP app for tests of the cluster itself.
const (
	PauseImage = "skiff.test/pause:1"
	// AppImage answers HTTP on $PORT (default 8080) with its host name and
	// $GREETING.
	AppImage = "skiff.test/app:1"
)

// importImages builds the test bed's images and imports them into the
// containerd at sock, in the namespace the kubelet uses.
func (c *Cluster) importImages(ctx context.Context, sock string) error {
	prog, err := tbapp(ctx, filepath.Dir(c.bin))
	if err != nil {
		return err
	}
	for _, im := range []struct {
		ref string
		cmd []string
	}{{PauseImage, []string{"/tbapp", "pause"}}, {AppImage, []string{"/tbapp", "serve"}}} {
		file := filepath.Join(c.Dir, filepath.Base(im.ref)+".tar")
		if err := writeImage(file, im.ref, prog, im.cmd); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, filepath.Join(c.root, "usr/bin/ctr"), "--address", sock,
			"--namespace", "k8s.io", "images", "import", file).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr import %s: %v: %s", im.ref, err, out)
		}
	}
	return nil
}

// App is the test app's image (AppImage), to put in a registry.
func (c *Cluster) App(ctx context.Context) (v1.Image, error) {
	prog, err := tbapp(ctx, filepath.Dir(c.bin))
	if err != nil {
		return nil, err
	}
	return image(prog, []string{"/tbapp", "serve"})
}

// tbapp builds testdata/tbapp once per source and Go version, into the
// cache directory beside the Kubernetes binaries.
func tbapp(ctx context.Context, cache string) ([]byte, error) {
	src, err := repoFile("internal/k8stestbed/testdata/tbapp")
	if err != nil {
		return nil, err
	}
	code, err := os.ReadFile(filepath.Join(src, "main.go"))
	if err != nil {
		return nil, err
	}
	goVersion, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	sum := sha256.Sum256(append(code, goVersion...))
	out := filepath.Join(cache, "tbapp-"+hex.EncodeToString(sum[:8]))
	if b, err := os.ReadFile(out); err == nil {
		return b, nil
	}
	tmp := out + fmt.Sprintf(".%d", os.Getpid())
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build tbapp: %v: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// writeImage writes a one-layer image (the program at /tbapp) as a tarball
// that `ctr images import` reads. The platform is set: containerd refuses
// an image whose config names none.
func writeImage(file, ref string, prog []byte, cmd []string) error {
	img, err := image(prog, cmd)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(file, tag, img)
}

// image is a one-layer image of prog at /tbapp, running cmd as nobody.
func image(prog []byte, cmd []string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "tbapp", Mode: 0o755, Size: int64(len(prog)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(prog); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config = v1.Config{Entrypoint: cmd, User: "65534:65534"}
	return mutate.ConfigFile(img, cfg)
}

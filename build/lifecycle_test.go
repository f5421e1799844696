package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lifecycle layer holds the binaries as they are on disk, read while
// the layer is written (not copied into memory first), with a link per
// phase and the descriptor.
func TestLifecycleLayerHoldsTheBinaries(t *testing.T) {
	dir := t.TempDir()
	lifecycle := make([]byte, 3<<20+17) // more than one copy buffer, not a multiple of one
	launcher := make([]byte, 100<<10)
	rand.Read(lifecycle)
	rand.Read(launcher)
	for name, b := range map[string][]byte{"lifecycle": lifecycle, "launcher": launcher, "VERSION": []byte("0.20.99\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := newTestPlatform(t, Config{LifecycleDir: dir})
	lf, err := loadLifecycle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if lf.Version != "0.20.99" {
		t.Fatalf("version %q", lf.Version)
	}
	l, err := p.lifecycleLayer(context.Background(), lf)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string][]byte{}
	links := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != "cnb/lifecycle/lifecycle.toml" && h.Mode != 0o755 {
				t.Errorf("%s: mode %o", h.Name, h.Mode)
			}
			got[h.Name] = b
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		}
	}
	if !bytes.Equal(got["cnb/lifecycle/lifecycle"], lifecycle) || !bytes.Equal(got["cnb/lifecycle/launcher"], launcher) {
		t.Fatalf("the layer's binaries differ from the files (lifecycle %d bytes of %d, launcher %d of %d)",
			len(got["cnb/lifecycle/lifecycle"]), len(lifecycle), len(got["cnb/lifecycle/launcher"]), len(launcher))
	}
	if !strings.Contains(string(got["cnb/lifecycle/lifecycle.toml"]), "0.20.99") {
		t.Errorf("lifecycle.toml: %q", got["cnb/lifecycle/lifecycle.toml"])
	}
	for _, ph := range lifecyclePhases {
		if links["cnb/lifecycle/"+ph] != "lifecycle" {
			t.Errorf("%s links to %q", ph, links["cnb/lifecycle/"+ph])
		}
	}
}

// A directory without the binaries, with a directory in a binary's place,
// or without a version is refused with what to do.
func TestLoadLifecycleRefusesWhatIsNotThere(t *testing.T) {
	write := func(t *testing.T, dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	noLauncher := t.TempDir()
	write(t, noLauncher, "lifecycle", "x")
	write(t, noLauncher, "VERSION", "1.0")
	dirInPlace := t.TempDir()
	write(t, dirInPlace, "lifecycle", "x")
	write(t, dirInPlace, "VERSION", "1.0")
	if err := os.Mkdir(filepath.Join(dirInPlace, "launcher"), 0o755); err != nil {
		t.Fatal(err)
	}
	noVersion := t.TempDir()
	write(t, noVersion, "lifecycle", "x")
	write(t, noVersion, "launcher", "y")
	write(t, noVersion, "VERSION", " \n")
	for name, c := range map[string]struct{ dir, want string }{
		"no launcher":         {noLauncher, "run scripts/build-lifecycle.sh"},
		"a directory instead": {dirInPlace, "not found in " + dirInPlace},
		"an empty version":    {noVersion, "VERSION file is empty"},
	} {
		if _, err := loadLifecycle(c.dir); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}

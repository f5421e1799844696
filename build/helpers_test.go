package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/vishvananda/netlink"

	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/imagestore"
	"github.com/skiffhq/skiff/internal/testslot"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the CNB lifecycle under runc in a user namespace")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed (apt-get install runc)")
	}
}

var (
	lifecycleOnce sync.Once
	lifecycleDir  string
	lifecycleErr  error
)

// testLifecycle returns a directory with the lifecycle binaries: those that
// make build puts in build/lifecycle, or ones this test builds (cached
// between runs by scripts/build-lifecycle.sh).
func testLifecycle(t *testing.T) string {
	t.Helper()
	lifecycleOnce.Do(func() {
		if _, err := os.Stat("lifecycle/lifecycle"); err == nil {
			lifecycleDir, _ = filepath.Abs("lifecycle")
			return
		}
		dir := filepath.Join(os.TempDir(), "skiff-test-lifecycle")
		cmd := exec.Command("../scripts/build-lifecycle.sh", dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		lifecycleErr = cmd.Run()
		lifecycleDir = dir
	})
	if lifecycleErr != nil {
		t.Fatalf("build the lifecycle: %v", lifecycleErr)
	}
	return lifecycleDir
}

// openDataDir makes a data directory whose path builds can traverse.
func openDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	return dir
}

func newTestPlatform(t *testing.T, cfg Config) *Platform {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = openDataDir(t)
	}
	if cfg.Store == nil {
		s, err := imagestore.Open(filepath.Join(cfg.DataDir, "images"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Store = s
	}
	if cfg.LifecycleDir == "" {
		cfg.LifecycleDir = testLifecycle(t)
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 64 << 20
	}
	// Containers and cgroups of this test process only: other test
	// processes (go test ./... of other packages or worktrees) may run
	// builds with the same ids at the same time.
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.DataDir, "runc")
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = fmt.Sprintf("skiff-builds-test-%d", os.Getpid())
		parent := cfg.CgroupParent
		t.Cleanup(func() {
			ctls, _ := os.ReadDir("/sys/fs/cgroup")
			os.Remove(filepath.Join("/sys/fs/cgroup", parent))
			for _, c := range ctls {
				os.Remove(filepath.Join("/sys/fs/cgroup", c.Name(), parent))
			}
		})
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// tarOf makes a tar stream of files (name → content; a name ending in "/"
// is a directory; "->" in content makes a symlink).
func tarOf(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range sortedKeys(files) {
		c := files[n]
		switch {
		case n[len(n)-1] == '/':
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755})
		case len(c) > 3 && c[:3] == "-> ":
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: n, Linkname: c[3:]})
		default:
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: int64(len(c))})
			io.WriteString(tw, c)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

const testPasswd = "root:x:0:0:root:/root:/bin/sh\ncnb:x:1000:1000:cnb:/home/cnb:/bin/sh\n"
const testGroup = "root:x:0:\ncnb:x:1000:\n"

// putBase stores a minimal base image (users, no shell) under ref.
func putBase(t *testing.T, s *imagestore.Store, ref string, extra map[string]string) v1.Hash {
	t.Helper()
	files := map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup, "tmp/": "", "home/": ""}
	for k, v := range extra {
		files[k] = v
	}
	l, err := s.PutLayer(context.Background(), func(w io.Writer) error {
		_, err := io.Copy(w, tarOf(t, files))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cf.Config.User = "1000:1000" // CNB base images name their non-root user
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Put(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var (
	synthOnce sync.Once
	synthBin  string
	synthErr  error
)

// synthBuildpacks writes the synthetic buildpack (testdata/synth) into a
// buildpacks directory laid out as the buildpacks package writes it.
func synthBuildpacks(t *testing.T) string {
	t.Helper()
	synthOnce.Do(func() {
		synthBin = filepath.Join(os.TempDir(), "skiff-test-synth")
		cmd := exec.Command("go", "build", "-o", synthBin, "./testdata/synth")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		synthErr = cmd.Run()
	})
	if synthErr != nil {
		t.Fatalf("build synth: %v", synthErr)
	}
	dir := t.TempDir()
	bp := filepath.Join(dir, "synth_bp", "1.0.0")
	os.MkdirAll(filepath.Join(bp, "bin"), 0o755)
	bin, err := os.ReadFile(synthBin)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"detect", "build"} {
		if err := os.WriteFile(filepath.Join(bp, "bin", n), bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(bp, "buildpack.toml"), []byte(`api = "0.10"
[buildpack]
id = "synth/bp"
version = "1.0.0"
name = "Synthetic"
`), 0o644)
	return dir
}

// synthBuilder creates skiff.local/builder:synth and its run image.
func synthBuilder(t *testing.T, p *Platform) string {
	t.Helper()
	putBase(t, p.store, "skiff.local/build-base:synth", nil)
	putBase(t, p.store, "skiff.local/run:synth", nil)
	ref := "skiff.local/builder:synth"
	_, err := p.CreateBuilderImage(context.Background(), BuilderSpec{
		Ref: ref, BaseRef: "skiff.local/build-base:synth", RunRef: "skiff.local/run:synth",
		UID: 1000, GID: 1000, BuildpacksDir: synthBuildpacks(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func testingRoot() bool { return os.Geteuid() == 0 }

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testNetwork is a build network private to this test process (its own
// nftables table, veth prefix and pool: its slot of the host,
// internal/testslot), removed at the end of the test, which also checks
// that no build left a veth behind.
func testNetwork(t *testing.T) *container.Network {
	t.Helper()
	slot, err := testslot.Get("build")
	if err != nil {
		t.Fatal(err)
	}
	// Letters no test used before the slots' two-digit tags: an older
	// test's leftover table ("sb" and three digits, from a binary killed
	// before its cleanup) would otherwise overlap and refuse this one.
	prefix := "bt" + slot.Tag()
	nw, err := container.NewNetwork(container.NetworkConfig{
		Pool: slot.Pool(), LinkPrefix: prefix, Table: "skiffbt" + slot.Tag(),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Name, prefix) {
				t.Errorf("veth left behind: %s", l.Attrs().Name)
			}
		}
		nw.Remove()
	})
	return nw
}

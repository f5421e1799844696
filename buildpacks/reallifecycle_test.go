package buildpacks

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestRealLifecycle runs the packaged buildpacks under the real CNB
// lifecycle's detector and builder (no containers), so the TOML they write
// and the environment they expect are checked against the lifecycle itself,
// not only against this package's stand-in. It needs the lifecycle binary
// that `make` builds into build/lifecycle/ (or $SKIFF_LIFECYCLE), and root
// to run it as an unprivileged user, since the lifecycle refuses root.
func TestRealLifecycle(t *testing.T) {
	lc := os.Getenv("SKIFF_LIFECYCLE")
	if lc == "" {
		lc = filepath.Join("..", "build", "lifecycle", "lifecycle")
	}
	if _, err := os.Stat(lc); err != nil {
		t.Skipf("no lifecycle binary at %s (make builds it; or set SKIFF_LIFECYCLE)", lc)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the lifecycle as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	lc, _ = filepath.Abs(lc)
	for _, tc := range []struct {
		app, procfile string
		group         []string
		web           string
	}{
		{"static", "", []string{"skiff/static"}, "skiff-static"},
		{"python", "web: exec python app.py\nworker: sleep infinity\n", []string{"skiff/python", "skiff/procfile"}, "bash"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			if tc.app == "python" {
				if _, err := exec.LookPath("python3"); err != nil {
					t.Skip("needs python3")
				}
			}
			// A world-traversable root: the user the lifecycle runs as must
			// reach the tree, the app and the layers.
			root, err := os.MkdirTemp("", "skiff-lifecycle-")
			must(t, err)
			t.Cleanup(func() { os.RemoveAll(root) })
			must(t, os.Chmod(root, 0o755))
			for _, name := range []string{"detector", "builder"} {
				must(t, os.Symlink(lc, filepath.Join(root, name)))
			}
			must(t, os.CopyFS(filepath.Join(root, "buildpacks"), os.DirFS(tree)))
			must(t, os.CopyFS(filepath.Join(root, "app"), os.DirFS(filepath.Join("testdata", "apps", tc.app))))
			if tc.procfile != "" {
				must(t, os.WriteFile(filepath.Join(root, "app", "Procfile"), []byte(tc.procfile), 0o644))
			}
			for _, d := range []string{"layers", "platform/env", "home"} {
				must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
			}
			must(t, os.WriteFile(filepath.Join(root, "layers", "analyzed.toml"),
				[]byte("[run-image]\nreference = \"skiff.local/run\"\n[run-image.target]\nos = \"linux\"\narch = \"amd64\"\n"), 0o644))
			must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				return os.Lchown(p, 65534, 65534)
			}))
			var out bytes.Buffer
			run := func(phase string, args ...string) {
				cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(root, phase)}, args...)...)
				cmd.Dir = root
				cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + filepath.Join(root, "home"), "CNB_PLATFORM_API=0.14"}
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					t.Fatalf("%s: %v\n%s", phase, err, out.String())
				}
			}
			common := []string{"-app", "app", "-buildpacks", "buildpacks", "-layers", "layers", "-platform", "platform"}
			run("detector", append(common, "-order", "buildpacks/order.toml")...)
			run("builder", common...)

			var md struct {
				Buildpacks []struct{ ID string } `toml:"buildpacks"`
				Processes  []struct {
					Type    string   `toml:"type"`
					Command []string `toml:"command"`
				} `toml:"processes"`
				Default string `toml:"buildpack-default-process-type"`
			}
			if _, err := toml.DecodeFile(filepath.Join(root, "layers", "config", "metadata.toml"), &md); err != nil {
				t.Fatalf("metadata.toml: %v\n%s", err, out.String())
			}
			var ids []string
			for _, bp := range md.Buildpacks {
				ids = append(ids, bp.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.group, ",") {
				t.Errorf("group %v, want %v\n%s", ids, tc.group, out.String())
			}
			web := ""
			for _, p := range md.Processes {
				if p.Type == "web" {
					web = filepath.Base(p.Command[0])
				}
			}
			if web != tc.web || md.Default != "web" {
				t.Errorf("web process runs %q (default %q), want %q\n%s", web, md.Default, tc.web, out.String())
			}
		})
	}
}

package buildpacks

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPythonApp(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3 with venv, as the builder image has")
	}
	p := newPlatform(t, "python")
	p.mustBuild(false)
	out := p.out.String()
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/python"}) {
		t.Fatalf("group %v", got)
	}
	for _, want := range []string{
		"-----> Python app detected\n       Using Python 3.",
		"-----> Installing dependencies (pip, requirements.txt)\n       No dependencies to install\n",
		"       Process type web -> python app.py\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	venv := filepath.Join(p.layers, "skiff_python", "venv")
	// Nothing at build time needs the venv: a launch layer only, which the
	// next build takes from this image.
	if doc, _ := p.layer("skiff/python", "venv"); doc.Types != (layerTypes{Launch: true}) || doc.Metadata["python"] == "" {
		t.Errorf("venv layer %+v", doc)
	}
	if !slices.Equal(p.processes["web"].Command, []string{"python", "app.py"}) {
		t.Errorf("web %+v", p.processes["web"])
	}
	checkHashBasedBytecode(t, venv)
	checkGet(t, p.start("web")+"/", 200, "in "+venv)

	p.mustBuild(true)
	if out := p.out.String(); !strings.Contains(out, "Reusing the previous image's virtual environment (requirements.txt unchanged)") {
		t.Errorf("rebuild output:\n%s", out)
	}
	if !slices.Contains(p.reused, "skiff_python/venv") {
		t.Errorf("the venv was exported again: reused %v", p.reused)
	}
	checkGet(t, p.start("web")+"/", 200, "hello from python 3.")
}

// TestPythonLocalWheel installs a real dependency with pip, without a
// package index: a wheel in the app.
func TestPythonLocalWheel(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3 with venv, as the builder image has")
	}
	p := newPlatform(t, "python")
	p.env["PIP_NO_INDEX"] = "1"
	writeWheel(t, filepath.Join(p.app, "dist", "skiffhello-1.0-py3-none-any.whl"))
	must(t, os.WriteFile(filepath.Join(p.app, "requirements.txt"), []byte("./dist/skiffhello-1.0-py3-none-any.whl\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(p.app, "Procfile"), []byte("web: exec python app.py\n"), 0o644))
	p.mustBuild(false)
	if !strings.Contains(p.out.String(), "Successfully installed skiffhello-1.0") {
		t.Errorf("output:\n%s", p.out.String())
	}
	if web := p.processes["web"]; web.Buildpack != "skiff/procfile" {
		t.Errorf("web %+v", web)
	}
	py := filepath.Join(p.layers, "skiff_python", "venv", "bin", "python")
	got, err := exec.Command(py, "-c", "import skiffhello; print(skiffhello.GREETING)").CombinedOutput()
	if err != nil || string(got) != "hi\n" {
		t.Errorf("import from the venv: %q %v", got, err)
	}
	pipCache, _ := p.layer("skiff/python", "pip-cache")
	if pipCache.Types != (layerTypes{Cache: true}) {
		t.Errorf("pip-cache layer %+v", pipCache)
	}
}

func writeWheel(t *testing.T, path string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	files := []struct{ name, body string }{
		{"skiffhello.py", "GREETING = \"hi\"\n"},
		{"skiffhello-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: skiffhello\nVersion: 1.0\n"},
		{"skiffhello-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: skiff-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	f, err := os.Create(path)
	must(t, err)
	zw := zip.NewWriter(f)
	for _, file := range files {
		w, err := zw.Create(file.name)
		must(t, err)
		w.Write([]byte(file.body))
		sum := sha256.Sum256([]byte(file.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", file.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(file.body))
	}
	record.WriteString("skiffhello-1.0.dist-info/RECORD,,\n")
	w, err := zw.Create("skiffhello-1.0.dist-info/RECORD")
	must(t, err)
	w.Write([]byte(record.String()))
	must(t, zw.Close())
	must(t, f.Close())
}

// checkHashBasedBytecode fails unless every .pyc under dir records its
// source's hash (PEP 552) rather than its mtime: the mtime differs between
// two builds of the same venv, so a venv made again after the cache was
// lost would be another layer than the previous image's.
func checkHashBasedBytecode(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pyc") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if len(b) < 8 || b[4]&1 == 0 {
			return fmt.Errorf("%s records its source's mtime, not its hash", path)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if n == 0 {
		t.Errorf("no bytecode under %s (pip's own is compiled when the venv is made)", dir)
	}
}

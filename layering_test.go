package skiff_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the architecture honest: a package imports the root
// package, internal/ packages, its own concern's packages (buildpacks/…),
// the standard library and third-party modules, never a sibling concern.
// Only commands (cmd/, bench/) wire concerns together; the root package
// imports nothing of the module.
func TestLayering(t *testing.T) {
	const module = "github.com/skiffhq/skiff"
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		own := strings.TrimPrefix(pkg.ImportPath, module+"/")
		if strings.HasPrefix(own, "cmd/") || strings.HasPrefix(own, "bench/") {
			continue // commands wire packages together
		}
		area, _, _ := strings.Cut(own, "/")
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if pkg.ImportPath == module {
				t.Errorf("the root package imports %s; it must use the standard library only", imp)
			}
			impArea, _, _ := strings.Cut(strings.TrimPrefix(imp, module+"/"), "/")
			if impArea == "internal" || impArea == area {
				continue // shared low-level code, or the same concern's own packages
			}
			t.Errorf("%s imports its sibling %s; depend on a root-package interface instead", pkg.ImportPath, imp)
		}
	}
}

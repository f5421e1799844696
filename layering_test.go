package skiff_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the architecture honest: a package imports the root
// package, internal/ packages, the standard library and third-party modules,
// never a sibling. Only cmd/ wires packages together; the root package
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
		if strings.HasPrefix(pkg.ImportPath, module+"/cmd/") {
			continue
		}
		for _, imp := range pkg.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if pkg.ImportPath == module {
				t.Errorf("the root package imports %s; it must use the standard library only", imp)
			}
			if strings.HasPrefix(imp, module+"/internal/") || strings.HasPrefix(imp, pkg.ImportPath+"/") {
				continue // shared low-level code, or the package's own subpackage
			}
			t.Errorf("%s imports its sibling %s; depend on a root-package interface instead", pkg.ImportPath, imp)
		}
	}
}

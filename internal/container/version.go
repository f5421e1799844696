package container

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// runcMinimums are the first upstream releases of each branch that carry
// the container-escape fixes skiff relies on: CVE-2024-21626 (1.1.12) and
// the November 2025 /dev/null and procfs write races (1.2.8, 1.3.3).
// Branches not listed are refused below the first listed one; later ones
// (1.4 and up) pass.
var runcMinimums = map[string]string{
	"1.1": "1.1.12",
	"1.2": "1.2.8",
	"1.3": "1.3.3",
}

// patchedDistroBuilds are distribution builds whose upstream version is
// below the minimum but that carry the fix as a backport. The key is the
// "commit:" line runc prints, which distributions set to their package
// version.
var patchedDistroBuilds = map[string]string{
	"1.1.5+ds1-1+deb12u1": "Debian 12 backport of the CVE-2024-21626 fix",
}

// RuncVersion is what `runc --version` reports.
type RuncVersion struct {
	Version string // e.g. "1.1.5+ds1"
	Commit  string // e.g. "1.1.5+ds1-1+deb12u1", a git hash upstream
	Spec    string // OCI runtime spec version
}

var semverRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// CheckRunc runs `runc --version` and refuses versions known to be
// vulnerable. allow names a "commit:" string the operator vouches for (a
// distribution build with a backported fix that this table does not know
// yet); empty for none.
func CheckRunc(ctx context.Context, binary, allow string) (RuncVersion, error) {
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.Env = runcEnv
	out, err := cmd.Output()
	if err != nil {
		return RuncVersion{}, fmt.Errorf("%s --version: %w", binary, err)
	}
	v := ParseRuncVersion(string(out))
	return v, v.Acceptable(allow)
}

// ParseRuncVersion parses the output of `runc --version`.
func ParseRuncVersion(out string) RuncVersion {
	var v RuncVersion
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "runc version "):
			v.Version = strings.TrimSpace(strings.TrimPrefix(line, "runc version "))
		case strings.HasPrefix(line, "commit: "):
			v.Commit = strings.TrimSpace(strings.TrimPrefix(line, "commit: "))
		case strings.HasPrefix(line, "spec: "):
			v.Spec = strings.TrimSpace(strings.TrimPrefix(line, "spec: "))
		}
	}
	return v
}

// Acceptable reports whether v is at or above the minimum of its branch, or
// a known (or allowed) patched distribution build.
func (v RuncVersion) Acceptable(allow string) error {
	if v.Commit != "" && (patchedDistroBuilds[v.Commit] != "" || v.Commit == allow) {
		return nil
	}
	m := semverRE.FindStringSubmatch(v.Version)
	if m == nil {
		return fmt.Errorf("runc version %q not understood", v.Version)
	}
	min, ok := runcMinimums[m[1]+"."+m[2]]
	if !ok {
		if cmpVersion(m[0], "1.1.0") < 0 {
			min = runcMinimums["1.1"]
		} else {
			return nil // a branch newer than the table
		}
	}
	if cmpVersion(m[0], min) < 0 {
		return fmt.Errorf("runc %s (build %s) is older than %s and lacks container-escape fixes; upgrade runc (or, for a distribution build with the fixes backported, allow its build string explicitly)", v.Version, v.Commit, min)
	}
	return nil
}

// cmpVersion compares two x.y.z strings numerically.
func cmpVersion(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range 3 {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

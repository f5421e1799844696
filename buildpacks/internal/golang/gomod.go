package golang

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// GoMod is what the buildpack reads from go.mod.
type GoMod struct {
	Module    string    // the module path
	Go        GoVersion // the go line; zero when absent
	Toolchain GoVersion // the toolchain line; zero when absent
	// HerokuGoVersion and HerokuInstall are the "// +heroku goVersion" and
	// "// +heroku install" directives Heroku's Go buildpack reads from
	// go.mod comments; "" and nil when absent.
	HerokuGoVersion string
	HerokuInstall   []string
}

// maxGoMod bounds go.mod: real ones are a few KiB.
const maxGoMod = 1 << 20

// ParseGoMod reads the module, go and toolchain directives of a go.mod.
// Other directives and blocks are skipped (the go command checks them);
// malformed go and toolchain lines are errors naming the line, since they
// choose what gets installed.
func ParseGoMod(data []byte) (*GoMod, error) {
	if len(data) > maxGoMod {
		return nil, fmt.Errorf("go.mod is larger than %d KiB", maxGoMod>>10)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("go.mod is not UTF-8 text")
	}
	var m GoMod
	inBlock := false
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "// +heroku "); ok && !inBlock {
			f := strings.Fields(d)
			switch {
			case len(f) == 2 && f[0] == "goVersion":
				m.HerokuGoVersion = f[1]
			case len(f) >= 2 && f[0] == "install":
				for _, p := range f[1:] {
					if p = strings.Trim(p, ","); p != "" {
						m.HerokuInstall = append(m.HerokuInstall, p)
					}
				}
			}
			continue
		}
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if inBlock {
			if f[0] == ")" {
				inBlock = false
			}
			continue
		}
		if f[len(f)-1] == "(" {
			inBlock = true
			continue
		}
		switch f[0] {
		case "module":
			if len(f) != 2 {
				return nil, fmt.Errorf("go.mod line %d: want module <path>", n)
			}
			p := f[1]
			if uq, err := strconv.Unquote(p); err == nil {
				p = uq
			}
			m.Module = p
		case "go":
			if len(f) != 2 {
				return nil, fmt.Errorf("go.mod line %d: want go 1.N or go 1.N.P", n)
			}
			v, ok := ParseGoVersion(f[1])
			if !ok {
				return nil, fmt.Errorf("go.mod line %d: invalid go version %q; use a Go release like 1.25 or 1.25.4", n, f[1])
			}
			m.Go = v
		case "toolchain":
			s, ok := strings.CutPrefix(fieldOr(f, 1), "go")
			v, valid := ParseGoVersion(s)
			if len(f) != 2 || !ok || !valid {
				return nil, fmt.Errorf("go.mod line %d: invalid toolchain %q; use a Go release like go1.25.4", n, strings.Join(f[1:], " "))
			}
			m.Toolchain = v
		}
	}
	return &m, nil
}

func fieldOr(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// GoVersion is a Go release version: 1.N, 1.N.P, 1.NrcR or 1.NbetaR. Parts
// is how many numeric parts it had (2 for "1.25", 3 for "1.25.4").
type GoVersion struct {
	Minor, Patch int
	Pre          string // "beta" or "rc"
	PreNum       int
	Parts        int
}

var goVersionRE = regexp.MustCompile(`^1\.(0|[1-9][0-9]{0,3})(?:\.(0|[1-9][0-9]{0,3}))?(?:(rc|beta)([1-9][0-9]{0,2}))?$`)

// ParseGoVersion parses a version without the "go" prefix.
func ParseGoVersion(s string) (GoVersion, bool) {
	m := goVersionRE.FindStringSubmatch(s)
	if m == nil {
		return GoVersion{}, false
	}
	var v GoVersion
	v.Minor, _ = strconv.Atoi(m[1])
	v.Parts = 2
	if m[2] != "" {
		v.Patch, _ = strconv.Atoi(m[2])
		v.Parts = 3
	}
	if m[3] != "" {
		if m[2] != "" {
			return GoVersion{}, false // 1.21.0rc1 is not a Go version
		}
		v.Pre = m[3]
		v.PreNum, _ = strconv.Atoi(m[4])
	}
	return v, true
}

// IsZero reports whether v was absent.
func (v GoVersion) IsZero() bool { return v.Parts == 0 }

func (v GoVersion) String() string {
	s := fmt.Sprintf("1.%d", v.Minor)
	if v.Parts == 3 {
		s += fmt.Sprintf(".%d", v.Patch)
	}
	if v.Pre != "" {
		s += fmt.Sprintf("%s%d", v.Pre, v.PreNum)
	}
	return s
}

// Compare orders versions as Go does: 1.21 < 1.21beta1 < 1.21rc1 < 1.21.0
// < 1.21.1 (a bare 1.N is the language version, before any release).
func (v GoVersion) Compare(o GoVersion) int {
	return cmpInts(v.key(), o.key())
}

func (v GoVersion) key() []int {
	stage := 3 // release
	switch {
	case v.Pre == "beta":
		stage = 1
	case v.Pre == "rc":
		stage = 2
	case v.Parts == 2:
		stage = 0
	}
	return []int{v.Minor, stage, v.PreNum, v.Patch}
}

func cmpInts(a, b []int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// IsRelease reports whether v names a release (1.N.P, or 1.N for Go
// before 1.21, whose first releases had no .0).
func (v GoVersion) IsRelease() bool {
	return v.Pre == "" && (v.Parts == 3 || v.Minor < 21)
}

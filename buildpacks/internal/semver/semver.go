// Package semver parses semantic versions and npm's version ranges (the
// grammar of package.json "engines" and dependencies: x-ranges, ~, ^,
// hyphen ranges, comparators, ||), with npm's rule that a prerelease only
// satisfies a range that names a prerelease of the same version.
package semver

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a semantic version; build metadata is dropped.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string
}

// maxNumber keeps numbers exact as JSON numbers and sums free of overflow.
const maxNumber = 1<<53 - 1

// MaxLen bounds what is parsed: engines ranges are short.
const MaxLen = 256

// Parse parses "1.2.3", "v1.2.3", "1.2.3-rc.1+build".
func Parse(s string) (Version, error) {
	p, err := parsePartial(strings.TrimPrefix(strings.TrimSpace(s), "="))
	if err != nil {
		return Version{}, err
	}
	if p.wild < 3 {
		return Version{}, fmt.Errorf("invalid version %q: want MAJOR.MINOR.PATCH", s)
	}
	return p.v, nil
}

// MustParse is Parse for constants.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	return s
}

// Compare returns -1, 0 or +1 by semver precedence.
func (v Version) Compare(o Version) int {
	for _, d := range [][2]uint64{{v.Major, o.Major}, {v.Minor, o.Minor}, {v.Patch, o.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(v.Pre) == 0 && len(o.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(o.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(o.Pre); i++ {
		if c := comparePre(v.Pre[i], o.Pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.Pre) < len(o.Pre):
		return -1
	case len(v.Pre) > len(o.Pre):
		return 1
	}
	return 0
}

func comparePre(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		if an < bn {
			return -1
		} else if an > bn {
			return 1
		}
		return 0
	case aerr == nil:
		return -1 // numeric identifiers sort first
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func (v Version) sameTuple(o Version) bool {
	return v.Major == o.Major && v.Minor == o.Minor && v.Patch == o.Patch
}

// partial is a version with trailing parts possibly missing or wildcards:
// wild is how many leading parts are given (0 for "*", 1 for "1", 2 for
// "1.2", 3 for "1.2.3").
type partial struct {
	v    Version
	wild int
}

var preRE = regexp.MustCompile(`^[0-9A-Za-z-]+$`)

func parsePartial(s string) (partial, error) {
	orig := s
	s = strings.TrimPrefix(s, "v")
	if s == "" {
		return partial{}, fmt.Errorf("invalid version %q", orig)
	}
	s, _, _ = strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return partial{}, fmt.Errorf("invalid version %q", orig)
	}
	var p partial
	nums := []*uint64{&p.v.Major, &p.v.Minor, &p.v.Patch}
	for i, part := range parts {
		if part == "x" || part == "X" || part == "*" {
			break
		}
		if p.wild != i {
			return partial{}, fmt.Errorf("invalid version %q", orig)
		}
		n, err := number(part)
		if err != nil {
			return partial{}, fmt.Errorf("invalid version %q", orig)
		}
		*nums[i] = n
		p.wild = i + 1
	}
	// "1.x.3" is nonsense: nothing may follow a wildcard.
	for _, part := range parts[p.wild:] {
		if part != "x" && part != "X" && part != "*" {
			return partial{}, fmt.Errorf("invalid version %q", orig)
		}
	}
	if hasPre {
		if p.wild < 3 {
			return partial{}, fmt.Errorf("invalid version %q: a prerelease needs MAJOR.MINOR.PATCH", orig)
		}
		for _, id := range strings.Split(pre, ".") {
			if !preRE.MatchString(id) {
				return partial{}, fmt.Errorf("invalid version %q", orig)
			}
			p.v.Pre = append(p.v.Pre, id)
		}
	}
	return p, nil
}

func number(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("bad number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errors.New("bad number")
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxNumber {
		return 0, errors.New("bad number")
	}
	return n, nil
}

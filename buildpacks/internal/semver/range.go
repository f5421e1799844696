package semver

import (
	"fmt"
	"regexp"
	"strings"
)

// Range is a parsed npm range: a version satisfies it when it satisfies
// every comparator of at least one set.
type Range struct {
	sets [][]comparator
}

type comparator struct {
	op string // "<", "<=", ">", ">=", "="
	v  Version
}

func (c comparator) String() string {
	if c.op == "=" {
		return c.v.String()
	}
	return c.op + c.v.String()
}

func (c comparator) test(v Version) bool {
	d := v.Compare(c.v)
	switch c.op {
	case "<":
		return d < 0
	case "<=":
		return d <= 0
	case ">":
		return d > 0
	case ">=":
		return d >= 0
	default:
		return d == 0
	}
}

var (
	hyphenRE  = regexp.MustCompile(`^(\S+)\s+-\s+(\S+)$`)
	opSpaceRE = regexp.MustCompile(`(<=|>=|~>|<|>|=|~|\^)\s+`)
	opRE      = regexp.MustCompile(`^(<=|>=|~>|<|>|=|~|\^)?(.*)$`)
)

// ParseRange parses an npm range such as "18.x", ">=18 <21", "^20.10.0",
// "16 - 18" or "18 || 20".
func ParseRange(s string) (Range, error) {
	if len(s) > MaxLen {
		return Range{}, fmt.Errorf("version range longer than %d characters", MaxLen)
	}
	return parseRange(s)
}

// parseRange parses without the length cap: a range's canonical form may
// be longer than what it was parsed from ("0 0" expands to comparators).
func parseRange(s string) (Range, error) {
	var r Range
	for _, alt := range strings.Split(s, "||") {
		set, err := parseSet(strings.TrimSpace(alt))
		if err != nil {
			return Range{}, fmt.Errorf("invalid version range %q: %w", s, err)
		}
		r.sets = append(r.sets, set)
	}
	return r, nil
}

func parseSet(s string) ([]comparator, error) {
	if s == "" {
		return anyVersion(), nil
	}
	if m := hyphenRE.FindStringSubmatch(s); m != nil {
		return hyphen(m[1], m[2])
	}
	s = opSpaceRE.ReplaceAllString(s, "$1")
	var set []comparator
	for _, f := range strings.Fields(s) {
		cs, err := parseComparator(f)
		if err != nil {
			return nil, err
		}
		set = append(set, cs...)
	}
	return set, nil
}

func anyVersion() []comparator { return []comparator{{">=", Version{}}} }

// none matches nothing: below every version, prereleases included.
func none() []comparator { return []comparator{{"<", Version{Pre: []string{"0"}}}} }

func lower(v Version) Version { v.Pre = []string{"0"}; return v }

func parseComparator(f string) ([]comparator, error) {
	m := opRE.FindStringSubmatch(f)
	op, p := m[1], m[2]
	part, err := parsePartial(strings.TrimPrefix(p, "="))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", f, err)
	}
	v := part.v
	switch op {
	case "~", "~>":
		switch part.wild {
		case 0:
			return anyVersion(), nil
		case 1:
			return []comparator{{">=", v}, {"<", lower(Version{Major: v.Major + 1})}}, nil
		default:
			return []comparator{{">=", v}, {"<", lower(Version{Major: v.Major, Minor: v.Minor + 1})}}, nil
		}
	case "^":
		switch {
		case part.wild == 0:
			return anyVersion(), nil
		case v.Major > 0 || part.wild == 1:
			return []comparator{{">=", v}, {"<", lower(Version{Major: v.Major + 1})}}, nil
		case v.Minor > 0 || part.wild == 2:
			return []comparator{{">=", v}, {"<", lower(Version{Minor: v.Minor + 1})}}, nil
		default:
			return []comparator{{">=", v}, {"<", lower(Version{Patch: v.Patch + 1})}}, nil
		}
	case ">":
		switch part.wild {
		case 0:
			return none(), nil
		case 1:
			return []comparator{{">=", Version{Major: v.Major + 1}}}, nil
		case 2:
			return []comparator{{">=", Version{Major: v.Major, Minor: v.Minor + 1}}}, nil
		}
		return []comparator{{">", v}}, nil
	case ">=":
		return []comparator{{">=", v}}, nil
	case "<":
		if part.wild == 0 {
			return none(), nil
		}
		if part.wild < 3 {
			return []comparator{{"<", lower(v)}}, nil
		}
		return []comparator{{"<", v}}, nil
	case "<=":
		switch part.wild {
		case 0:
			return anyVersion(), nil
		case 1:
			return []comparator{{"<", lower(Version{Major: v.Major + 1})}}, nil
		case 2:
			return []comparator{{"<", lower(Version{Major: v.Major, Minor: v.Minor + 1})}}, nil
		}
		return []comparator{{"<=", v}}, nil
	}
	return xRange(part), nil
}

// xRange is a bare (or "=") partial version.
func xRange(p partial) []comparator {
	v := p.v
	switch p.wild {
	case 0:
		return anyVersion()
	case 1:
		return []comparator{{">=", v}, {"<", lower(Version{Major: v.Major + 1})}}
	case 2:
		return []comparator{{">=", v}, {"<", lower(Version{Major: v.Major, Minor: v.Minor + 1})}}
	}
	return []comparator{{"=", v}}
}

func hyphen(from, to string) ([]comparator, error) {
	lo, err := parsePartial(from)
	if err != nil {
		return nil, err
	}
	hi, err := parsePartial(to)
	if err != nil {
		return nil, err
	}
	var set []comparator
	if lo.wild > 0 {
		set = append(set, comparator{">=", lo.v})
	}
	switch hi.wild {
	case 1:
		set = append(set, comparator{"<", lower(Version{Major: hi.v.Major + 1})})
	case 2:
		set = append(set, comparator{"<", lower(Version{Major: hi.v.Major, Minor: hi.v.Minor + 1})})
	case 3:
		set = append(set, comparator{"<=", hi.v})
	}
	if len(set) == 0 {
		return anyVersion(), nil
	}
	return set, nil
}

// Contains reports whether v satisfies the range. A prerelease satisfies a
// set only if one of its comparators names a prerelease of the same
// MAJOR.MINOR.PATCH, as in npm: "^20.0.0" does not pull in 21.0.0-rc.1.
func (r Range) Contains(v Version) bool {
	for _, set := range r.sets {
		if matchSet(set, v) {
			return true
		}
	}
	return false
}

func matchSet(set []comparator, v Version) bool {
	for _, c := range set {
		if !c.test(v) {
			return false
		}
	}
	if len(v.Pre) == 0 {
		return true
	}
	for _, c := range set {
		if len(c.v.Pre) > 0 && c.v.sameTuple(v) && !(len(c.v.Pre) == 1 && c.v.Pre[0] == "0" && c.op == "<") {
			return true
		}
	}
	return false
}

// Max returns the highest of versions that satisfies the range.
func (r Range) Max(versions []Version) (Version, bool) {
	var best Version
	found := false
	for _, v := range versions {
		if r.Contains(v) && (!found || v.Compare(best) > 0) {
			best, found = v, true
		}
	}
	return best, found
}

// String renders the range in canonical comparator form.
func (r Range) String() string {
	sets := make([]string, len(r.sets))
	for i, set := range r.sets {
		cs := make([]string, len(set))
		for j, c := range set {
			cs[j] = c.String()
		}
		sets[i] = strings.Join(cs, " ")
	}
	return strings.Join(sets, " || ")
}

// IsZero reports whether r is the zero Range, which no parse returns.
func (r Range) IsZero() bool { return r.sets == nil }

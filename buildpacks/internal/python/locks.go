package python

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Locked is one package version a lock file pins.
type Locked struct {
	Name    string
	Version string
	Marker  string   // PEP 508 environment marker, "" for always
	Hashes  []string // "sha256:<hex>"
	Extras  []string
	// URL is a direct reference (a VCS URL or an archive) for packages not
	// from an index; pip cannot check hashes of those.
	URL string
}

// Requirement renders l as a requirements.txt line that pins it exactly,
// marker and hashes included (pip reads markers before options).
func (l Locked) Requirement(withHashes bool) string {
	name := l.Name
	if len(l.Extras) > 0 {
		name += "[" + strings.Join(l.Extras, ",") + "]"
	}
	s := name + "==" + l.Version
	if l.URL != "" {
		s = name + " @ " + l.URL
	}
	if l.Marker != "" {
		s += " ; " + l.Marker
	}
	if withHashes {
		for _, h := range l.Hashes {
			s += " --hash=" + h
		}
	}
	return s
}

var (
	fullNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	versionRE2 = regexp.MustCompile(`^[A-Za-z0-9.+!_-]+$`)
	hashRE     = regexp.MustCompile(`^(sha256|sha384|sha512):[0-9a-f]+$`)
)

// check refuses what could break out of its requirements line: a lock file
// is text the app controls, rendered into a file pip reads options from.
func (l Locked) check(source string) error {
	bad := func(what, v string) error {
		return cnb.Failf("%s has a package entry with an invalid %s %q.", source, what, v).Hint("Lock again and commit the lock file.")
	}
	if !fullNameRE.MatchString(l.Name) {
		return bad("name", l.Name)
	}
	if l.URL == "" && !versionRE2.MatchString(l.Version) {
		return bad("version", l.Version)
	}
	if strings.ContainsAny(l.Marker, "\n\r\x00") || strings.Contains(l.Marker, " -") {
		return bad("marker", l.Marker)
	}
	if strings.ContainsAny(l.URL, " \n\r\x00") {
		return bad("URL", l.URL)
	}
	for _, h := range l.Hashes {
		if !hashRE.MatchString(h) {
			return bad("hash", h)
		}
	}
	for _, x := range l.Extras {
		if !fullNameRE.MatchString(x) {
			return bad("extra", x)
		}
	}
	return nil
}

// checkAll checks every entry of a lock.
func checkAll(source string, pkgs []Locked, err error) ([]Locked, error) {
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := p.check(source); err != nil {
			return nil, err
		}
	}
	return pkgs, nil
}

// LockedRequirements renders a lock's packages as a requirements file for
// pip install --no-deps: every package the lock resolved, pinned, with
// hashes (then pip checks every download) when every package has them.
func LockedRequirements(pkgs []Locked) (string, bool) {
	hashes := len(pkgs) > 0
	for _, p := range pkgs {
		if len(p.Hashes) == 0 || p.URL != "" {
			hashes = false
		}
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	var b strings.Builder
	for _, p := range pkgs {
		b.WriteString(p.Requirement(hashes))
		b.WriteByte('\n')
	}
	return b.String(), hashes
}

// ParsePipfileLock returns the packages of Pipfile.lock's "default"
// section, what `pipenv install --deploy` installs (not "develop").
func ParsePipfileLock(data []byte) ([]Locked, error) {
	pkgs, err := parsePipfileLock(data)
	return checkAll("Pipfile.lock", pkgs, err)
}

func parsePipfileLock(data []byte) ([]Locked, error) {
	if len(data) > maxRequirements {
		return nil, cnb.Failf("Pipfile.lock is larger than %d KiB.", maxRequirements>>10)
	}
	var doc struct {
		Default map[string]struct {
			Version  string   `json:"version"`
			Hashes   []string `json:"hashes"`
			Markers  string   `json:"markers"`
			Extras   []string `json:"extras"`
			Git      string   `json:"git"`
			Ref      string   `json:"ref"`
			File     string   `json:"file"`
			Path     string   `json:"path"`
			Editable bool     `json:"editable"`
		} `json:"default"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, cnb.Failf("Pipfile.lock is not valid JSON: %v.", err).Hint("Run pipenv lock and commit Pipfile.lock.")
	}
	var out []Locked
	for name, e := range doc.Default {
		if !fullNameRE.MatchString(name) {
			return nil, cnb.Failf("Pipfile.lock names a package %q.", name)
		}
		l := Locked{Name: normalize(name), Marker: e.Markers, Hashes: e.Hashes, Extras: e.Extras}
		switch {
		case e.Git != "":
			l.URL = "git+" + e.Git
			if e.Ref != "" {
				l.URL += "@" + e.Ref
			}
		case e.File != "":
			l.URL = e.File
		case e.Path != "":
			return nil, cnb.Failf("Pipfile.lock installs %s from the path %s, which skiff does not install from a lock.", name, e.Path).
				Hint("Publish it to your package index, or list it in requirements.txt instead.")
		default:
			v, ok := strings.CutPrefix(e.Version, "==")
			if !ok {
				return nil, cnb.Failf("Pipfile.lock has %s at %q, not a pinned version.", name, e.Version).Hint("Run pipenv lock and commit Pipfile.lock.")
			}
			l.Version = v
		}
		out = append(out, l)
	}
	return out, nil
}

// poetryLock is the part of poetry.lock the buildpack reads.
type poetryLock struct {
	Package []struct {
		Name         string         `toml:"name"`
		Version      string         `toml:"version"`
		Optional     bool           `toml:"optional"`
		Groups       []string       `toml:"groups"`  // lock-version 2.1
		Markers      any            `toml:"markers"` // lock-version 2.1: a string, or a table of group → marker
		Files        []poetryFile   `toml:"files"`
		Dependencies map[string]any `toml:"dependencies"`
		Extras       map[string]any `toml:"extras"`
		Source       *struct {
			Type      string `toml:"type"`
			URL       string `toml:"url"`
			Reference string `toml:"reference"`
			Resolved  string `toml:"resolved_reference"`
		} `toml:"source"`
	} `toml:"package"`
	Metadata struct {
		LockVersion string `toml:"lock-version"`
	} `toml:"metadata"`
}

type poetryFile struct {
	File string `toml:"file"`
	Hash string `toml:"hash"`
}

// ParsePoetryLock returns the packages poetry.lock resolves for the main
// group (what `poetry install --only main` installs): by the groups poetry
// 2 records, else by walking the dependencies from pyproject.toml's main
// ones. roots are pyproject's main dependency names.
func ParsePoetryLock(data []byte, roots []string) ([]Locked, error) {
	pkgs, err := parsePoetryLock(data, roots)
	return checkAll("poetry.lock", pkgs, err)
}

func parsePoetryLock(data []byte, roots []string) ([]Locked, error) {
	if len(data) > maxRequirements*8 {
		return nil, cnb.Failf("poetry.lock is larger than %d KiB.", maxRequirements*8>>10)
	}
	var lock poetryLock
	if err := cnb.DecodeTOML(data, &lock); err != nil {
		return nil, cnb.Failf("poetry.lock is not valid TOML: %v.", err).Hint("Run poetry lock and commit poetry.lock.")
	}
	byName := map[string]int{}
	for i, p := range lock.Package {
		byName[normalize(p.Name)] = i
	}
	locked := func(i int, marker string) (Locked, error) {
		p := lock.Package[i]
		l := Locked{Name: normalize(p.Name), Version: p.Version, Marker: marker}
		for _, f := range p.Files {
			if f.Hash != "" {
				l.Hashes = append(l.Hashes, f.Hash)
			}
		}
		if s := p.Source; s != nil && s.Type != "" && s.Type != "legacy" {
			switch s.Type {
			case "git":
				l.URL = "git+" + s.URL + "@" + firstNonEmpty(s.Resolved, s.Reference)
			case "url", "file":
				l.URL = s.URL
			default:
				return Locked{}, cnb.Failf("poetry.lock installs %s from a %s source (%s), which skiff does not install from a lock.", p.Name, s.Type, s.URL)
			}
		}
		return l, nil
	}
	var out []Locked
	if lock.Metadata.LockVersion >= "2.1" && len(lock.Package) > 0 && lock.Package[0].Groups != nil {
		for i, p := range lock.Package {
			if !contains(p.Groups, "main") {
				continue
			}
			marker := ""
			switch m := p.Markers.(type) {
			case string:
				marker = m
			case map[string]any:
				marker, _ = m["main"].(string)
			}
			l, err := locked(i, marker)
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		}
		return out, nil
	}
	// Older locks: the packages main's dependencies reach, each with the
	// markers of the edges that reach it.
	g := &graph{}
	for _, p := range lock.Package {
		for dep, spec := range p.Dependencies {
			for _, e := range poetryEdges(spec) {
				if !e.optional {
					g.add(normalize(p.Name), normalize(dep), e.marker, e.extras)
				}
			}
		}
		for extra, deps := range p.Extras {
			list, _ := deps.([]any)
			for _, d := range list {
				s, _ := d.(string)
				name := reqNameRE.FindString(strings.TrimSpace(s))
				if name != "" {
					g.addExtra(normalize(p.Name), extra, normalize(name))
				}
			}
		}
	}
	markers := g.reach(roots)
	for name, marker := range markers {
		i, ok := byName[name]
		if !ok {
			continue // python itself, or a dependency the lock leaves out
		}
		l, err := locked(i, marker)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

type poetryEdge struct {
	marker   string
	optional bool
	extras   []string
}

// poetryEdges reads a poetry.lock dependency: "constraint", a table, or a
// list of tables (one per marker).
func poetryEdges(spec any) []poetryEdge {
	switch s := spec.(type) {
	case string:
		return []poetryEdge{{}}
	case map[string]any:
		e := poetryEdge{}
		e.marker, _ = s["markers"].(string)
		e.optional, _ = s["optional"].(bool)
		if xs, ok := s["extras"].([]any); ok {
			for _, x := range xs {
				if x, ok := x.(string); ok {
					e.extras = append(e.extras, x)
				}
			}
		}
		return []poetryEdge{e}
	case []any:
		var out []poetryEdge
		for _, t := range s {
			out = append(out, poetryEdges(t)...)
		}
		return out
	}
	return nil
}

// uvLock is the part of uv.lock the buildpack reads.
type uvLock struct {
	Version int `toml:"version"`
	Package []struct {
		Name         string             `toml:"name"`
		Version      string             `toml:"version"`
		Source       map[string]any     `toml:"source"`
		Dependencies []uvDep            `toml:"dependencies"`
		Optional     map[string][]uvDep `toml:"optional-dependencies"`
		Sdist        *struct {
			Hash string `toml:"hash"`
		} `toml:"sdist"`
		Wheels []struct {
			Hash string `toml:"hash"`
		} `toml:"wheels"`
	} `toml:"package"`
}

type uvDep struct {
	Name    string   `toml:"name"`
	Marker  string   `toml:"marker"`
	Extra   []string `toml:"extra"`
	Version string   `toml:"version"`
}

// ParseUVLock returns the packages uv.lock resolves for the project's own
// dependencies, without its dependency groups (what `uv sync --locked
// --no-default-groups --no-install-project` installs).
func ParseUVLock(data []byte) ([]Locked, error) {
	pkgs, err := parseUVLock(data)
	return checkAll("uv.lock", pkgs, err)
}

func parseUVLock(data []byte) ([]Locked, error) {
	if len(data) > maxRequirements*8 {
		return nil, cnb.Failf("uv.lock is larger than %d KiB.", maxRequirements*8>>10)
	}
	var lock uvLock
	if err := cnb.DecodeTOML(data, &lock); err != nil {
		return nil, cnb.Failf("uv.lock is not valid TOML: %v.", err).Hint("Run uv lock and commit uv.lock.")
	}
	if lock.Version != 1 {
		return nil, cnb.Failf("uv.lock has version %d; skiff reads version 1.", lock.Version).Hint("Lock with a uv that writes version 1 of the format.")
	}
	g := &graph{}
	var roots []string
	key := func(name, version string) string {
		if version == "" {
			return normalize(name)
		}
		return normalize(name) + "==" + version
	}
	// A name resolved to several versions (forked resolutions) is told
	// apart by the version its edges name.
	versions := map[string]int{}
	for _, p := range lock.Package {
		versions[normalize(p.Name)]++
	}
	nodeOf := func(d uvDep) string {
		if versions[normalize(d.Name)] > 1 {
			return key(d.Name, d.Version)
		}
		return normalize(d.Name)
	}
	self := func(i int) string {
		p := lock.Package[i]
		if versions[normalize(p.Name)] > 1 {
			return key(p.Name, p.Version)
		}
		return normalize(p.Name)
	}
	type pkgInfo struct{ idx int }
	info := map[string]pkgInfo{}
	for i, p := range lock.Package {
		id := self(i)
		info[id] = pkgInfo{i}
		if _, local := p.Source["virtual"]; local {
			roots = append(roots, id)
		} else if e, ok := p.Source["editable"]; ok && e == "." {
			roots = append(roots, id)
		}
		for _, d := range p.Dependencies {
			g.add(id, nodeOf(d), d.Marker, d.Extra)
		}
		for extra, deps := range p.Optional {
			for _, d := range deps {
				g.extraEdge(id, extra, nodeOf(d), d.Marker, d.Extra)
			}
		}
	}
	if len(roots) == 0 {
		return nil, cnb.Failf("uv.lock has no project of the app's own (a package with source virtual or editable \".\").")
	}
	var out []Locked
	for id, marker := range g.reach(roots) {
		pi, ok := info[id]
		if !ok || contains(roots, id) {
			continue
		}
		p := lock.Package[pi.idx]
		l := Locked{Name: normalize(p.Name), Version: p.Version, Marker: marker}
		if p.Sdist != nil && p.Sdist.Hash != "" {
			l.Hashes = append(l.Hashes, p.Sdist.Hash)
		}
		for _, w := range p.Wheels {
			if w.Hash != "" {
				l.Hashes = append(l.Hashes, w.Hash)
			}
		}
		if u, ok := p.Source["git"].(string); ok {
			l.URL = "git+" + u
		} else if u, ok := p.Source["url"].(string); ok {
			l.URL = u
		} else if _, ok := p.Source["registry"]; !ok {
			return nil, cnb.Failf("uv.lock installs %s from a %v source, which skiff does not install from a lock.", p.Name, p.Source)
		}
		out = append(out, l)
	}
	return out, nil
}

// graph is a lock's dependency graph with the environment marker of each
// edge, and the extras each package offers.
type graph struct {
	edges  map[string][]edge
	extras map[string]map[string][]edge // package → extra → edges
}

type edge struct {
	to     string
	marker string
	extras []string
}

func (g *graph) add(from, to, marker string, extras []string) {
	if g.edges == nil {
		g.edges = map[string][]edge{}
	}
	g.edges[from] = append(g.edges[from], edge{to, marker, extras})
}

func (g *graph) addExtra(pkg, extra, to string) { g.extraEdge(pkg, extra, to, "", nil) }

func (g *graph) extraEdge(pkg, extra, to, marker string, extras []string) {
	if g.extras == nil {
		g.extras = map[string]map[string][]edge{}
	}
	if g.extras[pkg] == nil {
		g.extras[pkg] = map[string][]edge{}
	}
	for i, e := range g.extras[pkg][extra] {
		if e.to == to {
			if marker != "" || extras != nil {
				g.extras[pkg][extra][i] = edge{to, marker, extras}
			}
			return
		}
	}
	g.extras[pkg][extra] = append(g.extras[pkg][extra], edge{to, marker, extras})
}

// maxMarker caps the markers a package accumulates; past it the package is
// installed everywhere (a superset pip handles) rather than growing
// without end on a graph with many paths.
const maxMarker = 2000

// reach walks the graph from roots and returns every package reached with
// the marker under which it is needed: the "or" of its paths, each path the
// "and" of its edges; "" is always.
func (g *graph) reach(roots []string) map[string]string {
	needed := map[string]map[string]bool{} // package → set of path markers; "" = always
	type item struct {
		name, marker string
		extras       []string
	}
	var todo []item
	for _, r := range roots {
		todo = append(todo, item{name: r})
	}
	visited := map[string]bool{}
	for len(todo) > 0 && len(visited) < 200000 {
		it := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		extras := append([]string(nil), it.extras...)
		sort.Strings(extras)
		key := it.name + "\x00" + it.marker + "\x00" + strings.Join(extras, ",")
		if visited[key] || (it.marker != "" && needed[it.name][""] && len(extras) == 0) {
			continue
		}
		visited[key] = true
		set := needed[it.name]
		if set == nil {
			set = map[string]bool{}
			needed[it.name] = set
		}
		set[it.marker] = true
		out := append([]edge(nil), g.edges[it.name]...)
		for _, x := range it.extras {
			out = append(out, g.extras[it.name][x]...)
		}
		for _, e := range out {
			m := and(it.marker, e.marker)
			if len(m) > maxMarker {
				m = ""
			}
			todo = append(todo, item{name: e.to, marker: m, extras: e.extras})
		}
	}
	res := map[string]string{}
	for name, set := range needed {
		if set[""] {
			res[name] = ""
			continue
		}
		var ms []string
		for m := range set {
			ms = append(ms, "("+m+")")
		}
		sort.Strings(ms)
		s := strings.Join(ms, " or ")
		if len(ms) == 1 {
			s = strings.TrimSuffix(strings.TrimPrefix(s, "("), ")")
		}
		if len(s) > maxMarker {
			s = ""
		}
		res[name] = s
	}
	return res
}

func and(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "", a == b:
		return a
	}
	return fmt.Sprintf("(%s) and (%s)", a, b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

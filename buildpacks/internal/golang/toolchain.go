package golang

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/fetch"
)

// DefaultGOPROXY is used when the platform sets no GOPROXY.
const DefaultGOPROXY = "https://proxy.golang.org,direct"

// toolchainModule is the module the go command itself downloads toolchains
// from: golang.org/toolchain@v0.0.1-go<version>.<os>-<arch>.
const toolchainModule = "golang.org/toolchain"

const (
	resolveTTL    = 24 * time.Hour
	maxToolchain  = 1 << 30
	layoutVersion = "1" // metadata holds strings only: it round-trips through JSON
)

// proxyURL returns the first module proxy URL of a GOPROXY list.
func proxyURL(goproxy string) (string, error) {
	for _, p := range strings.FieldsFunc(goproxy, func(r rune) bool { return r == ',' || r == '|' }) {
		if strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://") {
			return strings.TrimRight(p, "/"), nil
		}
	}
	return "", cnb.Failf("GOPROXY=%q names no module proxy, and the Go toolchain is downloaded from one", goproxy).
		Hint("Set GOPROXY to a proxy URL (like %s) as a build-time config var.", DefaultGOPROXY)
}

// listToolchains returns the Go versions the proxy has for linux/arch.
func listToolchains(ctx context.Context, c *fetch.Client, proxy, arch string) ([]GoVersion, error) {
	body, err := c.Text(ctx, proxy+"/"+toolchainModule+"/@v/list", 4<<20)
	if err != nil {
		return nil, fmt.Errorf("list Go toolchains: %w", err)
	}
	suffix := ".linux-" + arch
	var vs []GoVersion
	for _, line := range strings.Fields(body) {
		s, ok := strings.CutPrefix(line, "v0.0.1-go")
		if !ok {
			continue
		}
		s, ok = strings.CutSuffix(s, suffix)
		if !ok {
			continue
		}
		if v, ok := ParseGoVersion(s); ok {
			vs = append(vs, v)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Compare(vs[j]) < 0 })
	return vs, nil
}

// Want is what the app asks for, and why.
type Want struct {
	Exact  GoVersion // a specific release, or zero
	Minor  int       // else the newest release of 1.Minor, or
	Newest bool      // else the newest release
	// Source is what asked, for the log: "go.mod: go 1.25",
	// "GOVERSION=1.24", "go.mod: // +heroku goVersion go1.24".
	Source string
	// Note says why the choice reads Source as it does, or "".
	Note string
	// Override is set when GOVERSION or the goVersion directive chose:
	// the go line still says what the module needs at least.
	Override bool
}

// Reason says, for the log, why v was chosen.
func (w Want) Reason(v GoVersion) string {
	var r string
	switch {
	case !w.Exact.IsZero():
		r = w.Source + " names this release"
	case w.Newest:
		r = "the newest release, for " + w.Source
	default:
		r = fmt.Sprintf("the newest 1.%d release, for %s", w.Minor, w.Source)
	}
	if w.Note != "" {
		r += "; " + w.Note
	}
	return "Using Go " + v.String() + " (" + r + ")"
}

// Choose turns go.mod's go and toolchain lines into what to install: the
// toolchain line when it is at least the go line (as the go command does),
// else the exact go version when it names a release or release candidate,
// else the newest patch of its 1.N. A go line from before Go chose
// toolchains by it (1.20 and older) is only the module's minimum language
// version, built by the newest Go.
func Choose(m *GoMod) Want {
	switch {
	case !m.Toolchain.IsZero() && (m.Go.IsZero() || m.Toolchain.Compare(m.Go) >= 0):
		return Want{Exact: m.Toolchain, Source: "go.mod: toolchain go" + m.Toolchain.String()}
	case m.Go.IsZero():
		return Want{Newest: true, Source: "go.mod, which has no go line"}
	case m.Go.Minor < 21:
		return Want{Newest: true, Source: "go.mod: go " + m.Go.String(),
			Note: "a go line older than 1.21 is the module's minimum language version, not a toolchain; " +
				"set GOVERSION or // +heroku goVersion go1." + strconv.Itoa(m.Go.Minor) + " to build with that Go"}
	case m.Go.Parts == 3 || m.Go.Pre != "":
		return Want{Exact: m.Go, Source: "go.mod: go " + m.Go.String()}
	}
	return Want{Minor: m.Go.Minor, Source: "go.mod: go " + m.Go.String()}
}

// ChooseFor is Choose with Heroku's overrides, first the GOVERSION
// build-time config var, then go.mod's "// +heroku goVersion" directive:
// "go1.25" or "1.25" is the newest 1.25 release, "go1.25.4" (or "=1.25.4")
// that release.
func ChooseFor(m *GoMod, goversion string) (Want, error) {
	src, s := "", ""
	switch {
	case goversion != "":
		src, s = "GOVERSION="+goversion, goversion
	case m.HerokuGoVersion != "":
		src, s = "go.mod: // +heroku goVersion "+m.HerokuGoVersion, m.HerokuGoVersion
	default:
		return Choose(m), nil
	}
	exact := strings.HasPrefix(s, "=")
	v, ok := ParseGoVersion(strings.TrimPrefix(strings.TrimPrefix(s, "="), "go"))
	if !ok {
		return Want{}, cnb.Failf("%s is not a Go version.", src).
			Hint("Use go1.25 for the newest 1.25 release, or go1.25.4 for that release.")
	}
	if exact || v.Parts == 3 || v.Pre != "" {
		return Want{Exact: v, Source: src, Override: true}, nil
	}
	return Want{Minor: v.Minor, Source: src, Override: true}, nil
}

// CheckModule fails when an override picked a Go older than the module's
// go line, which that Go refuses to build.
func (w Want) CheckModule(m *GoMod, v GoVersion) error {
	if w.Override && !m.Go.IsZero() && v.Compare(m.Go) < 0 {
		return cnb.Failf("%s picks Go %s, but go.mod says go %s, which needs a newer Go.", w.Source, v, m.Go).
			Hint("Ask for Go %s or newer, or lower the go line of go.mod.", m.Go)
	}
	return nil
}

// describeAvailable lists, for an error, the newest release of the last
// few Go lines the proxy has, and how far back it goes.
func describeAvailable(available []GoVersion) string {
	newest := map[int]GoVersion{}
	var minors []int
	for _, v := range available {
		if !v.IsRelease() {
			continue
		}
		if old, ok := newest[v.Minor]; !ok {
			minors = append(minors, v.Minor)
			newest[v.Minor] = v
		} else if v.Compare(old) > 0 {
			newest[v.Minor] = v
		}
	}
	if len(minors) == 0 {
		return "no Go releases"
	}
	sort.Ints(minors)
	var shown []string
	for _, m := range minors[max(0, len(minors)-6):] {
		shown = append(shown, newest[m].String())
	}
	s := "Go " + strings.Join(shown, ", ")
	if len(minors) > 6 {
		s += fmt.Sprintf(" (and older lines back to 1.%d)", minors[0])
	}
	return s
}

// pick finds the version to install among the available ones.
func (w Want) pick(available []GoVersion) (GoVersion, bool) {
	var best GoVersion
	found := false
	for _, v := range available {
		switch {
		case !w.Exact.IsZero():
			if v.Compare(w.Exact) == 0 {
				return v, true
			}
			continue
		case !v.IsRelease():
			continue
		case w.Newest, v.Minor == w.Minor:
		default:
			continue
		}
		if !found || v.Compare(best) > 0 {
			best, found = v, true
		}
	}
	return best, found
}

// zipName is the module version of the toolchain zip.
func zipVersion(v GoVersion, arch string) string {
	return "v0.0.1-go" + v.String() + ".linux-" + arch
}

// downloadToolchain fetches and verifies the toolchain zip into a temporary
// file under dir and extracts it into dst.
func downloadToolchain(bc *cnb.BuildContext, c *fetch.Client, proxy string, v GoVersion, arch, dir, dst string) error {
	ctx := bc.Context
	mv := zipVersion(v, arch)
	zipPath, err := c.File(ctx, proxy+"/"+toolchainModule+"/@v/"+mv+".zip", dir, maxToolchain, "")
	if err != nil {
		return err
	}
	defer os.Remove(zipPath)
	if err := verifyToolchain(bc, c, proxy, mv, zipPath); err != nil {
		return err
	}
	prefix := toolchainModule + "@" + mv + "/"
	// Module zips keep no modes; the go command marks these executable when
	// it switches toolchains, and so does this.
	exec := func(name string) bool {
		return strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "pkg/tool/")
	}
	return fetch.ExtractZip(zipPath, dst, prefix, exec)
}

// verifyToolchain checks the zip against the hash the Go checksum database
// records for it, fetched through the proxy as the go command does. As with
// the go command, GOSUMDB=off, or GONOSUMDB/GOPRIVATE covering
// golang.org/toolchain, skip the check. The database's signature is not
// checked here: the hash comes over TLS from the configured proxy.
func verifyToolchain(bc *cnb.BuildContext, c *fetch.Client, proxy, mv, zipPath string) error {
	if sumdbSkipped(bc.Env) {
		bc.Log.Detail("Not verifying the toolchain (GOSUMDB/GONOSUMDB)")
		return nil
	}
	want, err := sumdbHash(bc.Context, c, proxy, mv)
	if err != nil {
		return cnb.Failf("cannot verify the Go toolchain against the checksum database: %v", err).
			Hint("If your module proxy does not serve it, set GONOSUMDB=golang.org/toolchain (or GOSUMDB=off) as a build-time config var.")
	}
	got, err := zipHash1(zipPath)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("toolchain %s: checksum mismatch: downloaded %s, checksum database has %s", mv, got, want)
	}
	bc.Log.Detail("Verified against the checksum database")
	return nil
}

func sumdbSkipped(env cnb.Env) bool {
	if env.Get("GOSUMDB") == "off" {
		return true
	}
	for _, v := range []string{"GONOSUMDB", "GOPRIVATE"} {
		for _, pat := range strings.Split(env.Get(v), ",") {
			pat = strings.TrimSpace(pat)
			if pat == "" {
				continue
			}
			if matchPathPrefix(pat, toolchainModule) {
				return true
			}
		}
	}
	return false
}

// matchPathPrefix matches a GOPRIVATE-style glob against the leading path
// elements of a module path, as the go command does ("golang.org" and
// "*.org" both cover golang.org/toolchain).
func matchPathPrefix(pat, modpath string) bool {
	pat = strings.TrimSuffix(pat, "/")
	n := strings.Count(pat, "/") + 1
	parts := strings.Split(modpath, "/")
	if len(parts) < n {
		return false
	}
	ok, _ := path.Match(pat, strings.Join(parts[:n], "/"))
	return ok
}

// sumdbHash looks the zip's h1: hash up in sum.golang.org through the
// proxy's /sumdb/ endpoint.
func sumdbHash(ctx context.Context, c *fetch.Client, proxy, mv string) (string, error) {
	body, err := c.Text(ctx, proxy+"/sumdb/sum.golang.org/lookup/"+toolchainModule+"@"+mv, 1<<20)
	if err != nil {
		return "", err
	}
	prefix := toolchainModule + " " + mv + " "
	for _, line := range strings.Split(body, "\n") {
		if h, ok := strings.CutPrefix(line, prefix); ok && strings.HasPrefix(h, "h1:") {
			return strings.TrimSpace(h), nil
		}
	}
	return "", errors.New("the lookup has no hash for the toolchain")
}

// zipHash1 computes the go command's "h1:" hash of a module zip: SHA-256
// over sorted lines of "<sha256 hex>  <file name>\n".
func zipHash1(path string) (string, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = zr.Close() }()
	files := append([]*zip.File(nil), zr.File...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	summary := sha256.New()
	for _, f := range files {
		if strings.Contains(f.Name, "\n") {
			return "", fmt.Errorf("zip entry name with a newline")
		}
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return "", err
		}
		h := sha256.New()
		_, err = io.Copy(h, rc) //nolint:gosec // G110: inside the build's sandbox, under its time, memory and disk limits
		rc.Close()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(summary, "%x  %s\n", h.Sum(nil), f.Name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(summary.Sum(nil)), nil
}

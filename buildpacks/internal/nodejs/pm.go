package nodejs

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
	"github.com/skiffhq/skiff/buildpacks/internal/semver"
)

// managerRequest is the package manager an app asks for: by its
// packageManager field (corepack's), by its lockfile, or npm by default.
type managerRequest struct {
	Name     string // "npm", "yarn" or "pnpm"
	Range    string // an exact version (packageManager), a range, or "" for npm's default
	Hash     string // packageManager's "+sha512.<hex>" suffix: "sha512.<hex>", or ""
	Source   string // what asked, for the log
	Lockfile string // the lockfile, "" when there is none
	// Line is the range of versions that read the lockfile, when engines
	// narrows the version within it; "" otherwise.
	Line string
}

// lockfiles maps each lockfile to its package manager, in the order they
// are looked for.
var lockfiles = []struct{ file, manager string }{
	{"npm-shrinkwrap.json", "npm"},
	{"package-lock.json", "npm"},
	{"yarn.lock", "yarn"},
	{"pnpm-lock.yaml", "pnpm"},
}

// packageManagerRE is corepack's packageManager: name@exact-version with an
// optional +<algorithm>.<hex digest>.
var packageManagerRE = regexp.MustCompile(`^(npm|yarn|pnpm)@([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?)(?:\+((?:sha1|sha224|sha256|sha384|sha512)\.[0-9a-f]+))?$`)

// chooseManager reads which package manager installs the app's
// dependencies, and at which version, as corepack and Heroku do: the
// packageManager field pins it; else the lockfile names it (yarn.lock says
// whether Yarn 1 or a later Yarn wrote it, pnpm-lock.yaml which pnpm), with
// engines.yarn or engines.pnpm narrowing the version; else npm.
func chooseManager(app string, pj *PackageJSON) (*managerRequest, error) {
	var found []string
	byManager := map[string]string{}
	for _, l := range lockfiles {
		if fi, err := os.Stat(app + "/" + l.file); err == nil && fi.Mode().IsRegular() {
			if _, dup := byManager[l.manager]; dup {
				continue // npm-shrinkwrap.json wins over package-lock.json, as in npm
			}
			byManager[l.manager] = l.file
			found = append(found, l.file)
		}
	}
	if len(found) > 1 {
		return nil, cnb.Failf("The app has %s: lockfiles of different package managers, so which installs the dependencies is ambiguous.", strings.Join(found, " and ")).
			Hint("Delete the lockfile of the manager you do not use, commit and push again.")
	}
	req := &managerRequest{Name: "npm", Source: "the default"}
	if len(found) == 1 {
		for m, f := range byManager {
			req.Name, req.Lockfile, req.Source = m, f, f
		}
	}
	if pm := strings.TrimSpace(pj.PackageManager); pm != "" {
		m := packageManagerRE.FindStringSubmatch(pm)
		if m == nil {
			name, _, _ := strings.Cut(pm, "@")
			if name != "npm" && name != "yarn" && name != "pnpm" {
				return nil, cnb.Failf("package.json's packageManager %q names a package manager skiff does not install; it installs with npm, yarn and pnpm.", pm).
					Hint(`Use one of them, like "packageManager": "pnpm@10.12.1", or remove the field to install with npm.`)
			}
			return nil, cnb.Failf("package.json's packageManager %q is not name@version with an exact version.", pm).
				Hint(`Pin the version, like "packageManager": "%s@1.2.3" (corepack use %s@latest writes it).`, name, name)
		}
		if req.Lockfile != "" && m[1] != req.Name {
			return nil, cnb.Failf("package.json's packageManager says %s, but the lockfile is %s, which %s writes.", m[1], req.Lockfile, req.Name).
				Hint("Install with %s and commit its lockfile, or fix packageManager.", m[1])
		}
		req.Name, req.Range, req.Hash = m[1], m[2], m[3]
		req.Source = fmt.Sprintf("packageManager %q", pm)
		return req, nil
	}
	switch req.Name {
	case "npm":
		req.Range = pj.NPMRange
		if pj.NPMRange != "" {
			req.Source = "engines.npm"
		}
	case "yarn":
		v, err := yarnLockVersion(app + "/yarn.lock")
		if err != nil {
			return nil, err
		}
		req.Range, req.Source = yarnRange(v), fmt.Sprintf("yarn.lock (%s)", yarnLockDescription(v))
		if pj.Engines["yarn"] != "" {
			req.Line = req.Range
			req.Range, req.Source = pj.Engines["yarn"], "engines.yarn, within "+req.Source
		}
	case "pnpm":
		v, err := pnpmLockVersion(app + "/pnpm-lock.yaml")
		if err != nil {
			return nil, err
		}
		req.Range, req.Source = pnpmRange(v), fmt.Sprintf("pnpm-lock.yaml (lockfileVersion %s)", v)
		if pj.Engines["pnpm"] != "" {
			req.Line = req.Range
			req.Range, req.Source = pj.Engines["pnpm"], "engines.pnpm, within "+req.Source
		}
	}
	if req.Range != "" {
		if _, err := semver.ParseRange(req.Range); err != nil {
			return nil, cnb.Failf("%s: %v.", req.Source, err)
		}
	}
	return req, nil
}

// yarnLockVersion returns 1 for a Yarn 1 lockfile ("# yarn lockfile v1"),
// else the __metadata version of a lockfile Yarn 2 or later wrote.
func yarnLockVersion(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inMeta := false
	for n := 0; sc.Scan() && n < 50; n++ {
		line := sc.Text()
		if strings.Contains(line, "yarn lockfile v1") {
			return 1, nil
		}
		if strings.HasPrefix(line, "__metadata:") {
			inMeta = true
			continue
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "version:"); ok && inMeta {
			if n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(v), `"'`)); err == nil {
				return n, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, cnb.Failf("yarn.lock is neither a Yarn 1 lockfile nor one with a __metadata version.").
		Hint(`Run yarn install and commit yarn.lock, or set "packageManager" in package.json.`)
}

// yarnRange maps a lockfile version to the Yarn that writes it: v1 is
// Yarn 1, __metadata versions 4 and 5 Yarn 2, 6 and 7 Yarn 3, 8 on Yarn 4.
func yarnRange(v int) string {
	switch {
	case v == 1:
		return "1.x"
	case v < 6:
		return "2.x"
	case v < 8:
		return "3.x"
	}
	return "4.x"
}

func yarnLockDescription(v int) string {
	if v == 1 {
		return "Yarn 1"
	}
	return fmt.Sprintf("lockfile version %d", v)
}

// pnpmLockVersion returns the lockfileVersion of pnpm-lock.yaml.
func pnpmLockVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 20; n++ {
		if v, ok := strings.CutPrefix(sc.Text(), "lockfileVersion:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`), nil
		}
	}
	return "", cnb.Failf("pnpm-lock.yaml has no lockfileVersion.").Hint("Run pnpm install and commit pnpm-lock.yaml.")
}

// pnpmRange maps a lockfileVersion to the pnpm lines that read it.
func pnpmRange(v string) string {
	major, _, _ := strings.Cut(v, ".")
	switch major {
	case "9":
		return "9.x || 10.x"
	case "6":
		return "8.x"
	case "5":
		if v == "5.4" {
			return "7.x"
		}
		return "6.x"
	}
	return "10.x"
}

package buildpacks

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNodeApp(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Node.js from the npm registry")
	}
	p := newPlatform(t, "nodejs")
	p.mustBuild(false)
	out := p.out.String()
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/nodejs"}) {
		t.Fatalf("group %v", got)
	}
	for _, want := range []string{
		"-----> Node.js app detected\n",
		"-----> Installing Node.js\n       Resolving 24.x (engines.node)\n       Downloading Node.js 24.",
		"-----> Installing dependencies (npm)\n       Running npm ci --include=dev (package-lock.json)\n",
		"-----> Running build (npm run build)\n",
		"-----> Pruning devDependencies (npm prune --omit=dev)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The toolchain builds; its launch twin and node_modules are launch
	// layers only, which the next build reuses from this image unrestored.
	tc, _ := p.layer("skiff/nodejs", "toolchain")
	if tc.Types != (layerTypes{Build: true, Cache: true}) || !strings.HasPrefix(tc.Metadata["node"].(string), "24.") {
		t.Errorf("toolchain layer %+v", tc)
	}
	node, _ := p.layer("skiff/nodejs", "node")
	if node.Types != (layerTypes{Launch: true}) || node.Metadata["node"] != tc.Metadata["node"] || node.Metadata["resolved"] != nil {
		t.Errorf("node layer %+v", node)
	}
	if m, _ := p.layer("skiff/nodejs", "modules"); m.Types != (layerTypes{Launch: true}) || m.Metadata["key"] == "" || m.Metadata["pruned"] != "true" {
		t.Errorf("modules layer %+v", m)
	}
	if m, _ := p.layer("skiff/nodejs", "modules-build"); m.Types != (layerTypes{Cache: true}) || m.Metadata["key"] == "" {
		t.Errorf("modules-build layer %+v", m)
	}
	if c, _ := p.layer("skiff/nodejs", "npm-cache"); c.Types.Launch || !c.Types.Cache {
		t.Errorf("npm-cache layer %+v", c)
	}
	link, err := os.Readlink(filepath.Join(p.app, "node_modules"))
	if err != nil || link != filepath.Join(p.layers, "skiff_nodejs", "modules", "node_modules") {
		t.Errorf("node_modules -> %q, %v", link, err)
	}
	built, err := os.ReadFile(filepath.Join(p.app, "build-output.txt"))
	if err != nil || !strings.Contains(string(built), "NODE_ENV=production, ms(90000)=2m") {
		t.Errorf("build script output %q, %v", built, err)
	}
	if web := p.processes["web"]; !slices.Equal(web.Command, []string{"npm", "start"}) || !web.Default {
		t.Errorf("web process %+v", web)
	}
	checkGet(t, p.start("web")+"/", 200, "(production); ms: 1m; built with node v24.")

	// A one-line change: nothing is downloaded or installed again.
	server := filepath.Join(p.app, "server.js")
	src, _ := os.ReadFile(server)
	p.setApp("nodejs")
	must(t, os.WriteFile(server, []byte(strings.Replace(string(src), "hello from node", "hello again from node", 1)), 0o644))
	p.mustBuild(true)
	out = p.out.String()
	for _, want := range []string{"Using cached Node.js 24.", "Restoring node_modules from the cache (package-lock.json unchanged)", "Running build (npm run build)",
		"Reusing the previous image's node_modules (package-lock.json unchanged)"} {
		if !strings.Contains(out, want) {
			t.Errorf("rebuild output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Downloading") || strings.Contains(out, "npm ci") || strings.Contains(out, "Pruning") {
		t.Errorf("rebuild downloaded, installed or pruned again:\n%s", out)
	}
	if !slices.Contains(p.reused, "skiff_nodejs/node") || !slices.Contains(p.reused, "skiff_nodejs/modules") {
		t.Errorf("the rebuild exported again what it could reuse: reused %v, exported %v", p.reused, p.exported)
	}
	checkGet(t, p.start("web")+"/", 200, "hello again from node v24.")

	// A new version in package.json changes nothing an install reads.
	pjPath := filepath.Join(p.app, "package.json")
	pj, _ := os.ReadFile(pjPath)
	p.setApp("nodejs")
	must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"version": "1.0.0"`, `"version": "1.0.1"`, 1)), 0o644))
	p.mustBuild(true)
	if out := p.out.String(); strings.Contains(out, "npm ci") || !strings.Contains(out, "Reusing the previous image's node_modules") {
		t.Errorf("a version bump installed again:\n%s", out)
	}

	// An install script it does read installs again (from the npm cache).
	p.setApp("nodejs")
	must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"build": "node build.js",`, `"build": "node build.js", "postinstall": "node -e 1",`, 1)), 0o644))
	p.mustBuild(true)
	if out := p.out.String(); !strings.Contains(out, "Running npm ci --include=dev (package-lock.json)") || !strings.Contains(out, "added 1 package") || !strings.Contains(out, "Pruning devDependencies") {
		t.Errorf("package.json's install fields changed but no install:\n%s", out)
	}
	if !slices.Contains(p.exported, "skiff_nodejs/modules") {
		t.Errorf("a new node_modules was not exported: %v", p.exported)
	}

	// Without a build script nothing at build time needs node_modules:
	// neither installed nor restored, the image keeps the previous one.
	p.setApp("nodejs")
	must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"build": "node build.js",`, `"postinstall": "node -e 1",`, 1)), 0o644))
	p.mustBuild(true)
	if out := p.out.String(); strings.Contains(out, "npm ci") || strings.Contains(out, "Restoring node_modules") || !strings.Contains(out, "Reusing the previous image's node_modules") {
		t.Errorf("a build without a build script installed or restored node_modules:\n%s", out)
	}
	if !slices.Contains(p.reused, "skiff_nodejs/modules") {
		t.Errorf("node_modules was exported again: %v", p.exported)
	}

	// A package.json out of step with its lockfile fails with npm's reason.
	p.setApp("nodejs")
	must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"ms": "2.1.3"`, `"ms": "2.1.2"`, 1)), 0o644))
	if p.rebuild() {
		t.Fatalf("npm ci accepted a package.json out of sync with its lockfile:\n%s", p.out.String())
	}
	if out := p.out.String(); !strings.Contains(out, " !     npm ci --include=dev failed (exit status 1); the npm output above says why.") {
		t.Errorf("output:\n%s", out)
	}
}

func TestNodeMissingStart(t *testing.T) {
	p := newPlatform(t, "nodejs-no-start")
	if p.build() {
		t.Fatalf("an app with nothing to start built:\n%s", p.out.String())
	}
	out := p.out.String()
	if !strings.Contains(out, ` !     missing npm start: package.json has no "start" script and there is no server.js.`) {
		t.Errorf("output:\n%s", out)
	}
	if strings.Contains(out, "Downloading") {
		t.Errorf("failed only after downloading:\n%s", out)
	}
}

func TestNodeProcfileInsteadOfStart(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Node.js from the npm registry")
	}
	p := newPlatform(t, "nodejs-no-start")
	must(t, os.WriteFile(filepath.Join(p.app, "Procfile"), []byte("web: node index.js && exec sleep 1000\n"), 0o644))
	p.mustBuild(false)
	if got := p.groupIDs(); !slices.Equal(got, []string{"skiff/nodejs", "skiff/procfile"}) {
		t.Fatalf("group %v", got)
	}
	if web := p.processes["web"]; web.Buildpack != "skiff/procfile" {
		t.Errorf("web %+v", web)
	}
	if !strings.Contains(p.out.String(), "package.json has no engines.node; using 24.x") {
		t.Errorf("output:\n%s", p.out.String())
	}
}

// Each package manager installs from its own lockfile, at the version
// packageManager or the lockfile pins, fetched from the npm registry and
// verified; devDependencies are there for the build and pruned for launch,
// unless the app opts out.
func TestNodePackageManagers(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Node.js and package managers from the npm registry")
	}
	for _, tc := range []struct {
		app, optOut string
		wants       []string
		agent       string
	}{
		{"node-npm", "NPM_CONFIG_PRODUCTION", []string{"Running npm ci --include=dev (package-lock.json)", "Pruning devDependencies (npm prune --omit=dev)"}, "npm/"},
		{"node-yarn1", "YARN_PRODUCTION", []string{"-----> Installing yarn (yarn.lock (Yarn 1))", "Downloading yarn 1.22.", "(yarn)\n", "Verified against the registry's integrity digest\n",
			"Running yarn install --non-interactive --prefer-offline --production=false --frozen-lockfile (yarn.lock)", "Pruning devDependencies (yarn install --production=true"}, "yarn/1.22."},
		{"node-berry", "", []string{`-----> Installing yarn (packageManager "yarn@4.9.2+sha512.`, "Downloading yarn 4.9.2 (@yarnpkg/cli-dist)", "Verified against the registry's integrity digest and packageManager's sha512 hash",
			"Running yarn install --immutable (yarn.lock)", "Pruning devDependencies (yarn workspaces focus --all --production)"}, "yarn/4.9.2"},
		{"node-pnpm", "", []string{`-----> Installing pnpm (packageManager "pnpm@10.12.1+sha512.`, "Downloading pnpm 10.12.1 (pnpm)", "and packageManager's sha512 hash",
			"Running pnpm install --frozen-lockfile (pnpm-lock.yaml)", "Pruning devDependencies (pnpm prune --prod)"}, "pnpm/10.12.1"},
	} {
		t.Run(tc.app, func(t *testing.T) {
			p := newPlatform(t, "pushed/"+tc.app)
			p.mustBuild(false)
			out := p.out.String()
			for _, w := range tc.wants {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			checkGet(t, p.start("web")+"/", 200, "hello from "+tc.agent)
			checkGet(t, p.start("web")+"/", 200, "left-pad pruned; ..built by "+tc.agent)
			if tc.optOut == "" {
				return
			}
			p.env[tc.optOut] = "false"
			p.mustBuild(true)
			if out := p.out.String(); strings.Contains(out, "Pruning devDependencies") {
				t.Errorf("%s=false pruned:\n%s", tc.optOut, out)
			}
			checkGet(t, p.start("web")+"/", 200, "left-pad present")
		})
	}
}

// yarn1Pin is packageManager as corepack writes it for Yarn 1.22.22 (the
// sha512 of the npm registry's tarball), as apps in public repositories
// carry it.
const yarn1Pin = "yarn@1.22.22+sha512.a6b2f7906b721bba3d67d4aff083df04dad64c399707841b7acf00f6b133b7ac24255f2652fa22ae3534329dc6180534e98d17432037ff6fd140556e2bb3137e"

// Yarn 1 at the version packageManager pins, checked against corepack's
// hash; a hash that is not the pinned version's fails the build and says
// so (the pin below, 1.22.21 with 1.22.22's hash, is in public code).
func TestNodeYarn1PackageManager(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Node.js and yarn from the npm registry")
	}
	p := newPlatform(t, "pushed/node-yarn1")
	pin := func(pm string) {
		pjPath := filepath.Join(p.app, "package.json")
		pj, err := os.ReadFile(pjPath)
		must(t, err)
		must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"private": true,`, `"private": true, "packageManager": "`+pm+`",`, 1)), 0o644))
	}
	pin(yarn1Pin)
	p.mustBuild(false)
	out := p.out.String()
	for _, w := range []string{`-----> Installing yarn (packageManager "yarn@1.22.22+sha512.a6b2f79`, "Downloading yarn 1.22.22 (yarn)",
		"Verified against the registry's integrity digest and packageManager's sha512 hash", "Running yarn install --non-interactive"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	checkGet(t, p.start("web")+"/", 200, "hello from yarn/1.22.22")

	p.setApp("pushed/node-yarn1")
	pin(strings.Replace(yarn1Pin, "1.22.22", "1.22.21", 1))
	if p.rebuild() {
		t.Fatalf("a packageManager hash of another version was accepted:\n%s", p.out.String())
	}
	if out := p.out.String(); !strings.Contains(out, " !     yarn 1.22.21 from the npm registry does not match the hash in package.json's packageManager (sha512.a6b2f79") ||
		!strings.Contains(out, "corepack use <manager>@<version>") {
		t.Errorf("output:\n%s", out)
	}
}

// A front-end app whose build leaves a static site and that has nothing to
// start is served by the static web server, with its client-side routes
// answered by index.html unless SKIFF_STATIC_FALLBACK=off.
func TestNodeStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Node.js and Vite from the npm registry")
	}
	p := newPlatform(t, "pushed/vite-spa")
	p.mustBuild(false)
	out := p.out.String()
	for _, w := range []string{"-----> Running build (npm run build)", "-----> Serving dist/ with the static web server\n       No start script: dist/ (the build's output) is the site\n",
		"Paths without a file get dist/index.html, for the app's client-side routes (SKIFF_STATIC_FALLBACK=off turns that off)"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, name := range []string{"node", "modules", "pm"} {
		if _, ok := p.layer("skiff/nodejs", name); ok {
			t.Errorf("a static site's image has the %s layer", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(p.app, "node_modules")); err == nil {
		t.Error("node_modules is left in the app")
	}
	url := p.start("web")
	checkGet(t, url+"/", 200, "vite spa shell")
	checkGet(t, url+"/dashboard/42", 200, "vite spa shell")
	resp, err := http.Get(url + "/assets/missing.js")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a missing asset: %d", resp.StatusCode)
	}

	p.env["SKIFF_STATIC_FALLBACK"] = "off"
	p.mustBuild(true)
	resp, err = http.Get(p.start("web") + "/dashboard/42")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("SKIFF_STATIC_FALLBACK=off: a route got %d", resp.StatusCode)
	}
}

package buildpacks

import (
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
		"-----> Installing dependencies\n       Running npm ci (package-lock.json)\n",
		"-----> Running build (npm run build)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	node, _ := p.layer("skiff/nodejs", "node")
	if !node.Types.Launch || !node.Types.Build || !node.Types.Cache || !strings.HasPrefix(node.Metadata["node"].(string), "24.") {
		t.Errorf("node layer %+v", node)
	}
	if m, _ := p.layer("skiff/nodejs", "modules"); !m.Types.Launch || !m.Types.Cache || m.Metadata["key"] == "" {
		t.Errorf("modules layer %+v", m)
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
	for _, want := range []string{"Using cached Node.js 24.", "Reusing node_modules (package-lock.json unchanged)", "Running build (npm run build)"} {
		if !strings.Contains(out, want) {
			t.Errorf("rebuild output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Downloading") || strings.Contains(out, "npm ci") {
		t.Errorf("rebuild downloaded or installed again:\n%s", out)
	}
	checkGet(t, p.start("web")+"/", 200, "hello again from node v24.")

	// A changed package.json installs again (from the npm cache).
	pjPath := filepath.Join(p.app, "package.json")
	pj, _ := os.ReadFile(pjPath)
	p.setApp("nodejs")
	must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"version": "1.0.0"`, `"version": "1.0.1"`, 1)), 0o644))
	p.mustBuild(true)
	if out := p.out.String(); !strings.Contains(out, "Running npm ci (package-lock.json)") || !strings.Contains(out, "added 1 package") {
		t.Errorf("package.json changed but no install:\n%s", out)
	}

	// A package.json out of step with its lockfile fails with npm's reason.
	p.setApp("nodejs")
	must(t, os.WriteFile(pjPath, []byte(strings.Replace(string(pj), `"ms": "2.1.3"`, `"ms": "2.1.2"`, 1)), 0o644))
	if p.rebuild() {
		t.Fatalf("npm ci accepted a package.json out of sync with its lockfile:\n%s", p.out.String())
	}
	if out := p.out.String(); !strings.Contains(out, " !     npm ci failed (exit status 1); the npm output above says why") {
		t.Errorf("output:\n%s", out)
	}
}

func TestNodeMissingStart(t *testing.T) {
	p := newPlatform(t, "nodejs-no-start")
	if p.build() {
		t.Fatalf("an app with nothing to start built:\n%s", p.out.String())
	}
	out := p.out.String()
	if !strings.Contains(out, ` !     missing npm start: package.json has no "start" script and there is no server.js`) {
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

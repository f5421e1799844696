// Command synth is the whole of the synthetic test builder: bin/detect and
// bin/build of a CNB buildpack (by the name it is run as), and the app
// process the buildpack installs. The app's synth.txt says what to do:
//
//	ok <version>        build a launch layer, and a cached "deps" layer
//	fail                exit 1 from bin/build, like a compile error
//	sleep               never finish
//	forkbomb            spawn processes without end
//	connect <host:port> print whether a TCP connection works
//	spam                print 64 MiB without a newline
//	fill <MiB>          write that much to /tmp, then sleep
//	taint               change the cached "deps" layer, then fail
//	hostile-cache <dir> <file>  a cached layer that is a symlink to dir, a toml one to file
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "detect":
		if _, err := os.Stat("synth.txt"); err != nil {
			os.Exit(100)
		}
		os.Exit(0)
	case "build":
		build()
	case "forkbomb-child":
		forkbomb()
	default:
		fmt.Println("synth app running")
	}
}

func build() {
	b, err := os.ReadFile("synth.txt")
	if err != nil {
		fail("read synth.txt: %v", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		fail("empty synth.txt")
	}
	layers := os.Getenv("CNB_LAYERS_DIR")
	if layers == "" && len(os.Args) > 1 {
		layers = os.Args[1]
	}
	fmt.Println("-----> synth buildpack")
	fmt.Printf("       mode %s, running as uid %d\n", f[0], os.Getuid())
	if v := os.Getenv("SYNTH_VAR"); v != "" {
		fmt.Printf("       SYNTH_VAR from platform env: %s\n", v)
	}
	if b, err := os.ReadFile(filepath.Join(os.Getenv("CNB_PLATFORM_DIR"), "env", "SYNTH_VAR")); err == nil {
		fmt.Printf("       platform/env/SYNTH_VAR=%s\n", b)
	}
	switch f[0] {
	case "fail":
		fmt.Println("main.go:3: syntax error: unexpected newline")
		os.Exit(1)
	case "sleep":
		time.Sleep(24 * time.Hour)
	case "forkbomb":
		forkbomb()
	case "connect":
		c, err := net.DialTimeout("tcp", f[1], 3*time.Second)
		if err != nil {
			fmt.Printf("       connect %s: failed: %v\n", f[1], err)
		} else {
			c.Close()
			fmt.Printf("       connect %s: ok\n", f[1])
		}
		layer(layers, "app", "launch = true", "version = \"0\"")
		launch(layers)
	case "fill":
		n, _ := strconv.Atoi(f[1])
		w, err := os.Create("/tmp/fill")
		must(err)
		buf := make([]byte, 1<<20)
		for i := 0; i < n; i++ {
			if _, err := w.Write(buf); err != nil {
				fail("fill: %v", err)
			}
		}
		w.Sync()
		fmt.Printf("       wrote %d MiB\n", n)
		time.Sleep(time.Hour)
	case "spam":
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = 'x'
		}
		for range 64 {
			os.Stdout.Write(buf)
		}
		fmt.Println()
		os.Exit(1)
	case "taint":
		// Change the cached layer, then fail: the cache must not keep it.
		must(os.WriteFile(filepath.Join(layers, "deps", "installed"), []byte("tainted"), 0o644))
		fail("tainted the cache, then failed")
	case "hostile-cache":
		// A cached layer that is a symlink out of the layers directory,
		// and a layer whose toml is one: the platform must follow neither.
		must(os.Symlink(f[1], filepath.Join(layers, "deps")))
		must(os.WriteFile(filepath.Join(layers, "deps.toml"), []byte("[types]\ncache = true\n"), 0o644))
		must(os.MkdirAll(filepath.Join(layers, "toml"), 0o755))
		must(os.Symlink(f[2], filepath.Join(layers, "toml.toml")))
		layer(layers, "app", "launch = true", `version = "0"`)
		launch(layers)
	case "ok":
		version := "0"
		if len(f) > 1 {
			version = f[1]
		}
		deps := filepath.Join(layers, "deps")
		if b, err := os.ReadFile(deps + ".toml"); err == nil {
			fmt.Printf("       deps.toml: %q\n", b)
		}
		if old, err := os.ReadFile(filepath.Join(deps, "installed")); err == nil && string(old) == "deps-1" {
			fmt.Println("       deps: reused from cache")
		} else {
			fmt.Println("       deps: installed")
			must(os.MkdirAll(deps, 0o755))
			must(os.WriteFile(filepath.Join(deps, "installed"), []byte("deps-1"), 0o644))
		}
		layer(layers, "deps", "launch = true\ncache = true", `key = "deps-1"`)
		app := filepath.Join(layers, "app")
		must(os.RemoveAll(app))
		must(os.MkdirAll(filepath.Join(app, "bin"), 0o755))
		self, err := os.ReadFile("/proc/self/exe")
		must(err)
		must(os.WriteFile(filepath.Join(app, "bin", "server"), self, 0o755))
		must(os.WriteFile(filepath.Join(app, "version"), []byte(version), 0o644))
		layer(layers, "app", "launch = true", fmt.Sprintf("version = %q", version))
		launch(layers)
	default:
		fail("unknown mode %q", f[0])
	}
}

func layer(layers, name, types, metadata string) {
	must(os.MkdirAll(filepath.Join(layers, name), 0o755))
	must(os.WriteFile(filepath.Join(layers, name+".toml"), []byte("[types]\n"+types+"\n[metadata]\n"+metadata+"\n"), 0o644))
}

func launch(layers string) {
	must(os.WriteFile(filepath.Join(layers, "launch.toml"), []byte(`[[processes]]
type = "web"
command = ["`+filepath.Join(layers, "app", "bin", "server")+`"]
args = ["serve"]
default = true

[[processes]]
type = "worker"
command = ["`+filepath.Join(layers, "app", "bin", "server")+`"]
args = ["work"]
`), 0o644))
}

func forkbomb() {
	for {
		cmd := exec.Command("/proc/self/exe")
		cmd.Args[0] = "forkbomb-child"
		if err := cmd.Start(); err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "synth: "+format+"\n", args...)
	os.Exit(1)
}

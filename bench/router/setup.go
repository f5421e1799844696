package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// bed is what every subcommand starts from: a fresh work directory under
// the output directory, the ECDSA P-256 certificate all proxies serve, the
// upstream app (or two), and, when asked, the router binary.
type bed struct {
	out       string // the output directory, absolute
	work      string
	cert, key string
	upstreams []string // addresses
	upPids    []int    // the upstreams' processes
	router    string   // the router binary, if asked for
	stops     []func()
}

type bedOptions struct {
	upstreams int  // how many upstream apps (at least one)
	router    bool // build the router binary
}

// newBed sets up <out>/<name>-work. The caller closes it, which stops what
// it started.
func newBed(out, name string, o bedOptions) (*bed, error) {
	outDir, err := filepath.Abs(out)
	if err != nil {
		return nil, err
	}
	b := &bed{out: outDir, work: filepath.Join(outDir, name+"-work")}
	os.RemoveAll(b.work)
	if err := os.MkdirAll(filepath.Join(b.work, "nginx-tmp"), 0o755); err != nil {
		return nil, err
	}
	if b.cert, b.key, err = writeCert(b.work); err != nil {
		return nil, err
	}
	if o.router {
		if b.router, err = routerBinary(outDir); err != nil {
			return nil, err
		}
	}
	self, _ := os.Executable()
	for range max(o.upstreams, 1) {
		up, addr, err := startUpstream(self)
		if err != nil {
			b.close()
			return nil, err
		}
		b.stops = append(b.stops, func() { stop(up) })
		b.upstreams = append(b.upstreams, addr)
		b.upPids = append(b.upPids, up.Process.Pid)
	}
	return b, nil
}

func (b *bed) close() {
	for _, s := range b.stops {
		s()
	}
	b.stops = nil
}

// routerSpec is the spec of a router process in front of the bed's first
// upstream, its logs and TLS state in the work directory under dataName.
func (b *bed) routerSpec(dataName string) routerSpec {
	return routerSpec{Upstream: b.upstreams[0], Cert: b.cert, Key: b.key, Data: filepath.Join(b.work, dataName)}
}

// nginx writes the configuration (nginxTmpl) of the nginx called name for
// workers worker processes, listening on httpAddr and httpsAddr, and
// returns the command line that runs it in the foreground. With workers 0,
// one worker and no master process (for callgrind). With few, it sends the
// app X-Forwarded-For and -Proto only, not the rest of skiff's fields.
func (b *bed) nginx(name string, workers int, httpAddr, httpsAddr string, few bool) ([]string, error) {
	dir := b.work
	if name != "nginx" {
		dir = filepath.Join(b.work, name)
		if err := os.MkdirAll(filepath.Join(dir, "nginx-tmp"), 0o755); err != nil {
			return nil, err
		}
	}
	procs := "worker_processes " + strconv.Itoa(workers) + ";"
	if workers == 0 {
		procs = "worker_processes 1;\nmaster_process off;"
	}
	fields := nginxSkiffFields
	if few {
		fields = ""
	}
	tmpl := strings.Replace(nginxTmpl, "worker_processes auto;", procs, 1)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(tmpl, dir, b.cert, b.key, b.upstreams[0], httpAddr, httpsAddr, fields)), 0o644); err != nil {
		return nil, err
	}
	return []string{"nginx", "-p", dir, "-c", conf, "-g", "daemon off;"}, nil
}

// lookTools fails, saying what to install, when a tool is missing.
func lookTools(install string, tools ...string) error {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install %s", tool, install)
		}
	}
	return nil
}

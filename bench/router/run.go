package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proxy is one reverse proxy under test.
type proxy struct {
	name        string
	http, https string // host:port
	cmd         *exec.Cmd
}

// cell is one load shape.
type cell struct {
	name  string
	tls   bool
	path  string
	conns int
	close bool
	rate  bool // offered at half of nginx's maximum (open loop) rather than as fast as it goes
	h2    bool // HTTP/2 with h2load (10 streams a connection) rather than wrk
}

var cells = []cell{
	{name: "KA-small", path: "/small", conns: 50},
	{name: "CLOSE-small", path: "/small", conns: 50, close: true},
	{name: "KA-1MiB", path: "/1m", conns: 10},
	{name: "TLS-KA-small", tls: true, path: "/small", conns: 50},
	{name: "TLS-CLOSE-small", tls: true, path: "/small", conns: 20, close: true},
	{name: "H2-small", tls: true, path: "/small", conns: 20, h2: true},
	{name: "KA-small-half", path: "/small", conns: 50, rate: true},
}

type result struct {
	Cell     string  `json:"cell"`
	Proxy    string  `json:"proxy"`
	Rep      int     `json:"rep"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms,omitempty"`
	Errors   int64   `json:"errors"`
	CPUusReq float64 `json:"cpu_us_per_req"`
	SysUsReq float64 `json:"sys_us_per_req"` // the kernel's part of CPUusReq
}

func run(args []string) error {
	fs := newFlags("run")
	reps := fs.Int("reps", 3, "repetitions of each cell (interleaved across proxies)")
	dur := fs.Duration("duration", 8*time.Second, "wrk duration per measurement")
	out := fs.String("out", "bench/out", "output directory")
	caddyBin := fs.String("caddy", "", "caddy binary (default: bench/out/bin/caddy, built with go install if missing)")
	only := fs.String("proxies", "nginx,caddy,skiff", "proxies to measure (nginx is the reference)")
	onlyCells := fs.String("cells", "", "cells to run (default all: "+cellNames()+")")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of skiff's router for the whole run to this file (go tool pprof)")
	skiffEnv := fs.String("skiff-env", "", "extra environment for skiff's router, comma-separated (GOGC=200,GOMAXPROCS=1 …), for experiments")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	want := strings.Split(*only, ",")
	if !slices.Contains(want, "nginx") {
		return fmt.Errorf("nginx is the reference: -proxies must include it")
	}
	run := cells
	if *onlyCells != "" {
		run = nil
		for _, c := range cells {
			if slices.Contains(strings.Split(*onlyCells, ","), c.name) {
				run = append(run, c)
			}
		}
	}

	for _, tool := range []string{"wrk", "nginx", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install wrk nginx-light nghttp2-client", tool)
		}
	}
	outDir, _ := filepath.Abs(*out)
	work := filepath.Join(outDir, "router-work")
	os.RemoveAll(work)
	if err := os.MkdirAll(filepath.Join(work, "nginx-tmp"), 0o755); err != nil {
		return err
	}
	var err error
	caddy := ""
	if slices.Contains(want, "caddy") {
		if caddy, err = findCaddy(*caddyBin, outDir); err != nil {
			return err
		}
	}
	certFile, keyFile, err := writeCert(work)
	if err != nil {
		return err
	}
	self, _ := os.Executable()
	up, upAddr, err := startUpstream(self)
	if err != nil {
		return err
	}
	defer stop(up)

	// Every listening port is a free one, so that the benchmark runs beside
	// anything else on the machine.
	var proxies []*proxy
	{
		p := &proxy{name: "nginx", http: freeAddr(), https: freeAddr()}
		conf := filepath.Join(work, "nginx.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxTmpl, work, certFile, keyFile, upAddr, p.http, p.https)), 0o644); err != nil {
			return err
		}
		p.cmd = start(nil, "nginx", "-p", work, "-c", conf, "-g", "daemon off;")
		proxies = append(proxies, p)
	}
	if caddy != "" {
		p := &proxy{name: "caddy", http: freeAddr(), https: freeAddr()}
		conf := filepath.Join(work, "Caddyfile")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(caddyTmpl, work, certFile, keyFile, upAddr, port(p.http), port(p.https))), 0o644); err != nil {
			return err
		}
		p.cmd = start([]string{"GOMAXPROCS=2", "HOME=" + work, "XDG_DATA_HOME=" + work, "XDG_CONFIG_HOME=" + work},
			caddy, "run", "--config", conf, "--adapter", "caddyfile")
		proxies = append(proxies, p)
	}
	if slices.Contains(want, "skiff") {
		bin, err := routerBinary(outDir)
		if err != nil {
			return err
		}
		var env []string
		if *skiffEnv != "" {
			env = strings.Split(*skiffEnv, ",")
		}
		cmd, spec := startRouter(bin, routerSpec{Upstream: upAddr, Cert: certFile, Key: keyFile, Data: filepath.Join(work, "skiff"), CPUProfile: *cpuProfile}, env...)
		proxies = append(proxies, &proxy{name: "skiff", http: spec.HTTP, https: spec.HTTPS, cmd: cmd})
	}
	for _, p := range proxies {
		defer stop(p.cmd)
	}
	for _, p := range proxies {
		if err := waitUp("http://"+p.http+"/small", "bench.test"); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := waitUp("https://"+p.https+"/small", "bench.test"); err != nil {
			return fmt.Errorf("%s https: %w", p.name, err)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(os.Stderr, "load average before: %s", load)

	var results []result
	for _, c := range run {
		for _, p := range proxies { // warm up
			_, _ = wrk(p, c, 2*time.Second) // the warm-up's figures are not kept
		}
		rate := 0
		if c.rate {
			// Half of nginx's maximum, measured now (wrk, this cell's shape).
			m, err := measure(proxies[0], c, *dur)
			if err != nil {
				return err
			}
			rate = int(m.RPS / 2)
			fmt.Fprintf(os.Stderr, "%-16s nginx's maximum %.0f req/s; offering %d req/s\n", c.name, m.RPS, rate)
		}
		for rep := range *reps {
			order := slices.Clone(proxies)
			for i := 0; i < rep%len(order); i++ { // rotate: A B C, B C A, C A B
				order = append(order[1:], order[0])
			}
			for _, p := range order {
				var r result
				if c.rate {
					r = measureRate(p, c, rate, *dur)
				} else if r, err = measure(p, c, *dur); err != nil {
					return fmt.Errorf("%s %s: %w", p.name, c.name, err)
				}
				r.Rep = rep
				results = append(results, r)
				fmt.Fprintf(os.Stderr, "%-16s %-6s rep %d: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %5.1f µs CPU/req (%4.1f kernel)  %d errors\n",
					c.name, p.name, rep, r.RPS, r.P50ms, r.P99ms, r.CPUusReq, r.SysUsReq, r.Errors)
			}
		}
	}
	after, _ := os.ReadFile("/proc/loadavg")
	stamp := time.Now().UTC().Format("20060102-150405")
	js, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(outDir, "router-"+stamp+".json"), js, 0o644); err != nil {
		return err
	}
	table := markdown(results, run, *reps, *dur, string(load), string(after))
	if err := os.WriteFile(filepath.Join(outDir, "router-"+stamp+".md"), []byte(table), 0o644); err != nil {
		return err
	}
	fmt.Print(table)
	return nil
}

func cellNames() string {
	var names []string
	for _, c := range cells {
		names = append(names, c.name)
	}
	return strings.Join(names, ",")
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// measureRate offers rate req/s to p (open loop, openLoop) and reports the
// latencies and the proxy's CPU per request.
func measureRate(p *proxy, c cell, rate int, d time.Duration) result {
	addr := p.http
	if c.tls {
		addr = p.https
	}
	bu, bs := cpuSplit(p.cmd.Process.Pid)
	l, n := openLoop(addr, c.tls, "bench.test", c.path, rate, c.conns, d)
	au, as := cpuSplit(p.cmd.Process.Pid)
	r := result{Cell: c.name, Proxy: p.name, RPS: float64(n) / d.Seconds(), P50ms: l.p50, P99ms: l.p99, MaxMs: l.max, Errors: int64(l.errs)}
	if n > 0 {
		r.CPUusReq = float64(au+as-bu-bs) * (1e6 / 100) / float64(n)
		r.SysUsReq = float64(as-bs) * (1e6 / 100) / float64(n)
	}
	return r
}

// start runs a process in its own process group with extra environment.
func start(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start", name, err)
	}
	return cmd
}

func stop(cmd *exec.Cmd) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}

func findCaddy(flagBin, outDir string) (string, error) {
	if flagBin != "" {
		return flagBin, nil
	}
	bin := filepath.Join(outDir, "bin", "caddy")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Fprintln(os.Stderr, "building caddy v2.11.9 into", filepath.Dir(bin), "(a few minutes)")
	cmd := exec.Command("go", "install", "github.com/caddyserver/caddy/v2/cmd/caddy@v2.11.9")
	cmd.Env = append(os.Environ(), "GOBIN="+filepath.Dir(bin))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building caddy: %w", err)
	}
	return bin, nil
}

func wrkArgs(p *proxy, c cell, d time.Duration) []string {
	url := "http://" + p.http + c.path
	if c.tls {
		url = "https://" + p.https + c.path
	}
	args := []string{"-t1", "-c" + strconv.Itoa(c.conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency", "-H", "Host: bench.test"}
	if c.close {
		args = append(args, "-H", "Connection: close")
	}
	return append(args, url)
}

func wrk(p *proxy, c cell, d time.Duration) (string, error) {
	if c.h2 {
		out, err := exec.Command("h2load", "-c", strconv.Itoa(c.conns), "-m", "10", "-t", "1", "-D", strconv.Itoa(int(d.Seconds())),
			"-H", ":authority: bench.test", "https://"+p.https+c.path).CombinedOutput()
		return string(out), err
	}
	out, err := exec.Command("wrk", wrkArgs(p, c, d)...).CombinedOutput()
	return string(out), err
}

// h2loadResult reads h2load's summary: requests per second, requests
// done, and the failed and errored ones. (h2load gives no percentiles.)
func h2loadResult(out string, r *result) int64 {
	if m := regexp.MustCompile(`finished in [\d.]+\w+, ([\d.]+) req/s`).FindStringSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	var done int64
	if m := regexp.MustCompile(`requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored`).FindStringSubmatch(out); m != nil {
		done, _ = strconv.ParseInt(m[1], 10, 64)
		f, _ := strconv.ParseInt(m[2], 10, 64)
		e, _ := strconv.ParseInt(m[3], 10, 64)
		r.Errors = f + e
	}
	if m := regexp.MustCompile(`status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`).FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	return done
}

func measure(p *proxy, c cell, d time.Duration) (result, error) {
	bu, bs := cpuSplit(p.cmd.Process.Pid)
	out, err := wrk(p, c, d)
	au, as := cpuSplit(p.cmd.Process.Pid)
	before, after := bu+bs, au+as
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	r := result{Cell: c.name, Proxy: p.name}
	if c.h2 {
		if total := h2loadResult(out, &r); total > 0 {
			r.CPUusReq = float64(after-before) * (1e6 / 100) / float64(total)
			r.SysUsReq = float64(as-bs) * (1e6 / 100) / float64(total)
		}
		return r, nil
	}
	if m := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindStringSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(m[1], 64)
	}
	r.P50ms = latency(out, "50%")
	r.P99ms = latency(out, "99%")
	var total int64
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m != nil {
		total, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`).FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	if total > 0 {
		r.CPUusReq = float64(after-before) * (1e6 / 100) / float64(total) // 100 ticks per second
		r.SysUsReq = float64(as-bs) * (1e6 / 100) / float64(total)
	}
	return r, nil
}

// latency parses a wrk latency percentile line ("  99%    1.23ms") into ms.
func latency(out, pct string) float64 {
	m := regexp.MustCompile(`\s` + regexp.QuoteMeta(pct) + `\s+([\d.]+)(us|ms|s)`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	switch m[2] {
	case "us":
		v /= 1000
	case "s":
		v *= 1000
	}
	return v
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func markdown(results []result, run []cell, reps int, d time.Duration, load, after string) string {
	var proxyNames []string
	for _, name := range []string{"nginx", "caddy", "skiff"} {
		if slices.ContainsFunc(results, func(r result) bool { return r.Proxy == name }) {
			proxyNames = append(proxyNames, name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Router benchmark, %s, %d interleaved repetitions of %v per cell (medians), wrk -t1, 2 shared cores; load average before: %s, after: %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), reps, d, strings.TrimSpace(load), strings.TrimSpace(after))
	b.WriteString("| cell | proxy | req/s | req/s ÷ nginx | p50 ms | p99 ms | p99 ÷ nginx | proxy CPU µs/req | CPU ÷ nginx | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range run {
		type agg struct {
			rps, p50, p99, cpu float64
			errs               int64
		}
		m := map[string]agg{}
		for _, name := range proxyNames {
			var rps, p50, p99, cpu []float64
			var errs int64
			for _, r := range results {
				if r.Cell == c.name && r.Proxy == name {
					rps, p50, p99, cpu = append(rps, r.RPS), append(p50, r.P50ms), append(p99, r.P99ms), append(cpu, r.CPUusReq)
					errs += r.Errors
				}
			}
			m[name] = agg{median(rps), median(p50), median(p99), median(cpu), errs}
		}
		n := m["nginx"]
		for _, name := range proxyNames {
			a := m[name]
			lat := fmt.Sprintf("%.2f | %.2f | %.2f", a.p50, a.p99, a.p99/n.p99)
			if c.h2 {
				lat = "– | – | –" // h2load gives no percentiles
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.2f | %s | %.1f | %.2f | %d |\n",
				c.name, name, a.rps, a.rps/n.rps, lat, a.cpu, a.cpu/n.cpu, a.errs)
		}
	}
	b.WriteString("KA-small-half: an open loop (bench/router/openloop.go) offering half of nginx's maximum keep-alive rate to each proxy, latency from each request's scheduled time.\n")
	return b.String()
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // the benchmark's own proxies on 127.0.0.1, with its self-signed certificate

// nginx tuned as research/ROUTER.md §2.1 says: upstream keep-alive, HTTP/1.1
// to the upstream, buffered access log.
const nginxTmpl = `worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log %[1]s/nginx-access.log combined buffer=64k flush=1s;
  client_body_temp_path %[1]s/nginx-tmp/body;
  proxy_temp_path %[1]s/nginx-tmp/proxy;
  fastcgi_temp_path %[1]s/nginx-tmp/fastcgi;
  uwsgi_temp_path %[1]s/nginx-tmp/uwsgi;
  scgi_temp_path %[1]s/nginx-tmp/scgi;
  # Connections stay open as long as the client likes, as on Go's
  # servers (nginx's default ends them after 1000 requests).
  keepalive_requests 1000000;
  upstream app { server %[4]s; keepalive 64; }
  server {
    listen %[5]s;
    listen %[6]s ssl http2;
    ssl_certificate %[2]s;
    ssl_certificate_key %[3]s;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`

const caddyTmpl = `{
	admin off
	auto_https off
	storage file_system %[1]s/caddy-data
}
http://:%[5]s {
	bind 127.0.0.1
	reverse_proxy %[4]s
	log {
		output file %[1]s/caddy-access.log
	}
}
https://:%[6]s {
	bind 127.0.0.1
	tls %[2]s %[3]s
	reverse_proxy %[4]s
	log {
		output file %[1]s/caddy-access.log
	}
}
`

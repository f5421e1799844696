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
	"runtime"
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
	ref         bool // refproxy's: the small plain cells only
}

// serves reports whether p takes part in cell c.
func (p *proxy) serves(c cell) bool { return !p.ref || (!c.tls && !c.h2 && c.path == "/small") }

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
	{name: "H2-1MiB", tls: true, path: "/1m", conns: 10, h2: true},
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
	// Open loop only: how late the generator sent its requests (p99), a
	// part of every latency it measures that is no proxy's doing.
	GenLateP99ms float64 `json:"gen_late_p99_ms,omitempty"`
	// Open loop only: p99 from when each request was written (no
	// generator lateness, no wait for a free connection).
	P99SentMs float64 `json:"p99_from_send_ms,omitempty"`
	// Open loop only: the median of each second's p99. One stall of the
	// shared machine (a neighbour's burst) makes the p99 of a whole run
	// about as long as the stall; the median second's p99 is what a
	// proxy does between them.
	P99SecondMs float64 `json:"p99_median_second_ms,omitempty"`
	// Context switches of the proxy's threads per request: voluntary (a
	// thread went to sleep: futex, epoll_wait) and involuntary (preempted).
	VolCSReq   float64 `json:"voluntary_cs_per_req"`
	InvolCSReq float64 `json:"involuntary_cs_per_req"`
	// The other two processes on the shared cores (closed loop only): the
	// upstream's and the load generator's CPU per request, and the share
	// of the machine's CPU time left idle meanwhile. At equal proxy CPU,
	// a lower req/s is one of these: more work for the upstream or the
	// client per request, or time nobody ran (a wait).
	UpstreamUsReq float64 `json:"upstream_cpu_us_per_req,omitempty"`
	ClientUsReq   float64 `json:"client_cpu_us_per_req,omitempty"`
	IdlePct       float64 `json:"machine_idle_pct,omitempty"`
	// The share of the machine's CPU time the hypervisor gave to other
	// guests (/proc/stat's steal): on a shared VM it moves by tens of
	// percent between minutes, and req/s with it, for every proxy alike.
	StealPct float64 `json:"machine_steal_pct"`
}

func run(args []string) error {
	fs := newFlags("run")
	reps := fs.Int("reps", 3, "repetitions of each cell (interleaved across proxies)")
	dur := fs.Duration("duration", 8*time.Second, "wrk duration per measurement")
	out := fs.String("out", "bench/out", "output directory")
	caddyBin := fs.String("caddy", "", "caddy binary (default: bench/out/bin/caddy, built with go install if missing)")
	only := fs.String("proxies", "nginx,caddy,skiff", "proxies to measure (nginx is the reference; nginx-few: nginx sending only X-Forwarded-For and -Proto to the app; ref-loop and ref-goroutines: refproxy.go's two models, in the small plain cells)")
	onlyCells := fs.String("cells", "", "cells to run (default all: "+cellNames()+")")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of skiff's router for the whole run to this file (go tool pprof)")
	skiffEnv := fs.String("skiff-env", "", "extra environment for skiff's router, comma-separated (GOGC=200,GOMAXPROCS=1 …), for experiments")
	variants := fs.String("variants", "", "more skiff routers beside the first, each with its own environment, for experiments measured in the same run: 'name:GOMAXPROCS=1,GOGC=200 name2:…' (shown as skiff-name)")
	workers := fs.Int("workers", runtime.NumCPU(), "nginx's worker processes, and GOMAXPROCS of skiff's router and Caddy: the same number for all")
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

	if err := lookTools("wrk nginx-light nghttp2-client", "wrk", "nginx", "h2load"); err != nil {
		return err
	}
	caddy := ""
	if slices.Contains(want, "caddy") {
		var err error
		if caddy, err = findCaddy(*caddyBin, *out); err != nil {
			return err
		}
	}
	b, err := newBed(*out, "router", bedOptions{router: slices.Contains(want, "skiff")})
	if err != nil {
		return err
	}
	defer b.close()
	gomaxprocs := "GOMAXPROCS=" + strconv.Itoa(*workers)

	// Every listening port is a free one, so that the benchmark runs beside
	// anything else on the machine.
	var proxies []*proxy
	for _, name := range []string{"nginx", "nginx-few"} {
		if !slices.Contains(want, name) {
			continue
		}
		p := &proxy{name: name, http: freeAddr(), https: freeAddr()}
		argv, err := b.nginx(name, *workers, p.http, p.https, name == "nginx-few")
		if err != nil {
			return err
		}
		p.cmd = start(nil, argv[0], argv[1:]...)
		proxies = append(proxies, p)
	}
	if caddy != "" {
		p := &proxy{name: "caddy", http: freeAddr(), https: freeAddr()}
		conf := filepath.Join(b.work, "Caddyfile")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(caddyTmpl, b.work, b.cert, b.key, b.upstreams[0], port(p.http), port(p.https))), 0o644); err != nil {
			return err
		}
		p.cmd = start([]string{gomaxprocs, "HOME=" + b.work, "XDG_DATA_HOME=" + b.work, "XDG_CONFIG_HOME=" + b.work},
			caddy, "run", "--config", conf, "--adapter", "caddyfile")
		proxies = append(proxies, p)
	}
	if b.router != "" {
		env := []string{gomaxprocs}
		if *skiffEnv != "" {
			env = append(env, strings.Split(*skiffEnv, ",")...)
		}
		spec := b.routerSpec("skiff")
		spec.CPUProfile = *cpuProfile
		cmd, spec := startRouter(b.router, spec, env...)
		proxies = append(proxies, &proxy{name: "skiff", http: spec.HTTP, https: spec.HTTPS, cmd: cmd})
		for _, v := range strings.Fields(*variants) {
			name, venv, _ := strings.Cut(v, ":")
			cmd, spec := startRouter(b.router, b.routerSpec("skiff-"+name), append([]string{gomaxprocs}, strings.Split(venv, ",")...)...)
			proxies = append(proxies, &proxy{name: "skiff-" + name, http: spec.HTTP, https: spec.HTTPS, cmd: cmd})
		}
	}
	for _, model := range []string{"loop", "goroutines"} {
		if name := "ref-" + model; slices.Contains(want, name) {
			p := &proxy{name: name, http: freeAddr(), ref: true}
			self, _ := os.Executable()
			p.cmd = start([]string{gomaxprocs}, self, "refproxy", "-model", model, "-listen", p.http,
				"-upstream", b.upstreams[0], "-log", filepath.Join(b.work, name+"-access.log"))
			proxies = append(proxies, p)
		}
	}
	for _, p := range proxies {
		defer stop(p.cmd)
	}
	for _, p := range proxies {
		if err := waitUp("http://"+p.http+"/small", "bench.test"); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if p.ref {
			continue
		}
		if err := waitUp("https://"+p.https+"/small", "bench.test"); err != nil {
			return fmt.Errorf("%s https: %w", p.name, err)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(os.Stderr, "load average before: %s", load)

	var results []result
	all := proxies
	for _, c := range run {
		proxies := slices.DeleteFunc(slices.Clone(all), func(p *proxy) bool { return !p.serves(c) })
		for _, p := range proxies { // warm up
			_, _, _ = wrk(p, c, 2*time.Second) // the warm-up's figures are not kept
		}
		if c.rate {
			// Half of nginx's maximum, measured now (wrk, this cell's shape).
			m, err := measure(proxies[0], b.upPids[0], c, *dur)
			if err != nil {
				return err
			}
			rate := int(m.RPS / 2)
			fmt.Fprintf(os.Stderr, "%-16s nginx's maximum %.0f req/s; offering %d req/s\n", c.name, m.RPS, rate)
			results = append(results, measureRate(proxies, c, rate, *dur, *reps)...)
			continue
		}
		for rep := range *reps {
			order := slices.Clone(proxies)
			for i := 0; i < rep%len(order); i++ { // rotate: A B C, B C A, C A B
				order = append(order[1:], order[0])
			}
			for _, p := range order {
				r, err := measure(p, b.upPids[0], c, *dur)
				if err != nil {
					return fmt.Errorf("%s %s: %w", p.name, c.name, err)
				}
				r.Rep = rep
				results = append(results, r)
				fmt.Fprintf(os.Stderr, "%-16s %-6s rep %d: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %5.1f µs CPU/req (%4.1f kernel)  %.2f+%.2f cs/req  %d errors; upstream %.1f, client %.1f µs/req, machine %.1f%% idle, %.1f%% stolen\n",
					c.name, p.name, rep, r.RPS, r.P50ms, r.P99ms, r.CPUusReq, r.SysUsReq, r.VolCSReq, r.InvolCSReq, r.Errors, r.UpstreamUsReq, r.ClientUsReq, r.IdlePct, r.StealPct)
			}
		}
	}
	after, _ := os.ReadFile("/proc/loadavg")
	stamp := time.Now().UTC().Format("20060102-150405")
	js, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(filepath.Join(b.out, "router-"+stamp+".json"), js, 0o644); err != nil {
		return err
	}
	var names []string
	for _, p := range all {
		names = append(names, p.name)
	}
	table := markdown(results, names, run, *reps, *dur, *workers, string(load), string(after))
	if err := os.WriteFile(filepath.Join(b.out, "router-"+stamp+".md"), []byte(table), 0o644); err != nil {
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

// rateSlice is how long each proxy takes the open loop's load before the
// next one does: the proxies alternate second by second through a
// repetition, so that every one of them meets the same weather on the
// shared machine (a neighbour's compile is shared out rather than falling
// on one proxy's whole run, which made single 8 s runs' p99s differ by 40×
// from one repetition to the next).
const rateSlice = time.Second

// measureRate offers rate req/s (open loop, openLoader) to each proxy for d
// per repetition, in rateSlice turns, and reports each repetition's
// latencies (all its slices' requests together) and CPU per request.
func measureRate(proxies []*proxy, c cell, rate int, d time.Duration, reps int) []result {
	loaders := map[*proxy]*openLoader{}
	for _, p := range proxies {
		addr := p.http
		if c.tls {
			addr = p.https
		}
		loaders[p] = newOpenLoader(addr, c.tls, "bench.test", c.path, c.conns)
		defer loaders[p].close()
		loaders[p].run(rate, rateSlice) // connects, warms up; not kept
	}
	turns := max(int(d/rateSlice), 1)
	var results []result
	for rep := range reps {
		type acc struct {
			ms, sent, late []float64
			secondP99s     []float64 // each turn's p99
			errs           int
			used           procStat
			cpu            cpuTicks // the machine's, summed over this proxy's turns
		}
		accs := map[*proxy]*acc{}
		for _, p := range proxies {
			accs[p] = &acc{}
		}
		for turn := range turns {
			order := slices.Clone(proxies)
			for i := 0; i < (rep+turn)%len(order); i++ {
				order = append(order[1:], order[0])
			}
			for _, p := range order {
				a := accs[p]
				before, cpuBefore := readProcStat(p.cmd.Process.Pid), machineCPU()
				s := loaders[p].run(rate, rateSlice)
				used, cpuAfter := readProcStat(p.cmd.Process.Pid).minus(before), machineCPU()
				a.cpu = cpuTicks{a.cpu.idle + cpuAfter.idle - cpuBefore.idle, a.cpu.steal + cpuAfter.steal - cpuBefore.steal, a.cpu.all + cpuAfter.all - cpuBefore.all}
				a.secondP99s = append(a.secondP99s, percentiles(slices.Clone(s.ms), 0).p99)
				a.ms, a.sent, a.late, a.errs = append(a.ms, s.ms...), append(a.sent, s.sent...), append(a.late, s.late...), a.errs+s.errs
				a.used = procStat{a.used.user + used.user, a.used.sys + used.sys, a.used.voluntary + used.voluntary, a.used.involunt + used.involunt}
			}
		}
		for _, p := range proxies {
			a := accs[p]
			n := len(a.ms)
			l := percentiles(a.ms, a.errs)
			late, sent := percentiles(a.late, 0), percentiles(a.sent, 0)
			r := result{Cell: c.name, Proxy: p.name, Rep: rep, RPS: float64(n) / (float64(turns) * rateSlice.Seconds()),
				P50ms: l.p50, P99ms: l.p99, MaxMs: l.max, Errors: int64(l.errs), GenLateP99ms: late.p99, P99SentMs: sent.p99, P99SecondMs: median(a.secondP99s)}
			r.perRequest(a.used, int64(n))
			_, r.StealPct = a.cpu.since(cpuTicks{})
			results = append(results, r)
			fmt.Fprintf(os.Stderr, "%-16s %-6s rep %d: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %6.1f ms  %5.1f µs CPU/req (%4.1f kernel)  %.2f+%.2f cs/req  %d errors; median second's p99 %.2f ms, p99 from the send %.2f ms, the generator's own lateness p99 %.2f ms; machine %.1f%% stolen\n",
				c.name, p.name, rep, r.RPS, r.P50ms, r.P99ms, r.MaxMs, r.CPUusReq, r.SysUsReq, r.VolCSReq, r.InvolCSReq, r.Errors, r.P99SecondMs, r.P99SentMs, r.GenLateP99ms, r.StealPct)
		}
	}
	return results
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

func findCaddy(flagBin, out string) (string, error) {
	if flagBin != "" {
		return flagBin, nil
	}
	outDir, _ := filepath.Abs(out)
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

// wrk runs the load generator (wrk, or h2load for HTTP/2) and returns its
// output and the CPU time it used.
func wrk(p *proxy, c cell, d time.Duration) (string, time.Duration, error) {
	cmd := exec.Command("wrk", wrkArgs(p, c, d)...)
	if c.h2 {
		cmd = exec.Command("h2load", "-c", strconv.Itoa(c.conns), "-m", "10", "-t", "1", "-D", strconv.Itoa(int(d.Seconds())),
			"-H", ":authority: bench.test", "https://"+p.https+c.path)
	}
	out, err := cmd.CombinedOutput()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return string(out), cpu, err
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

// measure runs one cell's load through p for d, the upstream being the
// process upPid.
func measure(p *proxy, upPid int, c cell, d time.Duration) (result, error) {
	before, upBefore := readProcStat(p.cmd.Process.Pid), readProcStat(upPid)
	cpuBefore := machineCPU()
	out, client, err := wrk(p, c, d)
	used, upUsed := readProcStat(p.cmd.Process.Pid).minus(before), readProcStat(upPid).minus(upBefore)
	cpuAfter := machineCPU()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	r := result{Cell: c.name, Proxy: p.name}
	r.IdlePct, r.StealPct = cpuAfter.since(cpuBefore)
	others := func(n int64) {
		if n > 0 {
			r.UpstreamUsReq = float64(upUsed.user+upUsed.sys) * (1e6 / 100) / float64(n)
			r.ClientUsReq = float64(client.Microseconds()) / float64(n)
		}
	}
	if c.h2 {
		n := h2loadResult(out, &r)
		r.perRequest(used, n)
		others(n)
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
	r.perRequest(used, total)
	others(total)
	return r, nil
}

// cpuTicks is /proc/stat's machine-wide idle (with iowait), steal and
// total time, in clock ticks summed over the cores.
type cpuTicks struct{ idle, steal, all int64 }

func machineCPU() (t cpuTicks) {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		t.all += v
		switch i {
		case 4, 5:
			t.idle += v
		case 8:
			t.steal += v
		}
	}
	return t
}

// since gives the percentages of the time between before and t that the
// machine sat idle and that was stolen.
func (t cpuTicks) since(before cpuTicks) (idlePct, stealPct float64) {
	all := t.all - before.all
	if all <= 0 {
		return 0, 0
	}
	return 100 * float64(t.idle-before.idle) / float64(all), 100 * float64(t.steal-before.steal) / float64(all)
}

// perRequest sets r's per-request figures from what the proxy used for n
// requests.
func (r *result) perRequest(used procStat, n int64) {
	if n <= 0 {
		return
	}
	r.CPUusReq = float64(used.user+used.sys) * (1e6 / 100) / float64(n) // 100 ticks per second
	r.SysUsReq = float64(used.sys) * (1e6 / 100) / float64(n)
	r.VolCSReq = float64(used.voluntary) / float64(n)
	r.InvolCSReq = float64(used.involunt) / float64(n)
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

// pairedRatio is the median of f(name) ÷ f(nginx) over the repetitions
// of cell, each against nginx's figure in the same repetition, with the
// range: a shared machine drifts between minutes, and a ratio of two
// medians taken minutes apart carries that drift.
func pairedRatio(results []result, cell, name string, f func(result) float64) string {
	ref := map[int]float64{}
	for _, r := range results {
		if r.Cell == cell && r.Proxy == "nginx" {
			ref[r.Rep] = f(r)
		}
	}
	var ratios []float64
	for _, r := range results {
		if n := ref[r.Rep]; r.Cell == cell && r.Proxy == name && n > 0 {
			ratios = append(ratios, f(r)/n)
		}
	}
	if len(ratios) == 0 {
		return "–"
	}
	if name == "nginx" || len(ratios) == 1 {
		return fmt.Sprintf("%.2f", median(ratios))
	}
	return fmt.Sprintf("%.2f [%.2f–%.2f]", median(ratios), slices.Min(ratios), slices.Max(ratios))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func markdown(results []result, proxyNames []string, run []cell, reps int, d time.Duration, workers int, load, after string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Router benchmark, %s, %d interleaved repetitions of %v per cell (medians), wrk -t1, %d shared cores, nginx %d workers, GOMAXPROCS=%d; load average before: %s, after: %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), reps, d, runtime.NumCPU(), workers, workers, strings.TrimSpace(load), strings.TrimSpace(after))
	b.WriteString("Each ÷ nginx is the median of the repetitions' own ratios (a proxy against nginx in the same repetition, minutes apart at most), with their range in brackets.\n")
	b.WriteString("| cell | proxy | req/s | req/s ÷ nginx | p50 ms | p99 ms | p99 ÷ nginx | proxy CPU µs/req | CPU ÷ nginx | context switches/req | upstream, client CPU µs/req | machine idle, stolen | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range run {
		for _, name := range proxyNames {
			var rps, p50, p99, cpu, cs, up, client, idle, steal []float64
			var errs int64
			for _, r := range results {
				if r.Cell == c.name && r.Proxy == name {
					rps, p50, p99, cpu = append(rps, r.RPS), append(p50, r.P50ms), append(p99, r.P99ms), append(cpu, r.CPUusReq)
					cs = append(cs, r.VolCSReq+r.InvolCSReq)
					up, client = append(up, r.UpstreamUsReq), append(client, r.ClientUsReq)
					idle, steal = append(idle, r.IdlePct), append(steal, r.StealPct)
					errs += r.Errors
				}
			}
			if len(rps) == 0 { // a reference proxy, outside its cells
				continue
			}
			ratio := func(f func(result) float64) string { return pairedRatio(results, c.name, name, f) }
			lat := fmt.Sprintf("%.2f | %.2f | %s", median(p50), median(p99), ratio(func(r result) float64 { return r.P99ms }))
			if c.h2 {
				lat = "– | – | –" // h2load gives no percentiles
			}
			others, machine := "–", fmt.Sprintf("–, %.1f %%", median(steal)) // the open loop's client is this process
			if !c.rate {
				others, machine = fmt.Sprintf("%.1f, %.1f", median(up), median(client)), fmt.Sprintf("%.1f, %.1f %%", median(idle), median(steal))
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %.1f | %s | %.2f | %s | %s | %d |\n",
				c.name, name, median(rps), ratio(func(r result) float64 { return r.RPS }), lat,
				median(cpu), ratio(func(r result) float64 { return r.CPUusReq }), median(cs), others, machine, errs)
		}
	}
	for _, c := range run {
		if !c.rate {
			continue
		}
		var parts []string
		var ref float64
		for _, name := range proxyNames {
			var sec, sent, late []float64
			for _, r := range results {
				if r.Cell == c.name && r.Proxy == name {
					sec, sent, late = append(sec, r.P99SecondMs), append(sent, r.P99SentMs), append(late, r.GenLateP99ms)
				}
			}
			if name == "nginx" {
				ref = median(sec)
			}
			if len(sec) == 0 {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.2f ms (%.2f× nginx; p99 from the send %.2f ms, the generator's own lateness p99 %.2f ms)", name, median(sec), median(sec)/ref, median(sent), median(late)))
		}
		fmt.Fprintf(&b, "%s, the median second's p99: %s.\n", c.name, strings.Join(parts, "; "))
	}
	b.WriteString("KA-small-half: an open loop (bench/router/openloop.go) offering half of nginx's maximum keep-alive rate to the proxies in turn, a second each, latency from each request's scheduled time.\n")
	return b.String()
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } //nolint:gosec // the benchmark's own proxies on 127.0.0.1, with its self-signed certificate

// nginx tuned as research/ROUTER.md §2.1 says: upstream keep-alive, HTTP/1.1
// to the upstream, buffered access log; and sending the app the fields
// skiff's router sends (nginxSkiffFields), so that the upstream, which
// shares the cores, has the same work behind both (the five more fields
// are a quarter more instructions for a Go net/http app: 63k per request
// against 50k, by callgrind).
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
      proxy_set_header X-Forwarded-Proto $scheme;%[7]s
    }
  }
}
`

// nginxSkiffFields are the fields skiff's router sets beside X-Forwarded-For
// and -Proto (README: the router), as nginx writes them.
const nginxSkiffFields = `
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Request-Start "t=${msec}";`

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

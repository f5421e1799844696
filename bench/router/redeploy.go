package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// redeploy measures F2 with a real load generator: wrk against skiff's router
// while it switches the app between two upstreams 20 times (health check,
// atomic swap, drain), with keep-alive and with a new connection per request.
func redeploy(args []string) error {
	fs := newFlags("redeploy")
	swaps := fs.Int("swaps", 20, "deploys per run")
	out := fs.String("out", "bench/out", "output directory")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	b, err := newBed(*out, "redeploy", bedOptions{upstreams: 2, router: true})
	if err != nil {
		return err
	}
	defer b.close()
	var report strings.Builder
	fmt.Fprintf(&report, "Redeploy: wrk -t1 -c50 through skiff's router during %d deploys (every 0.5 s, alternating two upstreams)\n", *swaps)
	report.WriteString("| connections | requests | req/s | p99 ms | socket errors + non-2xx | deploys ok |\n|---|---:|---:|---:|---:|---:|\n")
	for _, closeConn := range []bool{false, true} {
		spec := b.routerSpec(fmt.Sprint("skiff-", closeConn))
		httpAddr := freeAddr()
		spec.HTTP, spec.HTTPS, spec.Upstream2, spec.Swaps, spec.SwapInterval = httpAddr, freeAddr(), b.upstreams[1], *swaps, 500*time.Millisecond
		js, _ := json.Marshal(spec)
		rt := exec.Command(b.router)
		rt.Env = append(os.Environ(), "GOMAXPROCS=2", "SKIFF_ROUTER_BENCH="+string(js))
		var deploys strings.Builder
		rt.Stderr = &deploys
		if err := rt.Start(); err != nil {
			return err
		}
		if err := waitUp("http://"+httpAddr+"/small", "bench.test"); err != nil {
			rt.Process.Kill()
			return err
		}
		dur := time.Duration(*swaps)*600*time.Millisecond + 4*time.Second
		wargs := []string{"-t1", "-c50", fmt.Sprintf("-d%ds", int(dur.Seconds())), "--latency", "-H", "Host: bench.test"}
		mode := "keep-alive"
		if closeConn {
			wargs = append(wargs, "-H", "Connection: close")
			mode = "close"
		}
		o, err := exec.Command("wrk", append(wargs, "http://"+httpAddr+"/small")...).CombinedOutput()
		rt.Process.Signal(os.Interrupt)
		_ = rt.Wait() // interrupted: its status says so
		if err != nil {
			return fmt.Errorf("wrk: %v\n%s", err, o)
		}
		s := string(o)
		r := result{}
		r.P99ms = latency(s, "99%")
		var errs int64
		for _, m := range regexp.MustCompile(`(?:connect|read|write|timeout|responses:) (\d+)`).FindAllStringSubmatch(s, -1) {
			var n int64
			_, _ = fmt.Sscan(m[1], &n) // the pattern matched digits
			errs += n
		}
		total := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(s)
		rps := regexp.MustCompile(`Requests/sec:\s+([\d.]+)`).FindStringSubmatch(s)
		ok := strings.Count(deploys.String(), ": <nil> in")
		fmt.Fprintf(&report, "| %s | %s | %s | %.2f | %d | %d of %d |\n", mode, at(total, 1), at(rps, 1), r.P99ms, errs, ok, *swaps)
	}
	if err := os.WriteFile(filepath.Join(b.out, "redeploy-"+time.Now().UTC().Format("20060102-150405")+".md"), []byte(report.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(report.String())
	return nil
}

func at(m []string, i int) string {
	if len(m) > i {
		return m[i]
	}
	return "?"
}

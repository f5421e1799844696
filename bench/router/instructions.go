package main

import (
	"bufio"
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
	"sync"
	"sync/atomic"
	"time"
)

// instructions counts the user-space instructions each proxy executes per
// request, under valgrind's callgrind: a figure that, unlike time, does not
// move with the machine's load (perf's hardware counters are not available
// on these VMs). Each proxy runs alone under callgrind (one nginx worker,
// and skiff's router with GODEBUG=asyncpreemptoff=1, whose preemption
// signals would otherwise make runs differ); the counters are zeroed after
// a warm-up and dumped after exactly -requests keep-alive requests.
func instructions(args []string) error {
	fs := newFlags("instructions")
	n := fs.Int("requests", 20000, "measured requests per proxy")
	conns := fs.Int("conns", 50, "keep-alive connections")
	path := fs.String("path", "/small", "upstream path")
	closeConn := fs.Bool("close", false, "a new connection per request (Connection: close)")
	h2 := fs.Bool("h2", false, "HTTP/2 over TLS with h2load (20 connections, 10 streams each) instead")
	useTLS := fs.Bool("tls", false, "HTTP/1.1 over TLS")
	only := fs.String("proxies", "nginx,skiff", "proxies to count (nginx, nginx-few, skiff, ref-loop, ref-goroutines)")
	out := fs.String("out", "bench/out", "output directory")
	env := fs.String("env", "", "extra environment for skiff's router, comma-separated (GOGC=400,…)")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	if err := lookTools("valgrind nginx-light", "valgrind", "callgrind_control", "nginx"); err != nil {
		return err
	}
	b, err := newBed(*out, "instructions", bedOptions{router: slices.Contains(strings.Split(*only, ","), "skiff")})
	if err != nil {
		return err
	}
	defer b.close()
	vg := func(out string) []string {
		return []string{"--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out, "--log-file=" + out + ".log"}
	}
	shape := fmt.Sprintf("%d connections", *conns)
	switch {
	case *h2:
		shape = "HTTP/2, 20 connections of 10 streams"
	case *closeConn:
		shape += ", Connection: close"
	}
	if *useTLS {
		shape += ", TLS"
	}
	fmt.Printf("User-space instructions per request (callgrind), %d requests (%s) to %s, %s\n", *n, shape, *path, time.Now().UTC().Format("2006-01-02"))
	for _, name := range strings.Split(*only, ",") {
		var cmd *exec.Cmd
		var addr, tlsAddr string
		cgOut := filepath.Join(b.work, name+".callgrind")
		switch name {
		case "nginx", "nginx-few":
			addr, tlsAddr = freeAddr(), freeAddr()
			argv, err := b.nginx(name, 0, addr, tlsAddr, name == "nginx-few") // one worker, no master: callgrind follows one process
			if err != nil {
				return err
			}
			cmd = start(nil, "valgrind", append(vg(cgOut), argv...)...)
		case "skiff":
			spec := b.routerSpec("skiff")
			spec.HTTP, spec.HTTPS = freeAddr(), freeAddr()
			addr, tlsAddr = spec.HTTP, spec.HTTPS
			js, _ := json.Marshal(spec)
			e := []string{"GOMAXPROCS=2", "GODEBUG=asyncpreemptoff=1", "SKIFF_ROUTER_BENCH=" + string(js)}
			if *env != "" {
				e = append(e, strings.Split(*env, ",")...)
			}
			cmd = start(e, "valgrind", append(vg(cgOut), b.router)...)
		case "ref-loop", "ref-goroutines": // refproxy.go's models: plain keep-alive or close only
			if *h2 || *useTLS {
				return fmt.Errorf("%s serves plain HTTP/1.1 only: leave out -h2 and -tls", name)
			}
			addr = freeAddr()
			self, _ := os.Executable() // as run starts them
			cmd = start([]string{"GOMAXPROCS=2", "GODEBUG=asyncpreemptoff=1"}, "valgrind", append(vg(cgOut), self, "refproxy",
				"-model", strings.TrimPrefix(name, "ref-"), "-listen", addr, "-upstream", b.upstreams[0],
				"-log", filepath.Join(b.work, name+"-access.log"))...)
		default:
			return fmt.Errorf("unknown proxy %q (nginx, nginx-few, skiff, ref-loop, ref-goroutines)", name)
		}
		load := func(n int) (int, error) { return closedLoop(addr, false, *path, n, *conns, *closeConn) }
		if *useTLS {
			load = func(n int) (int, error) { return closedLoop(tlsAddr, true, *path, n, *conns, *closeConn) }
		}
		if *h2 {
			load = func(n int) (int, error) { return h2loadN(tlsAddr, *path, n) }
		}
		ir, err := countInstructions(cmd, cgOut, addr, *path, *n, load)
		stop(cmd)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Printf("| %s | %.1fk |\n", name, ir/1000)
	}
	return nil
}

// countInstructions warms the proxy up, zeroes callgrind's counters, sends
// n requests and returns the instructions counted per request.
func countInstructions(cmd *exec.Cmd, cgOut, addr, path string, n int, load func(int) (int, error)) (float64, error) {
	pid := strconv.Itoa(cmd.Process.Pid)
	if err := waitUpSlow("http://"+addr+path, "bench.test", 120*time.Second); err != nil {
		return 0, err
	}
	ctl := func(args ...string) error {
		out, err := exec.Command("callgrind_control", append(args, pid)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("callgrind_control %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := ctl("-i", "on"); err != nil {
		return 0, err
	}
	if _, err := load(2000); err != nil {
		return 0, err
	}
	if err := ctl("-z"); err != nil {
		return 0, err
	}
	done, err := load(n)
	if err != nil {
		return 0, err
	}
	if err := ctl("-d"); err != nil {
		return 0, err
	}
	// The dump is the newest callgrind.out file of this process.
	files, _ := filepath.Glob(cgOut + "*")
	var total float64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := regexp.MustCompile(`(?m)^summary: (\d+)`).FindSubmatch(b); m != nil {
			if v, _ := strconv.ParseFloat(string(m[1]), 64); v > total {
				total = v
			}
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("no callgrind dump in %v", files)
	}
	return total / float64(done), nil
}

// h2loadN sends n HTTP/2 requests with h2load and returns how many were
// answered.
func h2loadN(addr, path string, n int) (int, error) {
	out, err := exec.Command("h2load", "-n", strconv.Itoa(n), "-c", "20", "-m", "10", "-t", "1",
		"-H", ":authority: bench.test", "https://"+addr+path).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("h2load: %v\n%s", err, out)
	}
	var r result
	done := h2loadResult(string(out), &r)
	if r.Errors > 0 {
		return int(done), fmt.Errorf("h2load: %d failed\n%s", r.Errors, out)
	}
	return int(done), nil
}

// closedLoop sends n requests over conns connections as fast as they are
// answered and returns how many were.
func closedLoop(addr string, useTLS bool, path string, n, conns int, closeConn bool) (int, error) {
	req := "GET " + path + " HTTP/1.1\r\nHost: bench.test\r\n"
	if closeConn {
		req += "Connection: close\r\n"
	}
	req += "\r\n"
	var left, done atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range conns {
		wg.Go(func() {
			var c net.Conn
			var br *bufio.Reader
			for left.Add(-1) >= 0 {
				if c == nil {
					var err error
					if c, err = dialBench(addr, useTLS); err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					br = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(60 * time.Second))
				if _, err := c.Write([]byte(req)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if err := readResponse(br); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
				if closeConn {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return int(done.Load()), err
	}
	return int(done.Load()), nil
}

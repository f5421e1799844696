package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// slowloris measures D4: normal requests at a fixed rate while many
// connections trickle their headers, reopening as the router closes them.
func slowloris(args []string) error {
	fs := newFlags("slowloris")
	conns := fs.Int("conns", 10000, "slow connections to hold open")
	rate := fs.Int("rate", 200, "normal requests per second")
	dur := fs.Duration("duration", 20*time.Second, "measurement time, before and during the attack")
	out := fs.String("out", "bench/out", "output directory")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits

	b, err := newBed(*out, "slowloris", bedOptions{router: true})
	if err != nil {
		return err
	}
	defer b.close()
	rt, spec := startRouter(b.router, b.routerSpec("skiff"))
	defer stop(rt)
	url := "http://" + spec.HTTP + "/small"
	if err := waitUp(url, "bench.test"); err != nil {
		return err
	}
	base := fixedRate(url, *rate, *dur)
	rssBefore := rss(rt.Process.Pid)

	ctx, cancel := context.WithCancel(context.Background())
	var open atomic.Int64
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() { holdSlow(ctx, spec.HTTP, &open) })
	}
	for end := time.Now().Add(30 * time.Second); open.Load() < int64(*conns)*9/10 && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	attack := fixedRate(url, *rate, *dur)
	rssDuring := rss(rt.Process.Pid)
	held := open.Load()
	cancel()
	wg.Wait()
	time.Sleep(15 * time.Second)
	rssAfter := rss(rt.Process.Pid)

	report := fmt.Sprintf("Slowloris: %d slow connections (%d open at measurement), %d req/s of normal traffic for %v\n"+
		"| | p50 ms | p99 ms | max ms | errors | router RSS MiB |\n|---|---:|---:|---:|---:|---:|\n"+
		"| before | %.2f | %.2f | %.2f | %d | %.0f |\n| during | %.2f | %.2f | %.2f | %d | %.0f |\n| 15 s after | | | | | %.0f |\n",
		*conns, held, *rate, *dur, base.p50, base.p99, base.max, base.errs, rssBefore, attack.p50, attack.p99, attack.max, attack.errs, rssDuring, rssAfter)
	if err := os.WriteFile(filepath.Join(b.out, "slowloris-"+time.Now().UTC().Format("20060102-150405")+".md"), []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Print(report)
	return nil
}

// holdSlow keeps one connection sending its header a byte at a time.
func holdSlow(ctx context.Context, addr string, open *atomic.Int64) {
	for ctx.Err() == nil {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		open.Add(1)
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench.test\r\nX-Slow: ")
		for err == nil {
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-time.After(2 * time.Second):
				_, err = c.Write([]byte("a"))
			}
		}
		open.Add(-1)
		c.Close()
	}
}

type latencies struct {
	p50, p99, max float64
	errs          int
}

// fixedRate sends rate requests per second (open loop) and reports latency.
func fixedRate(url string, rate int, d time.Duration) latencies {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var mu sync.Mutex
	var ms []float64
	errs := 0
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		wg.Go(func() {
			start := time.Now()
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "bench.test"
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		})
	}
	wg.Wait()
	slices.Sort(ms)
	if len(ms) == 0 {
		return latencies{errs: errs}
	}
	return latencies{p50: ms[len(ms)/2], p99: ms[len(ms)*99/100], max: ms[len(ms)-1], errs: errs}
}

// rss returns a process's resident memory in MiB.
func rss(pid int) float64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

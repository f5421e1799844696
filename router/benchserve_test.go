package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// TestMain doubles as the router process of bench/router: with
// SKIFF_ROUTER_BENCH set (JSON, see benchSpec) the test binary serves one
// app instead of running tests. This keeps the benchmark driver free of any
// import of this package (only cmd/ wires packages together).
func TestMain(m *testing.M) {
	if spec := os.Getenv("SKIFF_ROUTER_BENCH"); spec != "" {
		if err := benchServe(spec); err != nil {
			fmt.Fprintln(os.Stderr, "router bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// benchSpec is what bench/router asks the router process to do.
type benchSpec struct {
	HTTP, HTTPS  string        // listen addresses
	Upstream     string        // the app instance
	Upstream2    string        // with Swaps: deploys alternate between the two
	Swaps        int           // deploys to run after a 2 s pause
	SwapInterval time.Duration // between deploys
	Cert, Key    string        // PEM files of the default certificate
	Data         string        // logs and TLS state
	CPUProfile   string        // written until the process stops
}

func benchServe(specJSON string) error {
	var s benchSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		return err
	}
	if s.CPUProfile != "" {
		f, err := os.Create(s.CPUProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := New(Config{BaseDomain: "skiff.bench", LogDir: filepath.Join(s.Data, "logs"), TLSDir: filepath.Join(s.Data, "tls")}, log)
	if err != nil {
		return err
	}
	if err := r.SetApp(skiff.AppRoute{AppID: "bench", Name: "bench", Domains: []string{"bench.test"}, NoRedirect: true}); err != nil {
		return err
	}
	if err := r.Deploy(context.Background(), "bench", []string{s.Upstream}); err != nil {
		return err
	}
	certPEM, err := os.ReadFile(s.Cert)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(s.Key)
	if err != nil {
		return err
	}
	// The default certificate: wrk sends the IP address as server name.
	if err := r.SetDefaultCertificate(append(certPEM, keyPEM...)); err != nil {
		return err
	}
	if os.Getenv("SKIFF_BENCH_RAW") == "off" { // an experiment: net's own reads and writes
		rawSyscalls = false
	}
	if os.Getenv("SKIFF_BENCH_SHUTDOWN") == "off" { // an experiment: Close without the raw shutdown
		rawShutdown = false
	}
	if os.Getenv("SKIFF_BENCH_BARE") == "off" { // an experiment: connections accepted by net
		bareAccept = false
	}
	if os.Getenv("SKIFF_BENCH_H2BATCH") == "off" { // an experiment: HTTP/2 writes handed to TLS as they come
		h2Batch = false
	}
	if os.Getenv("SKIFF_BENCH_LAZY") == "off" { // an experiment: every read deadline set exactly
		lazyDeadlines = false
	}
	listen := Listen
	if os.Getenv("SKIFF_BENCH_LISTEN") == "plain" { // an experiment: Listen without TCP_DEFER_ACCEPT
		listen = func(addr string) (net.Listener, error) {
			lc := net.ListenConfig{KeepAlive: -1}
			return lc.Listen(context.Background(), "tcp", addr)
		}
	}
	hl, err := listen(s.HTTP)
	if err != nil {
		return err
	}
	tl, err := listen(s.HTTPS)
	if err != nil {
		return err
	}
	go r.ServeTLS(tl)
	if s.Swaps > 0 && s.Upstream2 != "" {
		go func() {
			time.Sleep(2 * time.Second)
			for i := range s.Swaps {
				to := s.Upstream
				if i%2 == 0 {
					to = s.Upstream2
				}
				start := time.Now()
				err := r.Deploy(context.Background(), "bench", []string{to})
				fmt.Fprintf(os.Stderr, "deploy %d to %s: %v in %v\n", i+1, to, err, time.Since(start).Round(time.Millisecond))
				time.Sleep(s.SwapInterval)
			}
		}()
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		if os.Getenv("SKIFF_BENCH_METRICS") != "" {
			printRuntimeMetrics(os.Getenv("SKIFF_BENCH_METRICS"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	}()
	return r.Serve(hl)
}

// printRuntimeMetrics writes what the Go runtime saw over the router
// process's life to stderr (SKIFF_BENCH_METRICS=<label>): GC cycles and
// pauses, bytes allocated, and how long runnable goroutines waited for a
// thread (the scheduler's share of a request's latency).
func printRuntimeMetrics(label string) {
	names := []string{"/gc/cycles/total:gc-cycles", "/gc/heap/allocs:bytes", "/gc/heap/allocs:objects",
		"/sched/pauses/total/gc:seconds", "/sched/latencies:seconds", "/sched/gomaxprocs:threads"}
	ss := make([]metrics.Sample, len(names))
	for i, n := range names {
		ss[i].Name = n
	}
	metrics.Read(ss)
	out := label + ":"
	for _, s := range ss {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			out += fmt.Sprintf(" %s=%d", s.Name, s.Value.Uint64())
		case metrics.KindFloat64Histogram:
			h := s.Value.Float64Histogram()
			out += fmt.Sprintf(" %s[n=%d p50=%s p99=%s p999=%s max=%s]", s.Name, histCount(h), histQ(h, 0.5), histQ(h, 0.99), histQ(h, 0.999), histQ(h, 1))
		}
	}
	fmt.Fprintln(os.Stderr, out)
}

func histCount(h *metrics.Float64Histogram) uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// histQ is the upper bound of the bucket holding quantile q.
func histQ(h *metrics.Float64Histogram, q float64) time.Duration {
	n := histCount(h)
	if n == 0 {
		return 0
	}
	want := uint64(q * float64(n))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= want && c > 0 {
			if math.IsInf(h.Buckets[i+1], 1) {
				return time.Duration(h.Buckets[i] * 1e9)
			}
			return time.Duration(h.Buckets[i+1] * 1e9)
		}
	}
	return time.Duration(h.Buckets[len(h.Buckets)-1] * 1e9)
}

package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
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
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	}()
	return r.Serve(hl)
}

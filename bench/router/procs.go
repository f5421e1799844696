package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/router"
)

// upstream is the app every proxy forwards to: fixed bodies with explicit
// Content-Length.
func upstream(args []string) error {
	fs := newFlags("upstream")
	addr := fs.String("addr", "127.0.0.1:18080", "listen address")
	fs.Parse(args)
	small := []byte(strings.Repeat("s", 1024))
	big := []byte(strings.Repeat("b", 1<<20))
	mux := http.NewServeMux()
	body := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
		}
	}
	mux.HandleFunc("/small", body(small))
	mux.HandleFunc("/1m", body(big))
	mux.HandleFunc("/up", body([]byte("ok")))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go stopOnSignal(func() { srv.Close() })
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// skiffRouter runs skiff's router with one app, bench.test, on the upstream.
func skiffRouter(args []string) error {
	fs := newFlags("skiff")
	httpAddr := fs.String("http", "127.0.0.1:19080", "HTTP listen address")
	httpsAddr := fs.String("https", "127.0.0.1:19443", "HTTPS listen address")
	up := fs.String("upstream", "127.0.0.1:18080", "upstream address")
	cert := fs.String("cert", "", "PEM certificate")
	key := fs.String("key", "", "PEM key")
	data := fs.String("data", "", "directory for logs and TLS state")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here until the process stops")
	up2 := fs.String("upstream2", "", "second upstream: with -swaps, deploys alternate between the two")
	swaps := fs.Int("swaps", 0, "number of deploys to run, alternating upstreams")
	swapEvery := fs.Duration("swap-interval", 500*time.Millisecond, "pause between deploys")
	fs.Parse(args)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := router.New(router.Config{BaseDomain: "skiff.bench", LogDir: filepath.Join(*data, "logs"), TLSDir: filepath.Join(*data, "tls")}, log)
	if err != nil {
		return err
	}
	if err := r.SetApp(skiff.AppRoute{AppID: "bench", Name: "bench", Domains: []string{"bench.test"}, NoRedirect: true}); err != nil {
		return err
	}
	if err := r.Deploy(context.Background(), "bench", []string{*up}); err != nil {
		return err
	}
	certPEM, err := os.ReadFile(*cert)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(*key)
	if err != nil {
		return err
	}
	// The default certificate: wrk sends the IP address as server name.
	if err := r.SetDefaultCertificate(append(certPEM, keyPEM...)); err != nil {
		return err
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	tl, err := net.Listen("tcp", *httpsAddr)
	if err != nil {
		return err
	}
	go r.ServeTLS(tl)
	if *swaps > 0 && *up2 != "" {
		go func() {
			time.Sleep(2 * time.Second)
			for i := range *swaps {
				to := *up
				if i%2 == 0 {
					to = *up2
				}
				start := time.Now()
				err := r.Deploy(context.Background(), "bench", []string{to})
				fmt.Fprintf(os.Stderr, "deploy %d to %s: %v in %v\n", i+1, to, err, time.Since(start).Round(time.Millisecond))
				time.Sleep(*swapEvery)
			}
		}()
	}
	go stopOnSignal(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Shutdown(ctx)
	})
	return r.Serve(hl)
}

func stopOnSignal(stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
	stop()
}

// writeCert makes the ECDSA P-256 certificate all proxies serve.
func writeCert(dir string) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.test"},
		DNSNames: []string{"bench.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

// cpuTicks returns utime+stime (clock ticks) of pid and all its descendants.
func cpuTicks(pid int) int64 {
	children := map[int][]int{}
	var total int64
	stats := map[int][]string{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		stats[p] = f
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var walk func(int)
	walk = func(p int) {
		if f, ok := stats[p]; ok {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			total += u + s
		}
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return total
}

// waitUp waits until url answers.
func waitUp(url string, host string) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("%s did not come up", url)
}

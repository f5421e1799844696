package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// upstream is the app every proxy forwards to: fixed bodies with explicit
// Content-Length.
func upstream(args []string) error {
	fs := newFlags("upstream")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	small := []byte(strings.Repeat("s", 1024))
	big := []byte(strings.Repeat("b", 1<<20))
	mux := http.NewServeMux()
	body := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b)
		}
	}
	mux.HandleFunc("/small", body(small))
	mux.HandleFunc("/1m", body(big))
	mux.HandleFunc("/up", body([]byte("ok")))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go stopOnSignal(func() { _ = srv.Close() })
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// routerBinary builds the router package's test binary, whose TestMain
// serves as the router process (see router/benchserve_test.go): the driver
// itself imports nothing of skiff.
func routerBinary(outDir string) (string, error) {
	bin := filepath.Join(outDir, "bin", "router.test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, "./router")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the router (run from the repository root): %w", err)
	}
	return bin, nil
}

// routerSpec is router/benchserve_test.go's benchSpec.
type routerSpec struct {
	HTTP, HTTPS  string
	Upstream     string
	Upstream2    string        `json:",omitempty"`
	Swaps        int           `json:",omitempty"`
	SwapInterval time.Duration `json:",omitempty"`
	Cert, Key    string
	Data         string
	CPUProfile   string `json:",omitempty"`
}

// startRouter runs the router process in front of s.Upstream, on free
// ports unless s names them; the spec it returns has the addresses.
func startRouter(bin string, s routerSpec, env ...string) (*exec.Cmd, routerSpec) {
	if s.HTTP == "" {
		s.HTTP, s.HTTPS = freeAddr(), freeAddr()
	}
	js, _ := json.Marshal(s)
	return start(append([]string{"GOMAXPROCS=2", "SKIFF_ROUTER_BENCH=" + string(js)}, env...), bin), s
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on now
// (the kernel's choice), for a process about to listen there: no port of
// the benchmark is fixed, so it runs beside anything else on the machine.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startUpstream runs the upstream app on a free port and waits for it.
func startUpstream(self string) (*exec.Cmd, string, error) {
	addr := freeAddr()
	cmd := start(nil, self, "upstream", "-addr", addr)
	if err := waitUp("http://"+addr+"/up", ""); err != nil {
		stop(cmd)
		return nil, "", err
	}
	return cmd, addr, nil
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

// procStat is what the benchmark reads of a proxy's process tree: CPU
// time (utime and stime, clock ticks) and context switches (voluntary, as
// when a thread sleeps in futex or epoll_wait; involuntary, preempted),
// summed over its processes and their threads.
type procStat struct {
	user, sys           int64
	voluntary, involunt int64
}

func (a procStat) minus(b procStat) procStat {
	return procStat{a.user - b.user, a.sys - b.sys, a.voluntary - b.voluntary, a.involunt - b.involunt}
}

// readProcStat reads pid's and its descendants' procStat.
func readProcStat(pid int) procStat {
	children := map[int][]int{}
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
	var st procStat
	var walk func(int)
	walk = func(p int) {
		if f, ok := stats[p]; ok {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			st.user += u
			st.sys += s
			tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(p) + "/task")
			for _, t := range tasks {
				b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/task/" + t.Name() + "/status")
				for line := range strings.Lines(string(b)) {
					k, v, _ := strings.Cut(line, ":")
					n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
					switch k {
					case "voluntary_ctxt_switches":
						st.voluntary += n
					case "nonvoluntary_ctxt_switches":
						st.involunt += n
					}
				}
			}
		}
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return st
}

// waitUp waits until url answers.
func waitUp(url string, host string) error { return waitUpSlow(url, host, 15*time.Second) }

// waitUpSlow waits until url answers, for up to d.
func waitUpSlow(url string, host string, d time.Duration) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("%s did not come up", url)
}

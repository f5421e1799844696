package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRefProxies: both models of the reference proxy relay keep-alive,
// pipelined and closing requests with the fields the benchmark's nginx
// sends, a response whose head and body come apart, and refuse what they
// do not serve by closing, not by answering wrongly.
func TestRefProxies(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf("%s %s host=%s xff=%s proto=%s real=%s fhost=%s id=%s start=%t",
			r.Method, r.URL.Path, r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Real-Ip"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Request-Id"),
			strings.HasPrefix(r.Header.Get("X-Request-Start"), "t="))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.URL.Path == "/slow" { // the head first, the body later
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
		_, _ = io.WriteString(w, body)
	}))
	defer app.Close()
	up, err := net.ResolveTCPAddr("tcp4", app.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"loop", "goroutines"} {
		t.Run(model, func(t *testing.T) {
			logFile, err := os.Create(filepath.Join(t.TempDir(), "access.log"))
			if err != nil {
				t.Fatal(err)
			}
			addr := freeAddr()
			serve := map[string]func(string, *net.TCPAddr, *os.File) error{"loop": serveLoops, "goroutines": serveGoroutines}[model]
			go func() { _ = serve(addr, up, logFile) }() // ends with the test binary
			if err := waitUp("http://"+addr+"/up", "bench.test"); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			ids := map[string]bool{}
			get := func(want string) *http.Response {
				t.Helper()
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				body := string(b)
				if !strings.HasPrefix(body, want) || !strings.Contains(body, "host=bench.test xff=127.0.0.1 proto=http real=127.0.0.1 fhost=bench.test") || !strings.HasSuffix(body, "start=true") {
					t.Errorf("the app received %q, want %q… with the forwarded fields", body, want)
				}
				id := body[strings.Index(body, "id=")+3 : strings.Index(body, " start=")]
				if id == "" || ids[id] {
					t.Errorf("request id %q: empty or seen before (%v)", id, ids)
				}
				ids[id] = true
				return resp
			}
			// Two pipelined in one write, a split response, then one that closes.
			fmt.Fprint(c, "GET /a HTTP/1.1\r\nHost: bench.test\r\n\r\nGET /b HTTP/1.1\r\nHost: bench.test\r\nAccept: */*\r\n\r\n")
			get("GET /a")
			get("GET /b")
			fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: bench.test\r\n\r\n")
			get("GET /slow")
			fmt.Fprint(c, "GET /c HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
			if resp := get("GET /c"); !resp.Close {
				t.Errorf("Connection: close asked, the response says %q", resp.Header.Get("Connection"))
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after Connection: close: read %d, %v; want EOF", n, err)
			}

			// A body is not served: the connection ends without an answer.
			c2, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			fmt.Fprint(c2, "POST /d HTTP/1.1\r\nHost: bench.test\r\nContent-Length: 2\r\n\r\nhi")
			_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, err := io.ReadAll(c2); len(b) != 0 || err != nil {
				t.Errorf("a request with a body: got %q, %v; want the connection closed", b, err)
			}
		})
	}
}

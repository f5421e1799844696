package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// Concurrent requests during repeated swaps: zero errors (F2 at unit scale).
func TestZeroDowntimeSwaps(t *testing.T) {
	tr := newTestRouter(t, nil)
	route := skiff.AppRoute{AppID: "id-app", Name: "app", Health: skiff.HealthCheck{Path: "/up", Interval: 20 * time.Millisecond}}
	tr.addApp(t, route, startBackend(t, echo("v0")))

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			c := tr.client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://app.skiff.test/work")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	var old []*testBackend
	for i := 1; i <= 20; i++ {
		next := []*testBackend{startBackend(t, echo(fmt.Sprint("v", i))), startBackend(t, echo(fmt.Sprint("v", i)))}
		if err := tr.Deploy(context.Background(), route.AppID, []string{next[0].addr, next[1].addr}); err != nil {
			t.Fatal(err)
		}
		for _, b := range old { // Deploy returned: the old instances are drained, stop them
			b.srv.Close()
		}
		old = next
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests during 20 swaps, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed, first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 200 {
		t.Fatalf("only %d requests", ok.Load())
	}
}

// A backend that fails its health check changes nothing.
func TestFailedHealthCheckKeepsOldRelease(t *testing.T) {
	tr := newTestRouter(t, nil)
	hc := skiff.HealthCheck{Path: "/up", Interval: 20 * time.Millisecond, Deadline: 300 * time.Millisecond}
	tr.addApp(t, skiff.AppRoute{Name: "app", Health: hc}, startBackend(t, echo("old")))
	sick := startBackend(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	notFound := startBackend(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
	for name, addrs := range map[string][]string{
		"500":           {sick.addr},
		"refused":       {dead},
		"404 with path": {notFound.addr},
		"one of two":    {startBackend(t, echo("new")).addr, sick.addr},
	} {
		err := tr.Deploy(context.Background(), "id-app", addrs)
		if skiff.ErrorCode(err) != skiff.EUNAVAILABLE || !strings.Contains(err.Error(), "health check") {
			t.Errorf("%s: Deploy = %v, want a failed health check", name, err)
		}
		if resp, _ := get(t, tr.client(), "http://app.skiff.test/"); resp.Header.Get("X-Instance") != "old" {
			t.Errorf("%s: traffic moved to %q", name, resp.Header.Get("X-Instance"))
		}
	}
	// Without a path, any answer below 500 counts (the port speaks HTTP).
	tr.SetApp(skiff.AppRoute{AppID: "id-app", Name: "app"})
	if err := tr.Deploy(context.Background(), "id-app", []string{notFound.addr}); err != nil {
		t.Errorf("default check on a 404 app: %v", err)
	}
}

// Deploy waits for in-flight requests on the old instances, then returns.
func TestDrainWaitsForInflight(t *testing.T) {
	tr := newTestRouter(t, nil)
	release := make(chan struct{})
	started := make(chan struct{})
	old := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
			io.WriteString(w, "done")
		}
	})
	tr.addApp(t, skiff.AppRoute{Name: "app"}, old)
	got := make(chan string)
	go func() {
		_, body := get(t, tr.client(), "http://app.skiff.test/slow")
		got <- body
	}()
	<-started
	deployed := make(chan error)
	next := startBackend(t, echo("new"))
	go func() { deployed <- tr.Deploy(context.Background(), "id-app", []string{next.addr}) }()
	waitFor(t, 5*time.Second, "the switch", func() bool {
		return tr.lookupID("id-app").state.pool.Load().backends[0].addr == next.addr
	})
	if resp, _ := get(t, tr.client(), "http://app.skiff.test/"); resp.Header.Get("X-Instance") != "new" {
		t.Error("new requests did not go to the new instance during the drain")
	}
	select {
	case err := <-deployed:
		t.Fatalf("Deploy returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if err := <-deployed; err != nil {
		t.Fatal(err)
	}
	if body := <-got; body != "done" {
		t.Errorf("in-flight request got %q", body)
	}
}

// After the drain grace, what is left on the old instance is cut.
func TestDrainCutsAfterGrace(t *testing.T) {
	tr := newTestRouter(t, nil)
	old := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			for {
				if _, err := io.WriteString(w, "data: x\n\n"); err != nil {
					return
				}
				http.NewResponseController(w).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	tr.addApp(t, skiff.AppRoute{AppID: "id-app", Name: "app", DrainTimeout: 300 * time.Millisecond}, old)
	resp, err := tr.client().Get("http://app.skiff.test/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	br.ReadString('\n')
	start := time.Now()
	if err := tr.Deploy(context.Background(), "id-app", []string{startBackend(t, echo("new")).addr}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("Deploy took %v with a 300ms grace", d)
	}
	done := make(chan error)
	go func() { _, err := io.Copy(io.Discard, br); done <- err }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the stream on the old instance was not cut")
	}
}

// A refused connection is retried on another instance; an instance that keeps
// failing is left out.
func TestRetryAndPassiveHealth(t *testing.T) {
	tr := newTestRouter(t, nil)
	good := startBackend(t, echo("good"))
	bad := startBackend(t, echo("bad"))
	tr.addApp(t, skiff.AppRoute{Name: "app"}, good, bad)
	bad.srv.Close() // the instance dies after the deploy
	c := tr.client()
	for i := range 30 {
		resp, _ := get(t, c, "http://app.skiff.test/")
		if resp.StatusCode != 200 || resp.Header.Get("X-Instance") != "good" {
			t.Fatalf("request %d: %d from %q", i, resp.StatusCode, resp.Header.Get("X-Instance"))
		}
	}
	var badB *backend
	for _, b := range tr.lookupID("id-app").state.pool.Load().backends {
		if b.addr == bad.addr {
			badB = b
		}
	}
	if badB.up(time.Now().UnixNano()) {
		t.Error("the dead instance is still in rotation")
	}
	if badB.fails.Load() > failThreshold+1 {
		t.Errorf("the dead instance was tried %d times; it should be left out after %d", badB.fails.Load(), failThreshold)
	}
}

// A retried request keeps its body (it never reached the refusing instance).
func TestRetryKeepsBody(t *testing.T) {
	tr := newTestRouter(t, nil)
	good := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) })
	bad := startBackend(t, echo("bad"))
	tr.addApp(t, skiff.AppRoute{Name: "app"}, good, bad)
	bad.srv.Close()
	for range 4 {
		resp, err := tr.client().Post("http://app.skiff.test/", "text/plain", strings.NewReader("payload"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "payload" {
			t.Fatalf("body %q", body)
		}
	}
}

// Least connections: a busy instance gets no new requests while another is idle.
func TestLeastConnections(t *testing.T) {
	tr := newTestRouter(t, nil)
	release := make(chan struct{})
	var slowHits atomic.Int64
	slow := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		} else if r.URL.Path == "/fast" {
			slowHits.Add(1)
		}
	})
	fast := startBackend(t, echo("fast"))
	tr.addApp(t, skiff.AppRoute{Name: "app"}, slow, fast)
	c := tr.client()
	// Occupy the slow one (the first slow request may land on either).
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { get(t, c, "http://app.skiff.test/slow") })
	}
	var slowB *backend
	for _, b := range tr.lookupID("id-app").state.pool.Load().backends {
		if b.addr == slow.addr {
			slowB = b
		}
	}
	waitFor(t, 5*time.Second, "a request in flight on the slow instance", func() bool { return slowB.inflight.Load() > 0 })
	for range 20 {
		get(t, c, "http://app.skiff.test/fast")
	}
	close(release)
	wg.Wait()
	if slowHits.Load() > 10 {
		t.Errorf("the busy instance got %d of 20 requests", slowHits.Load())
	}
}

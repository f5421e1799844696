package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
)

// deadlineConn counts the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	sets []time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.sets = append(c.sets, t)
	return nil
}

// A deadline moves only past the slack (timeout/16, at most a second),
// never stays later than asked, and is set again after its owner's other
// changes (forget) or another's (moved).
func TestLazyDeadline(t *testing.T) {
	c := &deadlineConn{}
	var d lazyDeadline
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name    string
		now     time.Time
		timeout time.Duration
		moved   uint32
		forget  bool
		set     bool
	}{
		{"the first", t0, 30 * time.Second, 0, false, true},
		{"a microsecond later", t0.Add(time.Microsecond), 30 * time.Second, 0, false, false},
		{"within the second's slack", t0.Add(999 * time.Millisecond), 30 * time.Second, 0, false, false},
		{"past it", t0.Add(1001 * time.Millisecond), 30 * time.Second, 0, false, true},
		{"a shorter timeout: earlier", t0.Add(1002 * time.Millisecond), 10 * time.Second, 0, false, true},
		{"slack of a short timeout is its 16th", t0.Add(1002*time.Millisecond + 600*time.Millisecond), 10 * time.Second, 0, false, false},
		{"past its 16th", t0.Add(1002*time.Millisecond + 700*time.Millisecond), 10 * time.Second, 0, false, true},
		{"moved by another", t0.Add(1702 * time.Millisecond), 10 * time.Second, 1, false, true},
		{"then lazy again", t0.Add(1703 * time.Millisecond), 10 * time.Second, 1, false, false},
		{"after forget", t0.Add(1704 * time.Millisecond), 10 * time.Second, 1, true, true},
	}
	for _, s := range steps {
		if s.forget {
			d.forget()
		}
		before := len(c.sets)
		d.set(c, s.now, s.timeout, s.moved)
		if got := len(c.sets) > before; got != s.set {
			t.Fatalf("%s: set %v, want %v", s.name, got, s.set)
		}
		if want := s.now.Add(s.timeout); c.sets[len(c.sets)-1].After(want) || want.Sub(c.sets[len(c.sets)-1]) > min(s.timeout/16, time.Second) {
			t.Fatalf("%s: deadline %v for %v", s.name, c.sets[len(c.sets)-1], want)
		}
	}
}

// Through the router: after many quick requests on one kept-alive client
// connection (one pooled connection to the app, whose deadlines were left
// in place), a slow answer within the app's timeout still arrives, a hung
// one is a 504 on time, and the idle client connection is closed after
// the idle timeout, not later.
func TestLazyDeadlinesKeepTimeouts(t *testing.T) {
	tr := newTestRouter(t, func(c *Config) { c.IdleTimeout = 1600 * time.Millisecond })
	tr.addApp(t, skiff.AppRoute{Name: "app", ResponseTimeout: 400 * time.Millisecond}, startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			time.Sleep(250 * time.Millisecond)
		case "/hang":
			<-r.Context().Done()
		}
	}))
	conn, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	do := func(path string) (int, time.Duration) {
		t.Helper()
		start := time.Now()
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: app.skiff.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for round := range 3 {
		for range 200 {
			if code, _ := do("/quick"); code != http.StatusOK {
				t.Fatalf("quick: %d", code)
			}
		}
		if code, d := do("/slow"); code != http.StatusOK {
			t.Errorf("round %d: a 250 ms answer within the 400 ms timeout: %d after %v", round, code, d)
		}
	}
	for range 200 {
		do("/quick")
	}
	if code, d := do("/hang"); code != http.StatusGatewayTimeout || d < 350*time.Millisecond || d > 2*time.Second {
		t.Errorf("a hung app: %d after %v, want 504 after about 400 ms", code, d)
	}
	for range 200 {
		do("/quick")
	}
	start := time.Now()
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %v, want about the 1.6 s idle timeout", d)
	}
}

package skifftest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// exitStatus is how a fake process ended, worded as runc's are.
type exitStatus struct {
	code   int // exit code, or 128+signal
	signal int // the signal that killed it, 0 if it exited
}

func (e exitStatus) String() string {
	if e.signal != 0 {
		return fmt.Sprintf("killed by signal %d", e.signal)
	}
	return fmt.Sprintf("exited with status %d", e.code)
}

// process is one run of a program: what a container's init is to runtime.
type process struct {
	term, kill chan struct{} // closed to deliver SIGTERM, SIGKILL
	termOnce   sync.Once
	killOnce   sync.Once
	done       chan struct{} // closed when the program has ended
	status     exitStatus    // set before done closes

	mu   sync.Mutex
	addr string // where serve listens, once it does
}

// stdio are a process's streams; the writers must be safe for concurrent
// use by one process.
type stdio struct {
	in          io.Reader
	out, errOut io.Writer
}

// start runs args in the background with env (KEY=VALUE; name names
// the instance, "web.1").
func start(args []string, env []string, name string, std stdio) *process {
	p := &process{term: make(chan struct{}), kill: make(chan struct{}), done: make(chan struct{})}
	go func() {
		p.status = p.run(args, env, name, std)
		close(p.done)
	}()
	return p
}

// ended reports whether the program has ended.
func (p *process) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) sigterm() { p.termOnce.Do(func() { close(p.term) }) }
func (p *process) sigkill() { p.killOnce.Do(func() { close(p.kill) }) }

// listening returns serve's address, "" before it listens.
func (p *process) listening() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

var (
	byTERM = exitStatus{code: 128 + 15} // what skiff-init reports for a Go program that SIGTERM ended
	byKILL = exitStatus{code: 128 + 9, signal: 9}
)

func (p *process) run(args, env []string, process string, std stdio) exitStatus {
	arg := func(i int) string {
		if len(args) > i {
			return args[i]
		}
		return ""
	}
	// A signal ends every program but ignore-term at once.
	wait := func(d time.Duration) (exitStatus, bool) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return exitStatus{}, false
		case <-p.term:
			return byTERM, true
		case <-p.kill:
			return byKILL, true
		}
	}
	switch arg(0) {
	case "serve":
		return p.serve(env, process, std)
	case "exit":
		n, _ := strconv.Atoi(arg(1))
		fmt.Fprintln(std.out, "exiting", n)
		return exitStatus{code: n}
	case "sleep":
		d, _ := time.ParseDuration(arg(1))
		fmt.Fprintln(std.out, "sleeping")
		if st, ended := wait(d); ended {
			return st
		}
		return exitStatus{}
	case "ignore-term":
		fmt.Fprintln(std.out, "ignoring SIGTERM")
		<-p.kill
		return byKILL
	case "stdin":
		copied := make(chan struct{})
		go func() {
			if std.in != nil {
				copyLines(std.out, std.in)
			}
			close(copied)
		}()
		select {
		case <-copied:
			return exitStatus{}
		case <-p.term:
			return byTERM
		case <-p.kill:
			return byKILL
		}
	default:
		fmt.Fprintln(std.errOut, "unknown command")
		return exitStatus{code: 2}
	}
}

// copyLines copies r to w, as a process's own writes would arrive.
func copyLines(w io.Writer, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n]) // a process writing to a closed stream goes on
		}
		if err != nil {
			return
		}
	}
}

// serve is the probe's HTTP server, on 127.0.0.1:0 instead of $PORT in a
// network namespace of its own.
func (p *process) serve(env []string, process string, std stdio) exitStatus {
	port := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok {
			port = v
		}
	}
	fmt.Fprintln(std.out, "listening on "+port)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(std.out, err)
		return exitStatus{code: 1}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", process)
	})
	mux.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, r.RemoteAddr) //nolint:gosec // G705: plain text for tests, as the probe answers
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		for _, e := range env {
			fmt.Fprintf(w, "%q\n", e)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	p.mu.Lock()
	p.addr = l.Addr().String()
	p.mu.Unlock()
	select {
	case err := <-served:
		fmt.Fprintln(std.out, err)
		return exitStatus{code: 1}
	case <-p.term:
		// A Go program without a SIGTERM handler dies at once: requests
		// in flight are cut, as they are in a container.
		_ = srv.Close()
		return byTERM
	case <-p.kill:
		_ = srv.Close()
		return byKILL
	}
}

// killOn adapts a context to the process's signals: a cancelled run is
// killed.
func (p *process) killOn(ctx context.Context) (stop func()) {
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			p.sigkill()
		case <-stopped:
		case <-p.done:
		}
	}()
	return func() { close(stopped) }
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

package router

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWriter records its writes; each waits until the test lets it go.
type gateWriter struct {
	mu      sync.Mutex
	writes  []string
	ptrs    []*byte       // where each write's bytes were
	gate    chan struct{} // one receive per write
	entered chan struct{}
	err     error
}

func newGateWriter() *gateWriter {
	return &gateWriter{gate: make(chan struct{}, 100), entered: make(chan struct{}, 100)}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	g.writes = append(g.writes, string(p))
	g.ptrs = append(g.ptrs, &p[0])
	return len(p), nil
}

func (g *gateWriter) got() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.writes...)
}

func noBound(time.Time) error { return nil }

// What is written while a write is under way goes out in one write after it.
func TestBatchWriterGathers(t *testing.T) {
	g := newGateWriter()
	b := newBatchWriter(g, noBound)
	for _, s := range []string{"HEADERS", "DATA", "HEADERS2", "DATA2"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
		if s == "HEADERS" {
			<-g.entered // the flusher holds the first write
		}
	}
	g.gate <- struct{}{}
	<-g.entered
	g.gate <- struct{}{}
	b.close()
	if got := g.got(); strings.Join(got, "|") != "HEADERS|DATAHEADERS2DATA2" {
		t.Fatalf("writes %q, want the first alone and the three after it in one", got)
	}
	if _, err := b.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after close: %v", err)
	}
}

// A full buffer makes Write wait for the flusher; a large write with
// nothing pending goes out directly, in one piece.
func TestBatchWriterLimits(t *testing.T) {
	g := newGateWriter()
	b := newBatchWriter(g, noBound)
	big := bytes.Repeat([]byte("b"), batchLimit)
	done := make(chan struct{})
	go func() {
		b.Write(big) // direct: the test's goroutine holds it
		close(done)
	}()
	<-g.entered
	// Pending behind the direct write, up to the limit, then a wait.
	chunk := bytes.Repeat([]byte("c"), batchLimit/32) // small writes, gathered
	for range 32 {
		b.Write(chunk)
	}
	blocked := make(chan struct{})
	go func() {
		b.Write([]byte("over"))
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("a Write past the limit did not wait")
	case <-time.After(100 * time.Millisecond):
	}
	g.gate <- struct{}{} // the direct write ends; a flusher takes the rest
	<-done
	<-g.entered
	g.gate <- struct{}{}
	<-blocked
	<-g.entered
	g.gate <- struct{}{}
	b.close()
	got := g.got()
	if len(got) != 3 || got[0] != string(big) || got[1] != strings.Repeat("c", batchLimit) || got[2] != "over" {
		lens := []int{}
		for _, w := range got {
			lens = append(lens, len(w))
		}
		t.Fatalf("writes of %v bytes, want %d, %d, 4", lens, batchLimit, batchLimit)
	}
	if g.ptrs[0] != &big[0] {
		t.Error("the large write was copied, not written as it was")
	}
}

// A large write behind pending bytes waits for them to be handed on, then
// goes out itself, uncopied, in order.
func TestBatchWriterLargeAfterPending(t *testing.T) {
	g := newGateWriter()
	b := newBatchWriter(g, noBound)
	b.Write([]byte("HEADERS"))
	<-g.entered // the flusher holds it
	big := bytes.Repeat([]byte("d"), batchDirect)
	done := make(chan struct{})
	go func() {
		b.Write(big)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("the large write did not wait for the pending one")
	case <-g.entered:
		t.Fatal("the large write went out before the pending one")
	case <-time.After(100 * time.Millisecond):
	}
	g.gate <- struct{}{}
	<-g.entered
	g.gate <- struct{}{}
	<-done
	b.close()
	got := g.got()
	if len(got) != 2 || got[0] != "HEADERS" || got[1] != string(big) || g.ptrs[1] != &big[0] {
		t.Fatalf("%d writes (%q first), want HEADERS then the large write, uncopied", len(got), got[0])
	}
}

// A failed write fails every Write after it, and nothing more is written.
func TestBatchWriterReportsErrors(t *testing.T) {
	g := newGateWriter()
	g.err = errors.New("broken pipe")
	b := newBatchWriter(g, noBound)
	b.Write([]byte("a"))
	<-g.entered
	b.Write([]byte("b")) // pending when the first fails: dropped
	g.gate <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Write([]byte("c")); err != nil {
			if err.Error() != "broken pipe" {
				t.Fatalf("Write: %v, want the write's error", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Writes kept succeeding after the write failed")
		}
		time.Sleep(time.Millisecond)
	}
	b.close()
	select {
	case <-g.entered:
		t.Fatal("written after the error")
	default:
	}
}

// Bytes written one after another arrive in order, whole, over a real
// connection read slowly (run with -race too).
func TestBatchWriterKeepsOrder(t *testing.T) {
	a, z := net.Pipe()
	defer z.Close()
	b := newBatchWriter(a, a.SetWriteDeadline)
	var want bytes.Buffer
	for i := range 8000 {
		fmt.Fprintf(&want, "frame %d;", i)
	}
	if want.Len() < 2*batchLimit {
		t.Fatalf("the test writes %d bytes, too few to fill the buffer", want.Len())
	}
	got := make(chan []byte)
	go func() {
		var buf bytes.Buffer
		p := make([]byte, 700)
		for buf.Len() < want.Len() {
			n, err := z.Read(p)
			buf.Write(p[:n])
			if err != nil {
				break
			}
			time.Sleep(10 * time.Microsecond)
		}
		got <- buf.Bytes()
	}()
	for i := range 8000 {
		if _, err := b.Write(fmt.Appendf(nil, "frame %d;", i)); err != nil {
			t.Fatal(err)
		}
	}
	b.close()
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		t.Fatalf("%d bytes arrived, want %d in order", len(g), want.Len())
	}
}

// close hands on what is pending, but waits no longer than closeFlush for
// a client that reads nothing.
func TestBatchWriterCloseIsBounded(t *testing.T) {
	closeWithin := func(t *testing.T, b *batchWriter, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		done := make(chan struct{})
		go func() {
			b.close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(d):
			t.Fatalf("close still waiting after %v", d)
		}
		return time.Since(start)
	}
	a, z := net.Pipe() // z is never read
	defer z.Close()
	b := newBatchWriter(a, a.SetWriteDeadline)
	b.Write([]byte("GOAWAY"))
	if took := closeWithin(t, b, 3*closeFlush); took < closeFlush/2 {
		t.Fatalf("close took %v, want about %v (the write's bound)", took, closeFlush)
	}
	// With a client that reads, the pending bytes are written before
	// close returns (the connection is closed right after it).
	a2, z2 := net.Pipe()
	defer z2.Close()
	b2 := newBatchWriter(a2, a2.SetWriteDeadline)
	read := make(chan string)
	go func() {
		p, _ := io.ReadAll(z2)
		read <- string(p)
	}()
	b2.Write([]byte("GOAWAY"))
	closeWithin(t, b2, 3*closeFlush)
	a2.Close()
	if s := <-read; s != "GOAWAY" {
		t.Fatalf("read %q before the close", s)
	}
}

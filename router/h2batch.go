package router

import (
	"io"
	"net"
	"sync"
	"time"
)

// batchWriter gathers an HTTP/2 connection's writes into fewer TLS records
// and write(2)s. Go's HTTP/2 server (x/net/http2) flushes its buffer each
// time its queue of frames runs empty, and a handler hands it a response's
// HEADERS and DATA frames one at a time, each waited for: a small response
// goes out as two records and two writes, and over loopback each write also
// does the receiver's part of TCP (bench/router H2-small, 2026-12-04: 2.9
// writes per request against nginx's 2, one of them to the app). Here a
// write is copied into a buffer and handed on by a goroutine of the
// connection's, started when the buffer fills from empty, which takes
// everything written until it runs: HEADERS and DATA of one response, and
// other streams', in one record and one system call.
//
// A write of batchDirect or more goes out directly, once what is pending
// was handed on: a large body's frames, each as large, gain nothing from
// gathering, and would pay a copy and a goroutine switch each. A full buffer makes Write wait, so a client
// that reads nothing holds at most the limit here. A write's error comes
// back from the next Write (and every one after it), and close hands on
// what is pending first, within closeFlush, so that the server's last
// frames (a GOAWAY) reach the client.
type batchWriter struct {
	w     io.Writer
	bound func(time.Time) error // the write deadline of w's connection

	mu      sync.Mutex
	cond    sync.Cond // on mu: the flusher made room or stopped
	buf     []byte    // written, not handed on yet (nil when idle)
	spare   []byte    // the other buffer, while the flusher writes one
	running bool      // a flusher (or a direct write) is on w
	err     error     // the first of w's write errors
	closed  bool
}

// batchLimit is the most a connection's buffer holds: two TLS records.
const batchLimit = 32 << 10

// batchDirect is the least write that goes out directly when nothing is
// pending: x/net/http2's own buffer's size, so a whole buffer or a frame
// larger than it.
const batchDirect = 4 << 10

// closeFlush bounds the hand-on of pending bytes at close.
const closeFlush = time.Second

func newBatchWriter(w io.Writer, bound func(time.Time) error) *batchWriter {
	b := &batchWriter{w: w, bound: bound}
	b.cond.L = &b.mu
	return b
}

func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A full buffer waits for room; a large write for what is pending to
	// be handed on, then goes out itself.
	for b.err == nil && !b.closed && (len(b.buf) >= batchLimit || len(p) >= batchDirect && b.running) {
		b.cond.Wait()
	}
	switch {
	case b.err != nil:
		return 0, b.err
	case b.closed:
		return 0, net.ErrClosed
	case len(p) >= batchDirect: // and nothing pending
		// Nothing pending: write it as it is, here, and become the
		// flusher for what others write meanwhile.
		b.running = true
		b.mu.Unlock()
		n, err := b.w.Write(p)
		b.mu.Lock()
		if err != nil && b.err == nil {
			b.err = err
		}
		b.handOn()
		return n, err
	}
	if b.buf == nil {
		b.buf = getBatchBuf()
	}
	b.buf = append(b.buf, p...)
	if !b.running {
		b.running = true
		go b.flush()
	}
	return len(p), nil
}

// handOn, with mu held by the one that ran on w, starts a flusher for
// what was written meanwhile, or ends the run.
func (b *batchWriter) handOn() {
	if len(b.buf) > 0 && b.err == nil {
		go b.flush()
		return
	}
	b.running = false
	b.cond.Broadcast()
}

// flush hands the buffer on until it is empty.
func (b *batchWriter) flush() {
	b.mu.Lock()
	for len(b.buf) > 0 && b.err == nil {
		out := b.buf
		b.buf, b.spare = b.spare[:0], nil
		b.mu.Unlock()
		_, err := b.w.Write(out)
		b.mu.Lock()
		if err != nil && b.err == nil {
			b.err = err
		}
		b.spare = out
		b.cond.Broadcast() // room
	}
	// Idle: the buffers go back to the pool (an idle connection holds
	// none); what an error left unwritten is dropped with them.
	putBatchBuf(b.buf)
	putBatchBuf(b.spare)
	b.buf, b.spare = nil, nil
	b.running = false
	b.cond.Broadcast()
	b.mu.Unlock()
}

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getBatchBuf() []byte { return (*batchBufs.Get().(*[]byte))[:0] }

func putBatchBuf(b []byte) {
	if b != nil && cap(b) <= 2*batchLimit {
		batchBufs.Put(&b)
	}
}

// close refuses later writes and waits, within closeFlush, until what is
// pending was handed on.
func (b *batchWriter) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.running {
		_ = b.bound(time.Now().Add(closeFlush)) // fails only on a closed connection, whose writes fail at once
	}
	for b.running {
		b.cond.Wait()
	}
}

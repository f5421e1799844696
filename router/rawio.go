package router

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawTCP does a TCP connection's reads and writes as raw system calls on
// its descriptor (unix.RawSyscall: no entersyscall and exitsyscall around
// them), waiting for readiness and honouring deadlines through the
// runtime's poller as net does (syscall.RawConn's Read and Write). The
// descriptor is non-blocking, so a call never sleeps in the kernel; but a
// write over loopback does the receiver's part of TCP too and takes tens
// of microseconds, and Go's scheduler takes the processor of a goroutine
// in a system call that long (when others wait to run) and hands it to
// another thread, which it wakes, while the first thread then parks: two
// context switches and a thread more, per such call, on a machine whose
// cores the proxy shares with its clients and apps. As raw calls they are
// the processor's work like any other, as in an event loop like nginx's.
type rawTCP struct {
	*net.TCPConn
	io rawIO
}

// rawIO does the raw reads and writes on a descriptor behind rc, for
// rawTCP and bareConn; its errors are the bare ones (the caller wraps them).
type rawIO struct {
	rc syscall.RawConn

	rmu     sync.Mutex // one Read at a time owns rp, rn, rerr
	rp      []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wmu     sync.Mutex // the same for Write
	wp      []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
}

func (r *rawIO) init(rc syscall.RawConn) {
	r.rc = rc
	r.readFn = r.readOnce
	r.writeFn = r.writeOnce
}

// rawSyscalls turns rawTCP on (bench/router's variants turn it off, to
// measure the router without it in the same run).
var rawSyscalls = true

// withRawIO returns c as a rawTCP when it is a TCP connection (and
// rawSyscalls is on), else c itself.
func withRawIO(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || !rawSyscalls {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCP{TCPConn: tc}
	r.io.init(rc)
	return r
}

// rawRead is one read(2) on the non-blocking descriptor fd. again: it
// found nothing to read (EAGAIN); the caller waits for readiness.
func rawRead(fd uintptr, p []byte) (n int, err error, again bool) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))) //nolint:gosec // the buffer is the caller's, alive for the call
		switch e {
		case 0:
			if r == 0 && len(p) > 0 {
				return 0, io.EOF, false
			}
			return int(r), nil, false //nolint:gosec // a read's count fits in an int
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil, true
		default:
			return 0, os.NewSyscallError("read", e), false
		}
	}
}

// rawWrite writes p to the non-blocking descriptor fd until it is all
// written or the socket's buffer is full (again: the caller waits for
// readiness and writes p[n:]).
func rawWrite(fd uintptr, p []byte) (n int, err error, again bool) {
	for n < len(p) {
		q := p[n:]
		r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(q))), uintptr(len(q))) //nolint:gosec // the buffer is the caller's, alive for the call
		switch e {
		case 0:
			n += int(r) //nolint:gosec // a write's count fits in an int
		case unix.EINTR:
		case unix.EAGAIN:
			return n, nil, true
		default:
			return n, os.NewSyscallError("write", e), false
		}
	}
	return n, nil, false
}

func (r *rawIO) readOnce(fd uintptr) bool {
	var again bool
	r.rn, r.rerr, again = rawRead(fd, r.rp)
	return !again // false: wait until readable (or the deadline)
}

func (r *rawIO) writeOnce(fd uintptr) bool {
	n, err, again := rawWrite(fd, r.wp[r.wn:])
	r.wn += n
	r.werr = err
	return !again // false: wait until writable (or the deadline)
}

// read reads into p, waiting for the descriptor to be readable.
func (r *rawIO) read(p []byte) (int, error) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.rp, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	n := r.rn
	if err == nil {
		err = r.rerr
	}
	r.rp = nil
	return n, err
}

// write writes all of p, waiting for the descriptor to be writable.
func (r *rawIO) write(p []byte) (int, error) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.wp, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	n := r.wn
	if err == nil {
		err = r.werr
	}
	r.wp = nil
	return n, err
}

func (c *rawTCP) Read(p []byte) (int, error) {
	n, err := c.io.read(p)
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

func (c *rawTCP) Write(p []byte) (int, error) {
	n, err := c.io.write(p)
	if err != nil {
		err = c.opError("write", err)
	}
	return n, err
}

// Close ends the connection. The FIN goes out first, as a raw shutdown(2):
// over loopback, sending it does the peer's part of TCP (and wakes it), as
// a write does, which in close(2) — a system call Go's scheduler takes the
// processor from — costs the same thread hand-offs the raw reads and writes
// avoid; close(2) then only frees the socket. (A FIN before the end changes
// nothing for the peer: it reads the same bytes, then the end; unread data
// still makes close(2) reset the connection, as before.)
func (c *rawTCP) Close() error {
	if rawShutdown {
		_ = c.io.rc.Control(rawShutdownWrite) // fails only when already closed: Close reports it
	}
	return c.TCPConn.Close()
}

// rawShutdown turns Close's raw shutdown on (bench/router's variants turn
// it off, to measure without it in the same run).
var rawShutdown = true

// opError wraps err as net's own calls do, so that callers that look for
// a timeout, a reset or a closed connection find it.
func (c *rawTCP) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// rawShutdownWrite sends the FIN (shutdown(2) for writing, as a raw call).
func rawShutdownWrite(fd uintptr) {
	_, _, _ = unix.RawSyscall(unix.SYS_SHUTDOWN, fd, unix.SHUT_WR, 0)
}

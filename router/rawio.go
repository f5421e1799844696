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
	r := &rawTCP{TCPConn: tc, rc: rc}
	r.readFn = r.read
	r.writeFn = r.write
	return r
}

func (c *rawTCP) read(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rp))), uintptr(len(c.rp))) //nolint:gosec // the buffer is the caller's, alive for the call
		switch e {
		case 0:
			c.rn = int(n) //nolint:gosec // a read's count fits in an int
			if n == 0 && len(c.rp) > 0 {
				c.rerr = io.EOF
			}
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable (or the deadline)
		default:
			c.rerr = os.NewSyscallError("read", e)
			return true
		}
	}
}

func (c *rawTCP) write(fd uintptr) bool {
	for c.wn < len(c.wp) {
		p := c.wp[c.wn:]
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))) //nolint:gosec // the buffer is the caller's, alive for the call
		switch e {
		case 0:
			c.wn += int(n) //nolint:gosec // a write's count fits in an int
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until writable (or the deadline)
		default:
			c.werr = os.NewSyscallError("write", e)
			return true
		}
	}
	return true
}

func (c *rawTCP) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n := c.rn
	if err == nil {
		err = c.rerr
	}
	c.rp = nil
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

func (c *rawTCP) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n := c.wn
	if err == nil {
		err = c.werr
	}
	c.wp = nil
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
		_ = c.rc.Control(func(fd uintptr) { // fails only when already closed: Close reports it
			_, _, _ = unix.RawSyscall(unix.SYS_SHUTDOWN, fd, unix.SHUT_WR, 0)
		})
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

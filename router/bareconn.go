package router

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bareConn is a TCP connection the router accepted itself (bareListener)
// and holds as its bare descriptor until a call on it has to wait. A
// connection accepted by net costs, before its first byte is read and
// after its last is written, a registration with the runtime's poller
// and its removal (two epoll_ctl(2)), getsockname(2) and setsockopt(2)
// for TCP_NODELAY, a finalizer and a few allocations: on a Connection:
// close request that is a third of the proxy's system calls. Most such
// connections never wait: TCP_DEFER_ACCEPT has them accepted once the
// request is there, and a small response fits the socket's buffer. So
// reads and writes are raw calls on the descriptor (as rawTCP's) and only
// the first that finds nothing to do (EAGAIN) registers the descriptor
// with the poller, as an *os.File (one fcntl(2) and one epoll_ctl(2)), to
// wait on it from then on. TCP_NODELAY is the listener's, inherited.
//
// Until then deadlines are kept here: a call past its deadline fails as a
// timeout, as net's do, and a call that has to wait takes them along.
type bareConn struct {
	mu     sync.Mutex // raw calls, Close and the registration, one at a time
	fd     int        // -1 once closed
	f      *os.File   // once registered: the descriptor is f's
	io     rawIO      // over f, once registered
	rdl    time.Time  // deadlines, until registered
	wdl    time.Time
	local  net.Addr // nil: not asked yet (getsockname)
	remote netip.AddrPort
	raddr  atomic.Pointer[net.TCPAddr] // made when asked
	closed atomic.Bool
}

func (c *bareConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.f == nil {
		if c.fd < 0 {
			c.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		}
		if expired(c.rdl) {
			c.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		n, err, again := rawRead(uintptr(c.fd), p) //nolint:gosec // a descriptor is not negative here
		if !again {
			c.mu.Unlock()
			if err != nil && err != io.EOF {
				err = c.opError("read", err)
			}
			return n, err
		}
		if err := c.register(); err != nil {
			c.mu.Unlock()
			return 0, c.opError("read", err)
		}
	}
	c.mu.Unlock()
	n, err := c.io.read(p)
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

func (c *bareConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	n := 0
	if c.f == nil {
		if c.fd < 0 {
			c.mu.Unlock()
			return 0, c.opError("write", net.ErrClosed)
		}
		if expired(c.wdl) {
			c.mu.Unlock()
			return 0, c.opError("write", os.ErrDeadlineExceeded)
		}
		var err error
		var again bool
		n, err, again = rawWrite(uintptr(c.fd), p) //nolint:gosec // a descriptor is not negative here
		if !again {
			c.mu.Unlock()
			if err != nil {
				err = c.opError("write", err)
			}
			return n, err
		}
		if err := c.register(); err != nil {
			c.mu.Unlock()
			return n, c.opError("write", err)
		}
	}
	c.mu.Unlock()
	m, err := c.io.write(p[n:])
	if err != nil {
		err = c.opError("write", err)
	}
	return n + m, err
}

func expired(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

// register hands the descriptor to the runtime's poller, with the
// deadlines set so far. With c.mu held and c.fd open. (f.Fd() would put
// the descriptor in blocking mode: it is never called.)
func (c *bareConn) register() error {
	f := os.NewFile(uintptr(c.fd), "tcp") //nolint:gosec // a descriptor is not negative here
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if err := f.SetReadDeadline(c.rdl); err != nil {
		// Not in the poller (os.NewFile found it blocking): waiting would
		// block a thread without deadlines. It cannot happen to a socket
		// accepted non-blocking; refuse rather than misbehave.
		_ = f.Close()
		c.fd = -1
		return err
	}
	_ = f.SetWriteDeadline(c.wdl)
	c.f = f
	c.io.init(rc)
	return nil
}

func (c *bareConn) SetDeadline(t time.Time) error      { return c.setDeadline(t, true, true) }
func (c *bareConn) SetReadDeadline(t time.Time) error  { return c.setDeadline(t, true, false) }
func (c *bareConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

// setDeadline keeps the deadlines of a bare connection and hands those of
// a registered one to the poller. On a closed connection it fails as net's
// does, with net.ErrClosed in a *net.OpError.
func (c *bareConn) setDeadline(t time.Time, read, write bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return c.opError("set", net.ErrClosed)
	}
	if c.f == nil {
		if read {
			c.rdl = t
		}
		if write {
			c.wdl = t
		}
		return nil
	}
	var err error
	switch {
	case read && write:
		err = c.f.SetDeadline(t)
	case read:
		err = c.f.SetReadDeadline(t)
	default:
		err = c.f.SetWriteDeadline(t)
	}
	if err != nil {
		return c.opError("set", err)
	}
	return nil
}

// Close sends the FIN (as rawTCP's Close does, rawio.go says why) and
// frees the descriptor; a registered one through its *os.File, which
// first ends the calls waiting on it.
func (c *bareConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return c.opError("close", net.ErrClosed)
	}
	fd := uintptr(c.fd) //nolint:gosec // a descriptor is not negative here
	c.fd = -1
	c.closed.Store(true)
	if rawShutdown {
		rawShutdownWrite(fd)
	}
	if c.f != nil {
		return c.f.Close()
	}
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0); e != 0 {
		return c.opError("close", os.NewSyscallError("close", e))
	}
	return nil
}

// CloseWrite half-closes the connection.
func (c *bareConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return c.opError("close", net.ErrClosed)
	}
	if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
		return c.opError("close", os.NewSyscallError("shutdown", err))
	}
	return nil
}

// peerClosed is peerClosed's (h1fast.go) for a bare connection.
func (c *bareConn) peerClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return true
	}
	return pollRDHUP(uintptr(c.fd)) //nolint:gosec // a descriptor is not negative here
}

func (c *bareConn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local == nil && c.fd >= 0 {
		if sa, err := unix.Getsockname(c.fd); err == nil {
			c.local = sockaddrTCP(sa)
		}
	}
	if c.local == nil {
		return &net.TCPAddr{}
	}
	return c.local
}

func (c *bareConn) RemoteAddr() net.Addr {
	a := c.raddr.Load()
	if a == nil {
		a = net.TCPAddrFromAddrPort(c.remote)
		c.raddr.Store(a)
	}
	return a
}

// remoteAddrPort is the client's address without making a net.Addr.
func (c *bareConn) remoteAddrPort() netip.AddrPort { return c.remote }

// opError wraps err as net's own calls do (a closed file is net's closed
// connection), so that callers that look for a timeout, a reset or a
// closed connection find it.
func (c *bareConn) opError(op string, err error) error {
	if c.closed.Load() && !errors.Is(err, os.ErrDeadlineExceeded) {
		err = net.ErrClosed // the *os.File's own word for it is not exported
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.RemoteAddr(), Err: err}
}

func sockaddrTCP(sa unix.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))) //nolint:gosec // a port fits in 16 bits
	case *unix.SockaddrInet6:
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))) //nolint:gosec // a port fits in 16 bits
	}
	return &net.TCPAddr{}
}

// bareListener accepts a TCP listener's connections as bareConns, with
// accept4(2) on its own duplicate of the listening socket (a listener's
// syscall.RawConn cannot wait), which it registers with the runtime's
// poller as an *os.File. Serve closes the listener it was given once the
// duplicate is made; Close (Shutdown's) closes the duplicate.
type bareListener struct {
	f    *os.File
	rc   syscall.RawConn
	addr net.Addr

	amu    sync.Mutex // one Accept at a time owns what follows
	fd     int
	sa     unix.RawSockaddrAny
	salen  uint32
	err    error
	accept func(fd uintptr) bool
	closed atomic.Bool
}

// bareAccept turns bareListener on (bench/router's variants turn it off,
// to measure without it in the same run).
var bareAccept = true

// listenBare gives l's connections as bareConns, when l is a TCP listener
// (and bareAccept is on); else l itself.
func listenBare(l net.Listener) net.Listener {
	tl, ok := l.(*net.TCPListener)
	if !ok || !bareAccept {
		return l
	}
	f, err := tl.File() // a duplicate, non-blocking, in the poller
	if err != nil {
		return l
	}
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			// Inherited by every accepted connection, as net would set
			// it on each.
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) //nolint:gosec // a descriptor fits in an int
		})
	}
	if err != nil {
		_ = f.Close()
		return l
	}
	bl := &bareListener{f: f, rc: rc, addr: tl.Addr()}
	bl.accept = bl.acceptOnce
	_ = tl.Close() // the duplicate listens on; net's descriptor is not needed
	return bl
}

func (l *bareListener) acceptOnce(fd uintptr) bool {
	for {
		l.salen = uint32(unix.SizeofSockaddrAny)
		r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, fd, uintptr(unsafe.Pointer(&l.sa)), uintptr(unsafe.Pointer(&l.salen)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0) //nolint:gosec // the listener's own buffers, alive for the call
		switch e {
		case 0:
			l.fd, l.err = int(r), nil //nolint:gosec // a descriptor fits in an int
			return true
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EAGAIN:
			return false
		default:
			l.fd, l.err = -1, os.NewSyscallError("accept4", e)
			return true
		}
	}
}

func (l *bareListener) Accept() (net.Conn, error) {
	l.amu.Lock()
	defer l.amu.Unlock()
	if err := l.rc.Read(l.accept); err != nil {
		if l.closed.Load() {
			err = net.ErrClosed
		}
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: err}
	}
	if l.err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: acceptError{l.err}}
	}
	c := &bareConn{fd: l.fd, remote: rawAddrPort(&l.sa)}
	if ta, ok := l.addr.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		c.local = l.addr
	}
	return c, nil
}

// acceptError marks the errors that pass (out of descriptors, memory) as
// net's temporary ones, for serve's back-off.
type acceptError struct{ err error }

func (e acceptError) Error() string { return e.err.Error() }
func (e acceptError) Unwrap() error { return e.err }
func (e acceptError) Timeout() bool {
	return errors.Is(e.err, unix.EMFILE) || errors.Is(e.err, unix.ENFILE) || errors.Is(e.err, unix.ENOBUFS) || errors.Is(e.err, unix.ENOMEM)
}
func (e acceptError) Temporary() bool { return e.Timeout() }

func (l *bareListener) Close() error {
	l.closed.Store(true)
	if err := l.f.Close(); err != nil {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	return nil
}

func (l *bareListener) Addr() net.Addr { return l.addr }

// rawAddrPort reads an accepted peer's address.
func rawAddrPort(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa)) //nolint:gosec // the family says which it is; RawSockaddrAny holds either
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), ntohs(a.Port))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa)) //nolint:gosec // the family says which it is; RawSockaddrAny holds either
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), ntohs(a.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port as the kernel stores it, in network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p)) //nolint:gosec // the two bytes of p, in memory order
	return uint16(b[0])<<8 | uint16(b[1])
}

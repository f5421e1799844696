package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// serveLoops is refproxy's poll-loop model: GOMAXPROCS threads, each
// locked to its goroutine, each with an epoll instance of its own in which
// it waits for the shared listener (EPOLLEXCLUSIVE: one loop is woken per
// new connection, as nginx's workers are), its clients and its upstream
// connections, all level-triggered and registered once. A loop thread
// sleeps in epoll_wait(2) as soon as none of its connections has anything
// to do. Writes are expected to complete (small responses over loopback);
// one that would block waits in poll(2), holding up its loop: a reference
// for small requests, not a proxy.
func serveLoops(listen string, up *net.TCPAddr, logFile *os.File) error {
	addr, err := net.ResolveTCPAddr("tcp4", listen)
	if err != nil {
		return err
	}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(lfd, inet4(addr)); err != nil {
		return err
	}
	if err := unix.Listen(lfd, 4096); err != nil {
		return err
	}
	stopFd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runLoop(lfd, stopFd, inet4(up), bufio.NewWriterSize(logFile, 64<<10)); err != nil {
				errs <- err
			}
		}()
	}
	go stopOnSignal(func() { _, _ = unix.Write(stopFd, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	wg.Wait()
	close(errs)
	return <-errs
}

func inet4(a *net.TCPAddr) *unix.SockaddrInet4 {
	sa := &unix.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa
}

// loopConn is a client connection and, while it has one, its upstream
// connection.
type loopConn struct {
	fd, up  int // up: -1 none
	peer    string
	in      []byte // read from the client, not yet sent on
	busy    bool   // a request is with the app
	closing bool   // the client asked to close after this response
	resp    refResponse
}

type loop struct {
	ep      int
	upAddr  *unix.SockaddrInet4
	clients map[int]*loopConn
	ups     map[int]*loopConn // nil: an idle upstream connection
	idle    []int             // idle upstream connections
	buf     []byte
	out     []byte
	line    []byte
	log     *bufio.Writer
}

func runLoop(lfd, stopFd int, upAddr *unix.SockaddrInet4, log *bufio.Writer) error {
	runtime.LockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	l := &loop{ep: ep, upAddr: upAddr, clients: map[int]*loopConn{}, ups: map[int]*loopConn{}, buf: make([]byte, 32<<10), log: log}
	if err := l.watch(lfd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE); err != nil {
		return err
	}
	if err := l.watch(stopFd, unix.EPOLLIN); err != nil {
		return err
	}
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			switch fd := int(ev.Fd); {
			case fd == stopFd:
				return l.log.Flush()
			case fd == lfd:
				l.accept(lfd)
			case l.clients[fd] != nil:
				l.fromClient(l.clients[fd])
			default:
				if c, ok := l.ups[fd]; ok {
					l.fromUpstream(fd, c)
				}
			}
		}
	}
}

func (l *loop) watch(fd int, events uint32) error {
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}) //nolint:gosec // descriptors fit in an int32
}

func (l *loop) accept(lfd int) {
	for {
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: another loop took it, or none is left
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		peer := ""
		if sa4, ok := sa.(*unix.SockaddrInet4); ok {
			peer = net.IP(sa4.Addr[:]).String()
		}
		if err := l.watch(fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
			unix.Close(fd)
			continue
		}
		l.clients[fd] = &loopConn{fd: fd, up: -1, peer: peer}
	}
}

func (l *loop) fromClient(c *loopConn) {
	n, err := unix.Read(c.fd, l.buf)
	if err == unix.EAGAIN {
		return
	}
	if err != nil || n == 0 {
		l.closeClient(c)
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	if !c.busy {
		l.next(c)
	}
}

// next sends the client's next request to the app, if it has sent one.
func (l *loop) next(c *loopConn) {
	end := bytes.Index(c.in, []byte("\r\n\r\n"))
	if end < 0 {
		return
	}
	var err error
	if l.out, c.closing, err = refRequest(l.out[:0], c.in[:end+4], c.peer); err != nil {
		l.closeClient(c)
		return
	}
	c.in = append(c.in[:0], c.in[end+4:]...)
	if c.up < 0 {
		if c.up, err = l.upstream(); err != nil {
			l.closeClient(c)
			return
		}
		l.ups[c.up] = c
	}
	c.busy = true
	c.resp.reset()
	if writeAll(c.up, l.out) != nil {
		l.closeClient(c)
	}
}

// upstream takes an idle upstream connection or makes one (a blocking
// connect: over loopback it completes at once).
func (l *loop) upstream() (int, error) {
	if n := len(l.idle); n > 0 {
		fd := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return fd, nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, l.upAddr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	_ = unix.SetNonblock(fd, true)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := l.watch(fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (l *loop) fromUpstream(fd int, c *loopConn) {
	n, err := unix.Read(fd, l.buf)
	if err == unix.EAGAIN {
		return
	}
	if c == nil || err != nil || n == 0 { // an idle one's app closed it, or it broke
		if c != nil {
			c.up = -1
			l.closeClient(c)
		}
		l.closeUpstream(fd)
		return
	}
	p, done, err := c.resp.relay(l.buf[:n], c.closing)
	if err != nil || writeAll(c.fd, p) != nil {
		l.closeClient(c)
		return
	}
	if !done {
		return
	}
	l.line = refLogLine(l.line[:0], c.peer, &c.resp)
	if l.log.Available() < len(l.line) { // whole lines only: the loops share the file
		_ = l.log.Flush()
	}
	_, _ = l.log.Write(l.line)
	c.busy = false
	if c.closing {
		l.closeClient(c)
		return
	}
	l.next(c)
}

// closeClient ends a client connection; its upstream connection goes back
// to the idle ones if no response is half relayed on it.
func (l *loop) closeClient(c *loopConn) {
	delete(l.clients, c.fd)
	unix.Close(c.fd)
	if c.up < 0 {
		return
	}
	if c.busy {
		l.closeUpstream(c.up)
	} else {
		l.ups[c.up] = nil
		l.idle = append(l.idle, c.up)
	}
	c.up = -1
}

func (l *loop) closeUpstream(fd int) {
	delete(l.ups, fd)
	if i := slices.Index(l.idle, fd); i >= 0 {
		l.idle = slices.Delete(l.idle, i, i+1)
	}
	unix.Close(fd)
}

// writeAll writes p to a non-blocking descriptor, waiting in poll(2) when
// the socket's buffer is full.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EAGAIN {
			_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 1000) //nolint:gosec // descriptors fit in an int32
			continue
		}
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

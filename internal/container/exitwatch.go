package container

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ExitStatus is how a container's init ended.
type ExitStatus struct {
	Code   int  // exit code, or 128+signal; -1 when unknown
	Signal int  // the signal that killed it, 0 if it exited
	Known  bool // false when the exit was seen but not its status
}

func (e ExitStatus) String() string {
	switch {
	case !e.Known:
		return "exited (status unknown)"
	case e.Signal != 0:
		return fmt.Sprintf("killed by signal %d", e.Signal)
	}
	return fmt.Sprintf("exited with status %d", e.Code)
}

// exitWatcher learns when watched processes exit, and how. A detached
// container's init is re-parented away from the daemon, so wait(2) cannot
// be used: the kernel's process-event connector reports every exit with
// its status, and a pidfd per process catches exits the connector dropped
// (a full socket buffer) or that happened while the daemon was down.
type exitWatcher struct {
	log  *slog.Logger
	sock int // -1 when the connector is unavailable
	mu   sync.Mutex
	w    map[int]*watch
	stop chan struct{}
	wg   sync.WaitGroup
}

type watch struct {
	pidfd  int
	done   chan struct{}
	status ExitStatus
}

const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExit     = 0x80000000
)

func newExitWatcher(log *slog.Logger) *exitWatcher {
	ew := &exitWatcher{log: log, sock: -1, w: map[int]*watch{}, stop: make(chan struct{})}
	if err := ew.listen(); err != nil {
		log.Warn("process-event connector unavailable: container exit codes will be unknown", "err", err)
	}
	if ew.sock >= 0 {
		ew.wg.Go(ew.readEvents)
	}
	ew.wg.Go(ew.poll)
	return ew
}

func (ew *exitWatcher) listen() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return err
	}
	// nlmsghdr (16) + cn_msg (20) + op (4)
	msg := make([]byte, 40)
	le := binary.NativeEndian
	le.PutUint32(msg[0:], 40)
	le.PutUint16(msg[4:], unix.NLMSG_DONE)
	le.PutUint32(msg[12:], uint32(unix.Getpid()))
	le.PutUint32(msg[16:], cnIdxProc)
	le.PutUint32(msg[20:], cnValProc)
	le.PutUint16(msg[32:], 4)
	le.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return err
	}
	// A receive timeout lets the reader notice Close.
	tv := unix.Timeval{Sec: 1}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	ew.sock = fd
	return nil
}

func (ew *exitWatcher) readEvents() {
	buf := make([]byte, 64<<10)
	le := binary.NativeEndian
	for {
		select {
		case <-ew.stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(ew.sock, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				continue // ENOBUFS: events were lost; poll catches the exits
			}
			ew.log.Warn("process-event connector", "err", err)
			return
		}
		for off := 0; off+16 <= n; {
			l := int(le.Uint32(buf[off:]))
			if l < 16 || off+l > n {
				break
			}
			ev := buf[off+16+20 : off+l] // after nlmsghdr and cn_msg
			if len(ev) >= 16+16 && le.Uint32(ev[0:]) == procEventExit {
				pid, tgid, code := le.Uint32(ev[16:]), le.Uint32(ev[20:]), le.Uint32(ev[24:])
				if pid == tgid {
					ew.exited(int(pid), waitStatus(code))
				}
			}
			off += (l + 3) &^ 3
		}
	}
}

func waitStatus(ws uint32) ExitStatus {
	w := unix.WaitStatus(ws)
	if w.Signaled() {
		return ExitStatus{Code: 128 + int(w.Signal()), Signal: int(w.Signal()), Known: true}
	}
	return ExitStatus{Code: w.ExitStatus(), Known: true}
}

func (ew *exitWatcher) exited(pid int, st ExitStatus) {
	ew.mu.Lock()
	w := ew.w[pid]
	if w != nil {
		delete(ew.w, pid)
	}
	ew.mu.Unlock()
	if w != nil {
		w.status = st
		unix.Close(w.pidfd)
		close(w.done)
	}
}

// poll catches exits the connector missed, through each process's pidfd.
func (ew *exitWatcher) poll() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ew.stop:
			return
		case <-t.C:
		}
		ew.mu.Lock()
		var gone []int
		for pid, w := range ew.w {
			if unix.PidfdSendSignal(w.pidfd, 0, nil, 0) == unix.ESRCH {
				gone = append(gone, pid)
			}
		}
		ew.mu.Unlock()
		if len(gone) > 0 {
			// Give the connector a moment to deliver the real status.
			time.Sleep(200 * time.Millisecond)
			for _, pid := range gone {
				ew.exited(pid, ExitStatus{Code: -1})
			}
		}
	}
}

// watch returns a channel closed when pid exits, and where its status will
// be. The pidfd is taken at once, so a pid reused later is not confused
// with this process.
func (ew *exitWatcher) watch(pid int) (*watch, error) {
	ew.mu.Lock()
	defer ew.mu.Unlock()
	if w, ok := ew.w[pid]; ok {
		return w, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	w := &watch{pidfd: fd, done: make(chan struct{})}
	ew.w[pid] = w
	return w, nil
}

func (ew *exitWatcher) close() {
	close(ew.stop)
	ew.wg.Wait()
	if ew.sock >= 0 {
		unix.Close(ew.sock)
	}
}

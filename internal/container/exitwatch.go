package container

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

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
// container's init is re-parented away from the runc that made it, so a
// plain wait(2) does not reach it. Two sources give the status:
//
//   - the kernel's process-event connector reports every exit with its
//     status, including of containers a previous daemon started;
//   - where the connector reports nothing (the kernel ignores listeners
//     outside the initial PID and user namespaces: skiff in an LXC or
//     systemd-nspawn container, as many VPSes are), this process becomes a
//     child subreaper, so the inits of the containers it starts are
//     re-parented to it and it waits for them itself (waitid on their
//     pidfd). Containers of a previous daemon then end with an unknown
//     status (Degraded says so).
//
// A pidfd per process, in one epoll set, says when it exits (either way,
// and for exits the connector dropped on a full socket buffer).
//
// There is one per process, shared by its Runcs (acquireExitWatcher): the
// subreaper role and the connector belong to the process, and two watchers
// of one container (a Runc adopting what another of the same process
// started) would race to reap it, one of them left with no status.
type exitWatcher struct {
	log     *slog.Logger
	sock    int  // the connector, -1 when it reports nothing here
	reaping bool // a child subreaper: our containers' inits are our children
	epfd    int
	mu      sync.Mutex
	w       map[int]*watch
	byFD    map[int]int // pidfd → pid
	stop    chan struct{}
	wg      sync.WaitGroup
}

type watch struct {
	pidfd  int
	polled bool // pidfd is in the epoll set
	done   chan struct{}
	status ExitStatus
}

// connectorGrace is how long an exit the pidfd reported waits for the
// connector's event with its status, before it is taken as unknown. The
// event is queued by the kernel at the exit; only a reader starved of CPU
// (a loaded host) or a full socket buffer delays or loses it.
const connectorGrace = 10 * time.Second

var shared struct {
	sync.Mutex
	ew   *exitWatcher
	refs int
}

// acquireExitWatcher returns the process's exit watcher, starting it for
// the first user; each acquire is matched by a release.
func acquireExitWatcher(log *slog.Logger) (*exitWatcher, error) {
	shared.Lock()
	defer shared.Unlock()
	if shared.ew == nil {
		ew, err := newExitWatcher(log)
		if err != nil {
			return nil, err
		}
		shared.ew = ew
	}
	shared.refs++
	return shared.ew, nil
}

// release stops the watcher once its last user has released it.
func (ew *exitWatcher) release() {
	shared.Lock()
	defer shared.Unlock()
	if shared.ew != ew {
		return
	}
	if shared.refs--; shared.refs == 0 {
		shared.ew = nil
		ew.close()
	}
}

const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventExit     = 0x80000000
)

func newExitWatcher(log *slog.Logger) (*exitWatcher, error) {
	ew := &exitWatcher{log: log, sock: -1, w: map[int]*watch{}, byFD: map[int]int{}, stop: make(chan struct{})}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	ew.epfd = epfd
	if err := ew.listen(); err != nil {
		log.Debug("process-event connector", "err", err)
	} else if !ew.connectorReports() {
		unix.Close(ew.sock)
		ew.sock = -1
	}
	if ew.sock < 0 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("neither the process-event connector nor a child subreaper is available: container exit statuses will be unknown", "err", err)
		} else {
			ew.reaping = true
			ew.wg.Go(ew.sweepOrphans)
		}
	}
	if ew.sock >= 0 {
		ew.wg.Go(ew.readEvents)
	}
	ew.wg.Go(ew.poll)
	return ew, nil
}

// degraded says what works less well than on a plain host, for the daemon
// to tell at start.
func (ew *exitWatcher) degraded() []string {
	switch {
	case ew.sock < 0 && ew.reaping:
		return []string{"the kernel's process-event connector reports nothing here (skiff runs in a container, or in a PID or user namespace of its own): " +
			"skiff waits for the containers it starts itself; an instance that a previous daemon started, and that exits before it is restarted, exits with an unknown status"}
	case ew.sock < 0:
		return []string{"no process-event connector and no child subreaper: container exit statuses are unknown (builds cannot tell success from failure)"}
	}
	return nil
}

// connectorReports checks that the connector really reports exits here: a
// short-lived child's exit must arrive within a second.
func (ew *exitWatcher) connectorReports() bool {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		return true // cannot tell; trust it
	}
	pid := cmd.Process.Pid
	_ = cmd.Wait() // /bin/true: its exit is what the connector must report
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(ew.sock, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return false
		}
		found := false
		forEachExit(buf[:n], func(p int, _ ExitStatus) { found = found || p == pid })
		if found {
			return true
		}
	}
	return false
}

func (ew *exitWatcher) listen() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) // without it, the pidfds catch what a full buffer drops
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return err
	}
	// nlmsghdr (16) + cn_msg (20) + op (4)
	msg := make([]byte, 40)
	le := binary.NativeEndian
	le.PutUint32(msg[0:], 40)
	le.PutUint16(msg[4:], unix.NLMSG_DONE)
	le.PutUint32(msg[12:], uint32(unix.Getpid())) //nolint:gosec // pids are positive and below 2^22
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
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("proc connector: %w", err)
	}
	ew.sock = fd
	return nil
}

func (ew *exitWatcher) readEvents() {
	buf := make([]byte, 64<<10)
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
		forEachExit(buf[:n], ew.exited)
	}
}

// forEachExit calls f for each process exit in a connector message.
func forEachExit(buf []byte, f func(pid int, st ExitStatus)) {
	le := binary.NativeEndian
	for off := 0; off+16 <= len(buf); {
		l := int(le.Uint32(buf[off:]))
		if l < 16 || off+l > len(buf) {
			return
		}
		if off+16+20 <= off+l {
			ev := buf[off+16+20 : off+l] // after nlmsghdr and cn_msg
			if len(ev) >= 16+16 && le.Uint32(ev[0:]) == procEventExit {
				pid, tgid, code := le.Uint32(ev[16:]), le.Uint32(ev[20:]), le.Uint32(ev[24:])
				if pid == tgid {
					f(int(pid), waitStatus(code))
				}
			}
		}
		off += (l + 3) &^ 3
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
		delete(ew.byFD, w.pidfd)
		if w.polled {
			_ = unix.EpollCtl(ew.epfd, unix.EPOLL_CTL_DEL, w.pidfd, nil) // closing the pidfd below removes it anyway
			w.polled = false
		}
	}
	ew.mu.Unlock()
	if w != nil {
		w.status = st
		unix.Close(w.pidfd)
		close(w.done)
	}
}

// poll waits for watched processes' pidfds to say they exited. A child of
// ours (a container this process started, while it reaps) is waited for
// with its status; another's status comes from the connector, given
// connectorGrace to deliver it (without holding up other exits), or stays
// unknown.
func (ew *exitWatcher) poll() {
	events := make([]unix.EpollEvent, 64)
	for {
		select {
		case <-ew.stop:
			return
		default:
		}
		n, err := unix.EpollWait(ew.epfd, events, 500)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			ew.log.Warn("exit watcher", "err", err)
			time.Sleep(time.Second)
			continue
		}
		for _, ev := range events[:n] {
			ew.mu.Lock()
			pid, ok := ew.byFD[int(ev.Fd)]
			ew.mu.Unlock()
			if !ok {
				continue
			}
			if st, ok := waitPidfd(int(ev.Fd)); ok {
				ew.exited(pid, st)
				continue
			}
			if ew.sock < 0 {
				ew.exited(pid, ExitStatus{Code: -1})
				continue
			}
			// Out of the epoll set (it stays readable), still watched:
			// the connector's event ends it, or the grace does.
			ew.mu.Lock()
			if w := ew.w[pid]; w != nil && w.polled {
				_ = unix.EpollCtl(ew.epfd, unix.EPOLL_CTL_DEL, w.pidfd, nil) // it stays readable; the timer or the connector ends the watch
				w.polled = false
				time.AfterFunc(connectorGrace, func() { ew.exitedIf(pid, w) })
			}
			ew.mu.Unlock()
		}
	}
}

// exitedIf ends watch w of pid with an unknown status, unless it has
// ended (or pid is watched anew).
func (ew *exitWatcher) exitedIf(pid int, w *watch) {
	ew.mu.Lock()
	same := ew.w[pid] == w
	ew.mu.Unlock()
	if same {
		ew.exited(pid, ExitStatus{Code: -1})
	}
}

// waitPidfd reaps the exited child behind fd and returns its status; false
// when it is not this process's child.
func waitPidfd(fd int) (ExitStatus, bool) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ExitStatus{}, false
		}
		break
	}
	// siginfo_t for SIGCHLD: si_pid at 16, si_uid at 20, si_status at 24.
	raw := (*[128]byte)(unsafe.Pointer(&info))                 //nolint:gosec // siginfo_t is 128 bytes; x/sys/unix names none of its fields
	pid := int32(binary.NativeEndian.Uint32(raw[16:]))         //nolint:gosec // C's pid_t and int, as the kernel wrote them
	status := int(int32(binary.NativeEndian.Uint32(raw[24:]))) //nolint:gosec // as above
	if pid == 0 {
		return ExitStatus{}, false // not exited after all (WNOHANG)
	}
	switch info.Code {
	case 1: // CLD_EXITED
		return ExitStatus{Code: status, Known: true}, true
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return ExitStatus{Code: 128 + status, Signal: status, Known: true}, true
	}
	return ExitStatus{Code: -1}, true
}

// sweepOrphans reaps, while this process is a subreaper, the other orphans
// that land on it (a daemonized grandchild of a command it ran) once they
// have been zombies for a minute: a command's own child is waited for by
// whoever started it long before.
func (ew *exitWatcher) sweepOrphans() {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	seen := map[int]int{}
	for {
		select {
		case <-ew.stop:
			return
		case <-t.C:
		}
		next := map[int]int{}
		for _, pid := range zombieChildren() {
			ew.mu.Lock()
			_, watched := ew.w[pid]
			ew.mu.Unlock()
			if watched {
				continue
			}
			if next[pid] = seen[pid] + 1; next[pid] > 2 {
				var info unix.Siginfo
				_ = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil) // reaps it if it is ours; ECHILD if not
				delete(next, pid)
			}
		}
		seen = next
	}
}

// zombieChildren lists this process's children that have exited and wait
// to be reaped.
func zombieChildren() []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			st, _ := os.ReadFile("/proc/" + f + "/stat")
			if _, rest, ok := strings.Cut(string(st), ") "); ok && strings.HasPrefix(rest, "Z") {
				out = append(out, pid)
			}
		}
	}
	return out
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
	w := &watch{pidfd: fd, polled: true, done: make(chan struct{})}
	if err := unix.EpollCtl(ew.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil { //nolint:gosec // descriptors fit in an int32
		unix.Close(fd)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	ew.w[pid] = w
	ew.byFD[fd] = pid
	return w, nil
}

func (ew *exitWatcher) close() {
	close(ew.stop)
	ew.wg.Wait()
	if ew.sock >= 0 {
		unix.Close(ew.sock)
	}
	unix.Close(ew.epfd)
}

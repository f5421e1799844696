package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// consoleSocket receives the pty master runc makes for a container with a
// terminal. It lives in a short temporary directory: socket paths are
// limited to 108 bytes, and bundles can be deep.
type consoleSocket struct {
	dir, path string
	l         *net.UnixListener
}

func newConsoleSocket() (*consoleSocket, error) {
	dir, err := os.MkdirTemp("", "skiff-pty-")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &consoleSocket{dir: dir, path: p, l: l}, nil
}

// receive takes the master runc sent (runc create has returned, so it was
// sent already or never will be).
func (cs *consoleSocket) receive(ctx context.Context) (*os.File, error) {
	if err := cs.l.SetDeadline(deadline(ctx)); err != nil {
		return nil, err
	}
	conn, err := cs.l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	defer func() { _ = conn.Close() }()
	oob := make([]byte, unix.CmsgSpace(4))
	buf := make([]byte, 4096)
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("console socket: no file descriptor received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("console socket: no file descriptor received")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func (cs *consoleSocket) Close() error {
	_ = cs.l.Close() // the directory's removal is the part that matters
	return os.RemoveAll(cs.dir)
}

func setWinsize(f *os.File, cols, rows int) error {
	// The client says how large its window is: clamp to what a terminal holds.
	cols, rows = min(max(cols, 0), 0xffff), min(max(rows, 0), 0xffff)
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: uint16(cols), Row: uint16(rows)}) //nolint:gosec // clamped above
}

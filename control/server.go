package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/skiffhq/skiff"
)

// Server serves the control socket.
type Server struct {
	Commands skiff.CommandRunner
	Hooks    skiff.HookRunner
	Log      *slog.Logger

	mu       sync.Mutex
	listener net.Listener
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
}

// Listen creates the socket at path, refusing to steal it from a daemon
// that still answers there.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s answers: another skiff serve is running with this data directory", path)
	}
	os.Remove(path) // a stale socket of a daemon that is gone
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve accepts connections until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.listener, s.conns = l, map[net.Conn]struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, don't spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.Log.Warn("control accept", "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, ends every connection and waits for the handlers.
func (s *Server) Close() error {
	s.mu.Lock()
	var err error
	if s.listener != nil {
		err = s.listener.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// peer returns the uid of the process at the other end.
func peer(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}

func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	uid, err := peer(c)
	if err != nil || (uid != 0 && int(uid) != os.Getuid()) {
		s.Log.Warn("control: refused peer", "uid", uid, "err", err)
		return
	}
	kind, payload, err := readFrame(c)
	if err != nil || kind != frameRequest {
		return
	}
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	stdout := frameWriter{&mu, c, frameStdout}
	stderr := frameWriter{&mu, c, frameStderr}

	// The client's frames after the request are stdin; its hang-up
	// cancels whatever runs for it.
	stdinR, stdinW := io.Pipe()
	var tty *skiff.TTY
	var resize chan skiff.WindowSize
	if req.TTY != nil && req.Command != nil {
		resize = make(chan skiff.WindowSize, 1)
		tty = &skiff.TTY{Term: req.TTY.Term, Width: req.TTY.Width, Height: req.TTY.Height, Resize: resize}
	}
	go func() {
		defer cancel()
		if resize != nil {
			defer close(resize)
		}
		for {
			kind, data, err := readFrame(c)
			if err != nil {
				stdinW.CloseWithError(io.ErrUnexpectedEOF)
				return
			}
			switch kind {
			case frameStdin:
				if _, err := stdinW.Write(data); err != nil {
					// Nobody reads stdin any more: drop the rest, keep
					// watching for the hang-up.
					continue
				}
			case frameStdinEOF:
				stdinW.Close()
			case frameResize:
				var ws skiff.WindowSize
				if _, err := fmt.Sscanf(string(data), "%d %d", &ws.Width, &ws.Height); err != nil || resize == nil {
					continue
				}
				select {
				case resize <- ws:
				default: // a reader that is not reading only needs the latest size
				}
			}
		}
	}()

	code := 0
	switch {
	case req.Command != nil:
		actor := &skiff.Actor{Name: "local:" + userName(uid)}
		code = s.Commands.RunCommand(ctx, &skiff.Invocation{Actor: actor, Args: req.Command, Stdin: stdinR, Stdout: stdout, Stderr: stderr, TTY: tty})
	case req.Hook != nil:
		h := skiff.Hook(*req.Hook)
		if err := s.Hooks.RunHook(ctx, &h, stderr); err != nil {
			if skiff.ErrorCode(err) == skiff.EINTERNAL {
				s.Log.Error("hook", "hook", h.Name, "err", err)
			}
			fmt.Fprintf(stderr, " !     %s\n", skiff.ErrorMessage(err))
			code = 1
		}
	default:
		code = 2
	}
	mu.Lock()
	_ = writeFrame(c, frameExit, []byte(strconv.Itoa(code))) // a client that hung up gets no status
	mu.Unlock()
	stdinR.Close()
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

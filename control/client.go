package control

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/skiffhq/skiff"
)

// RunCommand runs an admin command in the daemon listening at socket and
// returns its exit status. stdin may be nil.
func RunCommand(socket string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return roundTrip(socket, request{Command: args}, stdin, stdout, stderr)
}

// RunHook hands a git hook to the daemon; the pipeline's output is written
// to out. It returns the hook's exit status.
func RunHook(socket string, h *skiff.Hook, out io.Writer) (int, error) {
	hf := hookFrame(*h)
	return roundTrip(socket, request{Hook: &hf}, nil, out, out)
}

// RunTerminal runs an admin command that takes a terminal (run,
// postgres:connect) in the daemon: stdin is the terminal's input (the
// caller has put it in raw mode), stdout its output, tty its type and size;
// the sizes sent on tty.Resize follow. skiff's own messages go to stderr.
func RunTerminal(socket string, args []string, tty *skiff.TTY, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	req := request{Command: args, TTY: &ttyFrame{Term: tty.Term, Width: tty.Width, Height: tty.Height}}
	return roundTripResize(socket, req, stdin, stdout, stderr, tty.Resize)
}

func roundTrip(socket string, req request, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return roundTripResize(socket, req, stdin, stdout, stderr, nil)
}

func roundTripResize(socket string, req request, stdin io.Reader, stdout, stderr io.Writer, resize <-chan skiff.WindowSize) (int, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return 1, fmt.Errorf("cannot reach the skiff daemon at %s (is `skiff serve` running, and are you root?): %w", socket, err)
	}
	defer c.Close()
	body, err := json.Marshal(req)
	if err != nil {
		return 1, err
	}
	var mu sync.Mutex
	if err := writeFrame(c, frameRequest, body); err != nil {
		return 1, err
	}
	if stdin != nil {
		go func() {
			// A daemon that hung up ends the round trip below; nothing to
			// do here about a write that failed.
			_, _ = io.Copy(frameWriter{&mu, c, frameStdin}, stdin)
			mu.Lock()
			_ = writeFrame(c, frameStdinEOF, nil)
			mu.Unlock()
		}()
	} else {
		mu.Lock()
		_ = writeFrame(c, frameStdinEOF, nil) // the daemon may have answered and hung up already; its frames are read below
		mu.Unlock()
	}
	if resize != nil {
		go func() {
			for ws := range resize {
				mu.Lock()
				err := writeFrame(c, frameResize, fmt.Appendf(nil, "%d %d", ws.Width, ws.Height))
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	for {
		kind, data, err := readFrame(c)
		if err != nil {
			return 1, fmt.Errorf("lost the connection to the skiff daemon: %w", err)
		}
		switch kind {
		case frameStdout:
			_, _ = stdout.Write(data) // the user's terminal
		case frameStderr:
			_, _ = stderr.Write(data)
		case frameExit:
			code, err := strconv.Atoi(string(data))
			if err != nil {
				return 1, fmt.Errorf("bad exit status from the daemon: %q", data)
			}
			return code, nil
		}
	}
}

// Package control is the daemon's local door: a unix socket (0600, peers
// checked with SO_PEERCRED) over which `skiff <command>` on the server runs
// admin commands as the local admin, and git's pre-receive hook (`skiff hook
// pre-receive`) hands each push to the daemon and streams the pipeline's
// output back to the pusher.
//
// The protocol is a stream of frames: one type byte, a big-endian uint32
// length, the payload. The client sends a request frame, then stdin frames;
// the server sends stdout and stderr frames and ends with an exit frame.
package control

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

const (
	frameRequest  = 'R' // client: JSON request
	frameStdin    = 'I' // client: stdin bytes
	frameStdinEOF = 'C' // client: stdin closed
	frameStdout   = 'O' // server: stdout bytes
	frameStderr   = 'E' // server: stderr bytes
	frameExit     = 'X' // server: exit status, decimal
	frameResize   = 'W' // client: the terminal's new size, "cols rows"
	maxFrame      = 1 << 20
)

func writeFrame(w io.Writer, kind byte, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("control frame of %d bytes is over the limit", len(payload))
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload))) //nolint:gosec // at most maxFrame
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("control frame of %d bytes is over the limit", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

// frameWriter is an io.Writer that sends each write as frames of one kind;
// writers of several kinds share the mutex of one connection.
type frameWriter struct {
	mu   *sync.Mutex
	w    io.Writer
	kind byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for off := 0; off < len(p); off += maxFrame {
		end := min(off+maxFrame, len(p))
		if err := writeFrame(f.w, f.kind, p[off:end]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// request is the first frame a client sends: a command or a hook.
type request struct {
	Command []string   `json:"command,omitempty"`
	Hook    *hookFrame `json:"hook,omitempty"`
	// TTY is the client's terminal, for a command that takes one (run,
	// postgres:connect): stdin is its raw input, stdout its output.
	TTY *ttyFrame `json:"tty,omitempty"`
}

type ttyFrame struct {
	Term   string `json:"term"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

type hookFrame struct {
	Name  string   `json:"name"`
	Token string   `json:"token"`
	Input string   `json:"input"`
	Env   []string `json:"env"`
}

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// terminal is a command on a pseudo-terminal of its own, driven the way a
// user at a real terminal would: type a line once the prompt is shown.
type terminal struct {
	t   *testing.T
	f   *os.File
	cmd *exec.Cmd

	mu  sync.Mutex
	out strings.Builder
}

func startTerminal(t *testing.T, cmd *exec.Cmd) *terminal {
	t.Helper()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, f: f, cmd: cmd}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := f.Read(b)
			term.mu.Lock()
			term.out.Write(b[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return term
}

func (term *terminal) shown() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// waitFor waits until the terminal shows s.
func (term *terminal) waitFor(s string) bool {
	term.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(term.shown(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			term.t.Errorf("%s: the terminal never showed %q; it shows %q", term.cmd.Args[0], s, term.shown())
			return false
		}
	}
	return true
}

func (term *terminal) typeLine(line string) { term.f.Write([]byte(line + "\r")) }

// end waits for the command to exit and returns its error.
func (term *terminal) end() error {
	done := make(chan error, 1)
	go func() { done <- term.cmd.Wait() }()
	defer term.f.Close()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		term.cmd.Process.Kill()
		return <-done
	}
}

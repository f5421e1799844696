package runtime_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/skiffhq/skiff"
)

// A one-off with a terminal, exec'd into a running instance (as
// postgres:connect is) or run in a container of its own (run), finds its
// terminal at the client's size when it starts: runc 1.1 sizes an exec's
// terminal only once its process runs, so a quick program read 0 0.
func TestTerminalHasTheClientsSizeAtStart(t *testing.T) {
	f, rt := newRuntime(t)
	in, err := rt.Start(context.Background(), spec(f, "sized"))
	if err != nil {
		t.Fatal(err)
	}
	ready(t, rt, in.ID)
	for i := range 10 { // without the wait, a race that a quick start lost about once in five
		var out bytes.Buffer
		tty := &skiff.TTY{Term: "xterm", Width: 101, Height: 33, Resize: make(chan skiff.WindowSize)}
		code, err := rt.Exec(context.Background(), in.ID, &skiff.RunRequest{Args: []string{"probe", "winsize"}, Stdout: &out, TTY: tty})
		if err != nil || code != 0 || !strings.HasPrefix(out.String(), "33 101") {
			t.Fatalf("exec %d with a 101x33 terminal: %d %v, first output %q", i, code, err, out.String())
		}
		out.Reset()
		code, err = rt.Run(context.Background(), &skiff.RunRequest{Spec: *spec(f, "sized"), Args: []string{"winsize"}, Stdout: &out,
			TTY: &skiff.TTY{Term: "xterm", Width: 101, Height: 33, Resize: make(chan skiff.WindowSize)}})
		if err != nil || code != 0 || !strings.HasPrefix(out.String(), "33 101") {
			t.Fatalf("run %d with a 101x33 terminal: %d %v, first output %q", i, code, err, out.String())
		}
	}
	// A client that gives no size gets no wait: the command runs at once,
	// on a terminal of no size.
	var out bytes.Buffer
	code, err := rt.Exec(context.Background(), in.ID, &skiff.RunRequest{Args: []string{"probe", "winsize"}, Stdout: &out,
		TTY: &skiff.TTY{Term: "xterm", Resize: make(chan skiff.WindowSize)}})
	if err != nil || code != 0 || !strings.HasPrefix(out.String(), "0 0") {
		t.Fatalf("exec with a terminal of no size: %d %v %q", code, err, out.String())
	}
}

package main

import (
	"bytes"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/control"
)

// localTerminal runs a command that takes a terminal (run, postgres:connect)
// on this one, as ssh -t would: the terminal in raw mode (the process in
// the container does the line editing and echo), its type and size, and
// its resizes.
func localTerminal(socket string, args []string) (int, error) {
	in, out := int(os.Stdin.Fd()), int(os.Stdout.Fd())
	w, h, err := term.GetSize(out)
	if err != nil {
		w, h = 0, 0
	}
	old, err := term.MakeRaw(in)
	if err != nil {
		return 1, err
	}
	defer func() { _ = term.Restore(in, old) }() // the terminal as it was, whatever happened
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	resize, done := make(chan skiff.WindowSize, 1), make(chan struct{})
	defer close(done)
	go func() {
		defer close(resize)
		for {
			select {
			case <-done:
				return
			case <-winch:
				if w, h, err := term.GetSize(out); err == nil {
					select {
					case resize <- skiff.WindowSize{Width: w, Height: h}:
					default:
					}
				}
			}
		}
	}()
	tty := &skiff.TTY{Term: os.Getenv("TERM"), Width: w, Height: h, Resize: resize}
	return control.RunTerminal(socket, args, tty, os.Stdin, os.Stdout, crlfWriter{os.Stderr})
}

// crlfWriter ends lines with CR LF, which a terminal in raw mode needs to
// start the next line at its left.
type crlfWriter struct{ w io.Writer }

func (c crlfWriter) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

package runtime

import (
	"context"
	"io"
	"os"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
)

// Exec runs req.Args (an argument vector, no shell) inside the running
// instance id, as its process's user with its environment plus req's
// Spec.Env, attached to req's streams or terminal, and returns the exit
// code. An instance that is not up is EUNAVAILABLE; one this runtime does
// not have is ENOTFOUND. When ctx ends the process is killed.
func (r *Runtime) Exec(ctx context.Context, id string, req *skiff.RunRequest) (int, error) {
	if len(req.Args) == 0 {
		return 0, skiff.Errorf(skiff.EINVALID, "exec needs a command")
	}
	in := r.get(id)
	if in == nil {
		return 0, skiff.Errorf(skiff.ENOTFOUND, "no instance %s", id)
	}
	in.mu.Lock()
	c := in.c
	in.mu.Unlock()
	if c == nil {
		return 0, skiff.Errorf(skiff.EUNAVAILABLE, "%s is not running", in.rec.Spec.Name())
	}
	p, err := c.Process()
	if err != nil {
		return 0, err
	}
	env := append([]string(nil), p.Env...)
	for k, v := range req.Spec.Env {
		env = append(env, k+"="+v)
	}
	ex := &container.Exec{Args: req.Args, Env: env, Cwd: p.Cwd, UID: p.User.UID, GID: p.User.GID, Terminal: req.TTY != nil}
	var copies sync.WaitGroup
	if ex.Terminal {
		ex.Cols, ex.Rows = req.TTY.Width, req.TTY.Height // the command starts at the client's size
		var master *os.File
		ex.Console = func(m *os.File) {
			master = m
			copies.Add(1)
			go func() { defer copies.Done(); copyTo(req.Stdout, m) }()
			if req.Stdin != nil {
				go func() { _, _ = io.Copy(m, req.Stdin) }()
			}
			go func() {
				for ws := range req.TTY.Resize {
					_ = container.SetWinsize(m, ws.Width, ws.Height)
				}
			}()
		}
		code, err := c.Exec(ctx, ex)
		if master != nil {
			waitCopies(&copies, time.Second)
			master.Close()
			copies.Wait()
		}
		return code, err
	}
	stdio, closeAfter, wait, err := pipeStdio(req)
	if err != nil {
		return 0, err
	}
	ex.Stdio = stdio
	code, err := c.Exec(ctx, ex)
	for _, f := range closeAfter {
		f.Close()
	}
	wait()
	return code, err
}

// pipeStdio makes pipes between req's streams and a process's: the
// process's ends are to be closed once it has them (closeAfter), and wait
// returns when its output has been copied.
func pipeStdio(req *skiff.RunRequest) (container.Stdio, []*os.File, func(), error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return container.Stdio{}, nil, nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return container.Stdio{}, nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		for _, f := range []*os.File{inR, inW, outR, outW} {
			f.Close()
		}
		return container.Stdio{}, nil, nil, err
	}
	if req.Stdin != nil {
		go func() { // ends when the caller's stdin does, or when the process has gone
			_, _ = io.Copy(inW, req.Stdin) // the process sees its stdin end either way
			inW.Close()
		}()
	} else {
		inW.Close()
	}
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); copyTo(req.Stdout, outR); outR.Close() }()
	go func() { defer copies.Done(); copyTo(req.Stderr, errR); errR.Close() }()
	wait := func() {
		copies.Wait()
		inW.Close()
	}
	return container.Stdio{Stdin: inR, Stdout: outW, Stderr: errW}, []*os.File{inR, outW, errW}, wait, nil
}

// waitCopies waits for wg up to d.
func waitCopies(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

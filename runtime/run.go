package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
)

// Run implements skiff.Scheduler: a one-off instance of the release, attached
// to the caller's streams (or terminal), removed when it ends. It has no
// instance.json, so a daemon that dies meanwhile removes it at its next start.
func (r *Runtime) Run(ctx context.Context, req *skiff.RunRequest) (int, error) {
	if len(req.Args) == 0 {
		return 0, skiff.Errorf(skiff.EINVALID, "run needs a command")
	}
	spec := req.Spec
	spec.ProcessType = "run"
	defer r.pin(spec.Image)()
	r.mu.Lock()
	r.runSeq[spec.AppID]++
	spec.Index = r.runSeq[spec.AppID]
	r.mu.Unlock()
	id := "run-" + newID(&spec)
	dir := filepath.Join(r.instancesDir(), id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return 0, err
	}
	defer r.removeInstance(id, dir)
	cs, err := r.containerSpec(ctx, id, dir, &spec, req.Args)
	if err != nil {
		return 0, err
	}
	cs.Terminal = req.TTY != nil
	var stdio container.Stdio
	var copies sync.WaitGroup
	var closeAfter []*os.File
	if !cs.Terminal {
		inR, inW, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		stdio = container.Stdio{Stdin: inR, Stdout: outW, Stderr: errW}
		defer func() {
			for _, f := range []*os.File{inR, inW, outW, errW} {
				f.Close()
			}
		}()
		closeAfter = []*os.File{inR, outW, errW}
		if req.Stdin != nil {
			go func() { // ends when the caller's stdin does, or at inW.Close
				_, _ = io.Copy(inW, req.Stdin) // the process sees its stdin end either way
				inW.Close()
			}()
		} else {
			inW.Close()
		}
		copies.Add(2)
		go func() { defer copies.Done(); copyTo(req.Stdout, outR); outR.Close() }()
		go func() { defer copies.Done(); copyTo(req.Stderr, errR); errR.Close() }()
	}
	r.AppLog(spec.AppID, spec.Name(), fmt.Sprintf("Starting process with command `%s`", strings.Join(req.Args, " ")))
	c, err := r.runc.Create(ctx, cs, stdio)
	for _, f := range closeAfter {
		f.Close() // the container has its own copies
	}
	if err != nil {
		copies.Wait() // nothing writes to the caller's streams after Run
		return 0, userError(err)
	}
	defer func() {
		if err := c.Delete(context.WithoutCancel(ctx)); err != nil {
			r.log.Warn("delete a one-off's container", "id", id, "err", err)
		}
	}()
	if cs.Terminal {
		if req.TTY.Width > 0 && req.TTY.Height > 0 {
			_ = c.Resize(req.TTY.Width, req.TTY.Height) // a terminal of the default size
		}
		copies.Add(1)
		go func() { defer copies.Done(); copyTo(req.Stdout, c.Console) }()
		if req.Stdin != nil {
			go func() { _, _ = io.Copy(c.Console, req.Stdin) }()
		}
		go func() {
			for {
				select {
				case ws, ok := <-req.TTY.Resize:
					if !ok {
						return
					}
					_ = c.Resize(ws.Width, ws.Height)
				case <-c.Exited():
					return
				}
			}
		}()
	}
	if err := c.Start(ctx); err != nil {
		_ = c.Delete(context.WithoutCancel(ctx)) // which ends the copies; the deferred Delete reports
		copies.Wait()
		return 0, err
	}
	st, err := c.Wait(ctx)
	if err != nil { // ctx ended: the caller went away
		_ = c.Kill() // it may have ended meanwhile: Wait tells
		st, _ = c.Wait(context.WithoutCancel(ctx))
	}
	done := make(chan struct{})
	go func() { copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		if cs.Terminal {
			c.Console.Close() // output still held by a grandchild's terminal
		}
		<-done
	}
	r.AppLog(spec.AppID, spec.Name(), "Process "+st.String())
	code := st.Code
	if code < 0 {
		code = 255
	}
	return code, nil
}

func copyTo(w io.Writer, r io.Reader) {
	if w == nil {
		w = io.Discard
	}
	_, _ = io.Copy(w, r) // to the caller's stream, which may have gone
}

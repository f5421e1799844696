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
	defer r.pin(spec.Image)()
	if !skiff.NamedOneOff(&spec) {
		spec.ProcessType = "run"
		r.mu.Lock()
		r.runSeq[spec.AppID]++
		spec.Index = r.runSeq[spec.AppID]
		r.mu.Unlock()
	}
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
	var streams runStreams
	if !cs.Terminal {
		if err := streams.pipe(req); err != nil {
			return 0, err
		}
		defer streams.close()
	}
	r.AppLog(spec.AppID, spec.Name(), fmt.Sprintf("Starting process with command `%s`", strings.Join(req.Args, " ")))
	c, err := r.runc.Create(ctx, cs, streams.stdio)
	streams.created()
	if err != nil {
		streams.copies.Wait() // nothing writes to the caller's streams after Run
		return 0, userError(err)
	}
	defer func() {
		if err := c.Delete(context.WithoutCancel(ctx)); err != nil {
			r.log.Warn("delete a one-off's container", "id", id, "err", err)
		}
	}()
	if cs.Terminal {
		streams.attachTerminal(c, req)
	}
	if err := c.Start(ctx); err != nil {
		_ = c.Delete(context.WithoutCancel(ctx)) // which ends the copies; the deferred Delete reports
		streams.copies.Wait()
		return 0, err
	}
	st, err := c.Wait(ctx)
	if err != nil { // ctx ended: the caller went away
		_ = c.Kill() // it may have ended meanwhile: Wait tells
		st, _ = c.Wait(context.WithoutCancel(ctx))
	}
	streams.drain(c, cs.Terminal)
	r.AppLog(spec.AppID, spec.Name(), "Process "+st.String())
	code := st.Code
	if code < 0 {
		code = 255
	}
	return code, nil
}

// runStreams connects a one-off to its caller's streams: three pipes
// without a terminal, the container's console with one. Nothing writes to
// the caller's streams once Run returns (copies).
type runStreams struct {
	stdio  container.Stdio
	copies sync.WaitGroup
	// ends are the container's ends of the pipes, closed once it holds
	// its own copies; mine are the pipes' other ends.
	ends, mine []*os.File
}

// pipe makes the three pipes and starts copying the caller's stdin in and
// the container's stdout and stderr out.
func (s *runStreams) pipe(req *skiff.RunRequest) error {
	var made []*os.File
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err != nil {
			for _, f := range made {
				f.Close()
			}
			return nil, nil, err
		}
		made = append(made, r, w)
		return r, w, nil
	}
	inR, inW, err := pipe()
	if err != nil {
		return err
	}
	outR, outW, err := pipe()
	if err != nil {
		return err
	}
	errR, errW, err := pipe()
	if err != nil {
		return err
	}
	s.stdio = container.Stdio{Stdin: inR, Stdout: outW, Stderr: errW}
	s.ends, s.mine = []*os.File{inR, outW, errW}, []*os.File{inW}
	if req.Stdin != nil {
		go func() { // ends when the caller's stdin does, or at close
			_, _ = io.Copy(inW, req.Stdin) // the process sees its stdin end either way
			inW.Close()
		}()
	} else {
		inW.Close()
	}
	s.copies.Add(2)
	go func() { defer s.copies.Done(); copyTo(req.Stdout, outR); outR.Close() }()
	go func() { defer s.copies.Done(); copyTo(req.Stderr, errR); errR.Close() }()
	return nil
}

// created closes the container's ends of the pipes: it has its own copies
// (or failed to start).
func (s *runStreams) created() {
	for _, f := range s.ends {
		f.Close()
	}
}

// close closes every end Run still holds (closing one twice is harmless).
func (s *runStreams) close() {
	for _, f := range append(s.ends, s.mine...) {
		f.Close()
	}
}

// attachTerminal copies between the caller and the container's console,
// and passes the caller's window size changes on until the process exits.
func (s *runStreams) attachTerminal(c *container.Container, req *skiff.RunRequest) {
	if req.TTY.Width > 0 && req.TTY.Height > 0 {
		_ = c.Resize(req.TTY.Width, req.TTY.Height) // a terminal of the default size
	}
	s.copies.Add(1)
	go func() { defer s.copies.Done(); copyTo(req.Stdout, c.Console) }()
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

// drain waits for the output copies to end once the process has: a
// second at most with a terminal, whose output a grandchild may hold
// open, before the console is closed under them.
func (s *runStreams) drain(c *container.Container, terminal bool) {
	done := make(chan struct{})
	go func() { s.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		if terminal {
			c.Console.Close() // output still held by a grandchild's terminal
		}
		<-done
	}
}

func copyTo(w io.Writer, r io.Reader) {
	if w == nil {
		w = io.Discard
	}
	_, _ = io.Copy(w, r) // to the caller's stream, which may have gone
}

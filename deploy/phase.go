package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// The release phase, as Heroku and Dokku run it: a new release's
// predeploy script (app.json scripts.dokku.predeploy) and then its
// Procfile's release command each run once, as an attached one-off of the
// new image with the new config and mounts, after the build and before any
// of the release's instances start. Their output streams to the pusher and
// into the app's log (as release.<version>), and is kept with the release
// (releases:output). A task that exits non-zero, or outlives the release
// timeout, fails the release: the push is rejected with its last lines, no
// instance of it starts, and the previous release keeps all the traffic.
//
// Which releases run it (Heroku's rule): every release a user makes — a
// push, config:set and config:unset, releases:rollback (the target's own
// release command, against the current data), and a change of the app's
// mounts. A scale or a restart makes no release and runs nothing. A
// release made on an add-on's behalf (a link's URL) skips it, as Heroku's
// add-on releases do.
//
// After the switch, the release's postdeploy script (scripts.dokku
// .postdeploy), and after the app's very first deploy also Heroku's
// scripts.postdeploy, run the same way; their failure is reported, and the
// release stays deployed (Dokku's rule).

// runReleasePhase runs rel's release-phase tasks in order, stopping at the
// first that fails; the output so far is kept with the release either way.
func (p *Pipeline) runReleasePhase(ctx context.Context, app *skiff.App, rel *skiff.Release, out io.Writer) error {
	tasks := rel.ReleasePhase()
	if len(tasks) == 0 || p.cfg.Scheduler == nil {
		return nil
	}
	timeout, err := p.releaseTimeout(ctx, app)
	if err != nil {
		return err
	}
	w := p.taskOutput(app, rel, out)
	defer w.save(ctx, p)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, task := range tasks {
		if err := p.runTask(tctx, app, rel, task, w, out); err != nil {
			if ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
				return skiff.Errorf(skiff.EUNAVAILABLE, "the %s did not finish within %s (checks:set %s release-timeout=SECONDS)%s",
					taskName(task), timeout, app.Name, w.lastLines())
			}
			return err
		}
	}
	return nil
}

// runPostdeploy runs rel's postdeploy scripts after its switch; a failure
// is reported to the pusher and in the app's log, and changes nothing.
func (p *Pipeline) runPostdeploy(ctx context.Context, app *skiff.App, rel *skiff.Release, first bool, out io.Writer) {
	var tasks []skiff.ReleaseTask
	if rel.Scripts.Postdeploy != "" {
		tasks = append(tasks, skiff.ReleaseTask{Name: "postdeploy", Command: rel.Scripts.Postdeploy})
	}
	if first && rel.Scripts.FirstDeploy != "" {
		tasks = append(tasks, skiff.ReleaseTask{Name: "first postdeploy", Command: rel.Scripts.FirstDeploy})
	}
	if len(tasks) == 0 || p.cfg.Scheduler == nil {
		return
	}
	timeout, err := p.releaseTimeout(ctx, app)
	if err != nil {
		timeout = skiff.DefaultReleaseTimeout
	}
	w := p.taskOutput(app, rel, out)
	w.appendTo(ctx, p)
	defer w.save(context.WithoutCancel(ctx), p)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, task := range tasks {
		if err := p.runTask(tctx, app, rel, task, w, out); err != nil {
			msg := skiff.ErrorMessage(err)
			if errors.Is(tctx.Err(), context.DeadlineExceeded) {
				msg = fmt.Sprintf("the %s did not finish within %s", taskName(task), timeout)
			}
			fmt.Fprintf(out, " !     %s; v%d stays deployed\n", strings.ReplaceAll(msg, "\n", "\n !     "), rel.Version)
			p.appLog(app, "%s of v%d failed (v%d stays deployed): %s", taskName(task), rel.Version, rel.Version, msg)
		}
	}
}

func taskName(t skiff.ReleaseTask) string {
	switch t.Name {
	case "release":
		return "release command"
	case "predeploy", "postdeploy", "first postdeploy":
		return t.Name + " script"
	}
	return t.Name
}

func taskSource(t skiff.ReleaseTask) string {
	if t.ProcessType != "" {
		return "Procfile"
	}
	return "app.json"
}

// runTask runs one task as an attached one-off of rel.
func (p *Pipeline) runTask(ctx context.Context, app *skiff.App, rel *skiff.Release, task skiff.ReleaseTask, w *taskWriter, out io.Writer) error {
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		return err
	}
	if task.Name == "release" {
		step(out, "Running release command…")
	} else {
		step(out, "Running %s…", taskName(task))
	}
	detail(out, "%s (%s)", oneLine(task.Command), taskSource(task))
	spec := skiff.OneOffSpec(app, rel, skiff.OneOffRelease, f)
	spec.Index = rel.Version // release.<version> in the log, as its output is
	start := time.Now()
	code, err := p.sched.Run(ctx, &skiff.RunRequest{Spec: spec, Args: []string{task.Command}, Stdout: w, Stderr: w})
	w.flush()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			p.log.Error("release phase", "app", app.Name, "task", task.Name, "err", err)
		}
		return skiff.Errorf(skiff.ErrorCode(err), "the %s could not start: %s", taskName(task), skiff.ErrorMessage(err))
	}
	if code != 0 {
		return skiff.Errorf(skiff.EUNAVAILABLE, "the %s exited with status %d%s", taskName(task), code, w.lastLines())
	}
	detail(out, "%s finished in %.1fs", upperFirst(taskName(task)), time.Since(start).Seconds())
	return nil
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

// releaseTimeout is checks:set release-timeout=, or the default.
func (p *Pipeline) releaseTimeout(ctx context.Context, app *skiff.App) (time.Duration, error) {
	s, err := p.settings(ctx, app)
	if err != nil {
		return 0, err
	}
	return s.ReleasePhaseTimeout(), nil
}

// taskWriter takes a task's output: each line goes to the pusher as a
// detail line and into the app's log as release.<version>, and the last
// bytes are kept for the release.
type taskWriter struct {
	app  *skiff.App
	rel  *skiff.Release
	out  io.Writer
	log  func(line string)
	mu   sync.Mutex
	part []byte   // an unfinished line
	all  []byte   // everything, up to maxTaskOutput (the tail)
	last []string // the last lines, for an error message
	prev []byte   // output kept before this writer (postdeploy after the release phase)
}

const maxTaskOutput = 256 << 10

func (p *Pipeline) taskOutput(app *skiff.App, rel *skiff.Release, out io.Writer) *taskWriter {
	name := fmt.Sprintf("%s.%d", skiff.OneOffRelease, rel.Version)
	return &taskWriter{app: app, rel: rel, out: out, log: func(line string) {
		if p.cfg.Scheduler != nil {
			p.sched.AppLog(app.ID, name, line)
		}
	}}
}

func (w *taskWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, b...)
	if len(w.all) > maxTaskOutput {
		w.all = w.all[len(w.all)-maxTaskOutput:]
	}
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.line(string(bytes.TrimSuffix(w.part[:i], []byte("\r"))))
		w.part = w.part[i+1:]
	}
	if len(w.part) > 4096 { // a long line without an end
		w.line(string(w.part))
		w.part = nil
	}
	return len(b), nil
}

func (w *taskWriter) line(s string) {
	// As the build's output: the app's own text cannot repaint or retitle
	// the pusher's terminal (nor that of whoever reads it later).
	s = applog.CleanText([]byte(s))
	fmt.Fprintf(w.out, "       %s\n", s)
	w.log(s)
	w.last = append(w.last, s)
	if len(w.last) > 10 {
		w.last = w.last[len(w.last)-10:]
	}
}

// flush ends an unfinished last line.
func (w *taskWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.part) > 0 {
		w.line(string(w.part))
		w.part = nil
		w.all = append(w.all, '\n')
	}
}

// lastLines is ": its last lines:" and the lines, for an error message.
func (w *taskWriter) lastLines() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.last) == 0 {
		return " (it printed nothing)"
	}
	return "; its last lines:\n       " + strings.Join(w.last, "\n       ")
}

// appendTo makes the writer keep what the release already has first.
func (w *taskWriter) appendTo(ctx context.Context, p *Pipeline) {
	if prev, err := p.cfg.Store.ReleaseOutput(ctx, w.app.ID, w.rel.Version); err == nil {
		w.prev = prev
	}
}

// save keeps the output with the release.
func (w *taskWriter) save(ctx context.Context, p *Pipeline) {
	w.flush()
	w.mu.Lock()
	all := append(append([]byte(nil), w.prev...), w.all...)
	w.mu.Unlock()
	if len(all) == 0 {
		return
	}
	if err := p.cfg.Store.SetReleaseOutput(context.WithoutCancel(ctx), w.app.ID, w.rel.Version, all); err != nil {
		p.log.Error("keep release output", "app", w.app.Name, "version", w.rel.Version, "err", err)
	}
}

package skiff

import (
	"context"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// The commands a release runs besides its long-running processes: the
// release phase (a Procfile's `release:` and app.json's
// scripts.dokku.predeploy) before any of its instances start, and
// scripts.dokku.postdeploy after the switch.

// ReleaseProcessType is the Procfile type that holds the release command.
// It is never scaled and never counted in a formation.
const ReleaseProcessType = "release"

// MaxCommandLen caps a command from app.json.
const MaxCommandLen = 4096

// ValidateCommand checks a shell command written in app.json: text of at
// most MaxCommandLen bytes, not blank, with no control characters but tab
// and newline (a stray escape sequence would hide what really runs).
func ValidateCommand(cmd string) error {
	switch {
	case strings.TrimSpace(cmd) == "":
		return Errorf(EINVALID, "the command is empty")
	case len(cmd) > MaxCommandLen:
		return Errorf(EINVALID, "the command is longer than %d bytes", MaxCommandLen)
	case !utf8.ValidString(cmd):
		return Errorf(EINVALID, "the command is not UTF-8 text")
	case strings.ContainsFunc(cmd, func(r rune) bool { return (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f }):
		return Errorf(EINVALID, "the command contains a control character")
	}
	return nil
}

// DeployScripts are the commands of app.json's "scripts" that a release
// carries. Empty means none.
type DeployScripts struct {
	// Predeploy (scripts.dokku.predeploy) runs in the release phase, before
	// the Procfile's release command, as Dokku orders them.
	Predeploy string `json:"predeploy,omitempty"`
	// Postdeploy (scripts.dokku.postdeploy) runs after the switch; its
	// failure is reported, and the release stays.
	Postdeploy string `json:"postdeploy,omitempty"`
	// FirstDeploy (Heroku's scripts.postdeploy) runs after the switch of
	// the app's first deployed release only.
	FirstDeploy string `json:"first_deploy,omitempty"`
}

// ReleaseTask is one command of a release's release phase.
type ReleaseTask struct {
	Name    string // "predeploy" or "release", as the output names it
	Command string // a shell command; empty with ProcessType set
	// ProcessType, when set, runs the image's own process of that type
	// (a CNB image's /cnb/process/release) rather than Command.
	ProcessType string
}

// ReleasePhase returns what r's release phase runs, in order: the
// predeploy script, then the Procfile's release command (Dokku's order).
func (r *Release) ReleasePhase() []ReleaseTask {
	var tasks []ReleaseTask
	if r.Scripts.Predeploy != "" {
		tasks = append(tasks, ReleaseTask{Name: "predeploy", Command: r.Scripts.Predeploy})
	}
	if cmd, ok := r.ProcessTypes[ReleaseProcessType]; ok {
		tasks = append(tasks, ReleaseTask{Name: "release", Command: cmd, ProcessType: ReleaseProcessType})
	}
	return tasks
}

// CheckScalable says whether process type t of app may be scaled: never
// the release command, and, once the app has a release cur (nil before its
// first deploy, when any type may be set ahead), only one of cur's types.
func CheckScalable(app *App, cur *Release, t string) error {
	if t == ReleaseProcessType {
		return Errorf(EINVALID, "release is the release command: it runs once for each new release, before its instances start, and cannot be scaled")
	}
	if cur == nil {
		return nil
	}
	if _, ok := cur.ProcessTypes[t]; !ok {
		types := cur.ScalableTypes()
		sort.Strings(types)
		if len(types) == 0 {
			return Errorf(EINVALID, "%s has no process type %s; its release has none to scale", app.Name, t)
		}
		return Errorf(EINVALID, "%s has no process type %s; it has %s", app.Name, t, strings.Join(types, ", "))
	}
	return nil
}

// ScalableTypes are the process types of r that a formation may scale:
// all but the release command.
func (r *Release) ScalableTypes() []string {
	var types []string
	for t := range r.ProcessTypes {
		if t != ReleaseProcessType {
			types = append(types, t)
		}
	}
	return types
}

// OneOffSpec is the spec of a one-off process of release rel: a `run`, a
// release-phase task, a cron run. kind is its process type and names its
// limits (f[kind], or DefaultLimits) and the mounts it gets. The caller
// sets Index, Command and OneOff.
func OneOffSpec(app *App, rel *Release, kind string, f Formation) InstanceSpec {
	limits := f[kind].Limits
	if limits == (Limits{}) {
		limits = DefaultLimits
	}
	return InstanceSpec{AppID: app.ID, AppName: app.Name, Release: rel.Version, Image: rel.Image,
		ProcessType: kind, Env: rel.Config, Limits: limits, Mounts: MountsFor(rel.Mounts, kind)}
}

// NamedOneOff tells whether a one-off Run keeps the name its spec gives
// (a release phase's task: release.<version>) rather than run.N.
func NamedOneOff(spec *InstanceSpec) bool {
	return spec.ProcessType == OneOffRelease && spec.Index > 0
}

// FollowOneOff copies the output of a detached one-off instance (its app
// lines in the log) to w while it runs, and returns its exit code once it
// has exited (-1 when unknown, or when the instance was removed first).
// Ending ctx stops the copy, not the instance. poll is how often its state
// is looked at (0: 500 ms).
func FollowOneOff(ctx context.Context, s Scheduler, appID, id string, w io.Writer, poll time.Duration) (int, error) {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	find := func() (*Instance, error) {
		ins, err := s.Instances(ctx, appID)
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			if in.ID == id {
				return in, nil
			}
		}
		return nil, nil
	}
	in, err := find()
	if err != nil {
		return -1, err
	}
	if in == nil {
		return -1, Errorf(ENOTFOUND, "no such process")
	}
	q := LogQuery{AppID: appID, Process: in.Spec.Name(), Since: in.CreatedAt.Add(-time.Second), Lines: 1 << 20}
	seen := 0
	write := func(l LogLine) error {
		if l.Source != "app" {
			return nil
		}
		seen++
		_, err := io.WriteString(w, l.Text+"\n")
		return err
	}
	follow, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		fq := q
		fq.Follow = true
		_ = s.Logs(follow, fq, write) // ends with stop(); a writer's error ends it early, and the last read below catches up
	}()
	stop := func() { stopFollow(); <-followed }
	t := time.NewTicker(poll)
	defer t.Stop()
	code := -1
	for in != nil && in.State != InstanceExited {
		select {
		case <-ctx.Done():
			stop()
			return -1, ctx.Err()
		case <-t.C:
		}
		if in, err = find(); err != nil {
			stop()
			return -1, err
		}
	}
	if in != nil {
		code = in.ExitCode
	}
	// The last lines may still be on their way to the log.
	time.Sleep(poll / 2)
	stop()
	n := 0
	// The last lines, best effort: the run's code is what the caller needs.
	_ = s.Logs(ctx, q, func(l LogLine) error {
		if l.Source != "app" {
			return nil
		}
		if n++; n > seen {
			_, err := io.WriteString(w, l.Text+"\n")
			return err
		}
		return nil
	})
	return code, nil
}

package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// desiredScale is the formation applied to a release's process types: the
// formation's quantity where one is set, else one web instance (as on
// Heroku) and none of the other types; none of a stopped type.
func desiredScale(rel *skiff.Release, f skiff.Formation, settings *skiff.Settings) map[string]skiff.Scale {
	want := map[string]skiff.Scale{}
	for _, t := range rel.ScalableTypes() {
		s, ok := f[t]
		if !ok && t == "web" {
			s.Quantity = 1
		}
		if settings.IsStopped(t) {
			s.Quantity = 0
		}
		if s.Limits == (skiff.Limits{}) {
			s.Limits = skiff.DefaultLimits
		}
		want[t] = s
	}
	return want
}

// rollout says which instances a converge replaces: every type (a new
// release, a restart), some types (ps:restart web), or none (a scale).
type rollout struct {
	all   bool
	types map[string]bool
	// commit, for a new release, makes it current. It runs once the new
	// instances take the traffic and before the old ones are told to stop:
	// a daemon killed after the switch comes back with the release whose
	// instances serve as the current one.
	commit func() error
}

func (r rollout) replaces(t string) bool { return r.all || r.types[t] }

// converge makes the app run rel at its formation: it starts the instances
// that are missing or replaced, waits until the new web instances accept
// connections, switches the router to the web instances in one health-gated
// step (the router drains the old ones), and only then stops the old
// instances. If anything fails before the switch, the new instances are
// stopped and what ran before keeps running untouched.
func (p *Pipeline) converge(ctx context.Context, app *skiff.App, rel *skiff.Release, ro rollout, out io.Writer) error {
	if p.cfg.Scheduler == nil { // nothing runs here (--git-only)
		if ro.commit != nil {
			return ro.commit()
		}
		return nil
	}
	f, err := p.cfg.Store.Formation(ctx, app.ID)
	if err != nil {
		return err
	}
	settings, err := p.settings(ctx, app)
	if err != nil {
		return err
	}
	rt, err := p.clusterScheduler(ctx, settings.Cluster)
	if err != nil {
		return err
	}
	want := desiredScale(rel, f, settings)
	if rs, ok := rt.(skiff.RolloutScheduler); ok {
		return p.rollOut(ctx, app, rel, want, settings, ro, rs, out)
	}
	existing, err := rt.Instances(ctx, app.ID)
	if err != nil {
		return err
	}
	var keep, old []*skiff.Instance
	taken := map[string]bool{} // "web.1" of rel, kept
	for _, in := range existing {
		if in.Spec.OneOff {
			continue // a detached run: not part of the formation
		}
		s := in.Spec
		if s.Release == rel.Version && !ro.replaces(s.ProcessType) && s.Index <= want[s.ProcessType].Quantity &&
			s.Limits == want[s.ProcessType].Limits && in.State != skiff.InstanceStopping && !taken[s.Name()] {
			keep = append(keep, in)
			taken[s.Name()] = true
		} else {
			old = append(old, in)
		}
	}

	var specs []*skiff.InstanceSpec
	for _, t := range slices.Sorted(maps.Keys(want)) {
		for i := 1; i <= want[t].Quantity; i++ {
			spec := &skiff.InstanceSpec{AppID: app.ID, AppName: app.Name, Release: rel.Version, Image: rel.Image,
				ProcessType: t, Index: i, Env: rel.Config, Limits: want[t].Limits, Mounts: skiff.MountsFor(rel.Mounts, t)}
			if !taken[spec.Name()] {
				specs = append(specs, spec)
			}
		}
	}
	if len(specs) > 0 {
		step(out, "Starting %s of v%d", names(specs), rel.Version)
	}
	var started []*skiff.Instance
	abort := func(err error) error {
		p.stopAll(context.WithoutCancel(ctx), started, 0)
		return err
	}
	for _, spec := range specs {
		in, err := rt.Start(ctx, spec)
		if err != nil {
			if skiff.ErrorCode(err) == skiff.EINTERNAL {
				p.log.Error("start instance", "app", app.Name, "instance", spec.Name(), "err", err)
			}
			return abort(skiff.Errorf(skiff.ErrorCode(err), "could not start %s: %s", spec.Name(), skiff.ErrorMessage(err)))
		}
		started = append(started, in)
	}
	// Wait for every new web instance to accept connections; other types
	// have no port to check.
	var wg sync.WaitGroup
	errs := make([]error, len(started))
	for i, in := range started {
		if in.Spec.ProcessType != "web" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, p.cfg.ReadyTimeout)
			defer cancel()
			if err := rt.WaitReady(rctx, in.ID); err != nil {
				errs[i] = p.notReady(ctx, in, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return abort(err)
	}

	if p.cfg.Routes != nil {
		if err := p.setRoute(ctx, app, settings); err != nil {
			return abort(err)
		}
		current, err := rt.Instances(ctx, app.ID)
		if err != nil {
			return abort(err)
		}
		// New instances answered already; kept ones take traffic only while
		// up (a crashed one rejoins through Watch once it is back).
		var addrs []string
		for _, in := range current {
			if in.Spec.ProcessType == "web" && in.Addr != "" && (contains(started, in.ID) || contains(keep, in.ID) && in.State == skiff.InstanceUp) {
				addrs = append(addrs, in.Addr)
			}
		}
		sort.Strings(addrs)
		if len(addrs) > 0 || want["web"].Quantity == 0 {
			if len(specs) > 0 || len(old) > 0 {
				step(out, "Switching traffic to %d web instance(s)", len(addrs))
			}
			if err := p.cfg.Routes.Deploy(ctx, app.ID, addrs); err != nil {
				return abort(skiff.Errorf(skiff.ErrorCode(err), "the new instances failed the health check: %s", skiff.ErrorMessage(err)))
			}
		}
	}
	if ro.commit != nil {
		if err := ro.commit(); err != nil {
			// The old instances still run: give them the traffic back.
			p.switchBack(ctx, app, old)
			return abort(err)
		}
	}
	if len(old) > 0 {
		step(out, "Stopping %d old instance(s)", len(old))
		p.stopAll(context.WithoutCancel(ctx), old, p.cfg.StopGrace)
	}
	return nil
}

// switchBack routes to the web instances of old that are up, after a
// switch that could not be committed.
func (p *Pipeline) switchBack(ctx context.Context, app *skiff.App, old []*skiff.Instance) {
	if p.cfg.Routes == nil {
		return
	}
	var addrs []string
	for _, in := range old {
		if in.Spec.ProcessType == "web" && in.State == skiff.InstanceUp && in.Addr != "" {
			addrs = append(addrs, in.Addr)
		}
	}
	sort.Strings(addrs)
	if len(addrs) == 0 {
		return
	}
	if err := p.cfg.Routes.Deploy(context.WithoutCancel(ctx), app.ID, addrs); err != nil {
		p.log.Error("switch back to the old instances", "app", app.Name, "err", err)
	}
}

// notReady explains why a new instance never became ready, with the last
// lines it printed.
func (p *Pipeline) notReady(ctx context.Context, in *skiff.Instance, cause error) error {
	var lines []string
	_ = p.sched.Logs(ctx, skiff.LogQuery{AppID: in.Spec.AppID, Process: in.Spec.Name(), Since: in.CreatedAt, Lines: 10}, func(l skiff.LogLine) error { // the lines are a courtesy
		lines = append(lines, l.Text)
		return nil
	})
	msg := fmt.Sprintf("%s did not become ready: %v", in.Spec.Name(), cause)
	if m := skiff.ErrorMessage(cause); strings.HasPrefix(m, in.Spec.Name()+" ") { // WaitReady's own words name it (skiff.Scheduler)
		msg = m
	}
	if errors.Is(cause, context.DeadlineExceeded) {
		msg = fmt.Sprintf("%s did not accept connections on $PORT within %s", in.Spec.Name(), p.cfg.ReadyTimeout)
	}
	if len(lines) > 0 {
		msg += "; its last lines:\n       " + strings.Join(lines, "\n       ")
	}
	return skiff.Errorf(skiff.EUNAVAILABLE, "%s", msg)
}

func (p *Pipeline) stopAll(ctx context.Context, ins []*skiff.Instance, grace time.Duration) {
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.sched.Stop(ctx, in.ID, grace); err != nil {
				p.log.Error("stop instance", "app", in.Spec.AppName, "instance", in.Spec.Name(), "err", err)
			}
		}()
	}
	wg.Wait()
}

func contains(ins []*skiff.Instance, id string) bool {
	return slices.ContainsFunc(ins, func(in *skiff.Instance) bool { return in.ID == id })
}

func names(specs []*skiff.InstanceSpec) string {
	n := make([]string, len(specs))
	for i, s := range specs {
		n[i] = s.Name()
	}
	return strings.Join(n, ", ")
}

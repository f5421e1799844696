package deploy

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff"
)

// PreReceive runs the pipeline for a push: check which refs it may
// update, record it, build the pushed commit, release the image and roll it
// out. Any failure rejects the push (git leaves the ref where it was) and
// the current release keeps serving.
func (p *Pipeline) PreReceive(ctx context.Context, req *skiff.PushRequest, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, req.App, "push")
	if err != nil {
		return err
	}
	defer unlock()
	app := req.App

	update, err := p.deployUpdate(ctx, req)
	if err != nil {
		return err
	}
	commit, err := p.cfg.Repos.ReadCommit(ctx, app.ID, update.New, req.GitEnv)
	if err != nil {
		return fmt.Errorf("read pushed commit: %w", err)
	}
	branch := strings.TrimPrefix(update.Ref, "refs/heads/")
	step(out, "Received %s %s on %s from %s", app.Name, commit.Short(), branch, req.Pusher.Name)
	if commit.Subject != "" {
		detail(out, "%q — %s", commit.Subject, commit.Author)
	}
	appJSON, err := p.readAppJSON(ctx, app, commit.ID, req.GitEnv)
	if err != nil {
		return err
	}
	push := &skiff.Push{AppID: app.ID, Ref: update.Ref, OldCommit: update.Old, Commit: update.New, Pusher: req.Pusher.Name}
	if err := p.cfg.Store.RecordPush(ctx, push); err != nil {
		return err
	}
	if p.cfg.Builder == nil {
		step(out, "Recorded push #%d of %s", push.ID, app.Name)
		return nil
	}

	if err := p.buildAndRelease(ctx, app, commit, appJSON, req.GitEnv, out); err != nil {
		return err
	}
	p.collectGarbage(context.WithoutCancel(ctx))
	return nil
}

// buildAndRelease builds the commit and releases the image. The image
// collector waits while it runs: between the export and the release, the
// new image is referenced by nothing the collector could see.
func (p *Pipeline) buildAndRelease(ctx context.Context, app *skiff.App, commit *skiff.Commit, appJSON *skiff.AppJSON, gitEnv []string, out io.Writer) error {
	p.gc.RLock()
	defer p.gc.RUnlock()
	result, build, err := p.build(ctx, app, commit, gitEnv, out)
	if err != nil {
		return err
	}
	cfg, err := p.cfg.Store.Config(ctx, app.ID)
	if err != nil {
		return err
	}
	mounts, err := p.cfg.Store.Mounts(ctx, app.ID)
	if err != nil {
		return err
	}
	rel := &skiff.Release{AppID: app.ID, Image: result.Image, Config: cfg, ProcessTypes: result.ProcessTypes,
		Mounts: mounts, BuildID: build.ID, Commit: commit.ID, Description: "Deploy " + commit.Short()}
	if appJSON != nil {
		rel.Scripts = appJSON.DeployScripts()
		if rel.Cron, err = appJSON.CronJobs(); err != nil {
			return err
		}
	}
	return p.release(ctx, app, rel, nil, out)
}

// build builds the pushed commit and records the build.
func (p *Pipeline) build(ctx context.Context, app *skiff.App, commit *skiff.Commit, gitEnv []string, out io.Writer) (*skiff.BuildResult, *skiff.Build, error) {
	settings, err := p.cfg.Store.Settings(ctx, app.ID)
	if err != nil {
		return nil, nil, err // a setting that does not parse: the message says how to fix it
	}
	buildEnv, err := p.cfg.Store.BuildConfig(ctx, app.ID)
	if err != nil {
		return nil, nil, err
	}
	previous := ""
	if cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID); err == nil {
		previous = cur.Image
	}
	b := &skiff.Build{AppID: app.ID, Commit: commit.ID, Builder: settings.Builder}
	if err := p.cfg.Store.CreateBuild(ctx, b); err != nil {
		return nil, nil, err
	}
	// The source streams from git archive straight into the build.
	src, srcW := io.Pipe()
	archiveCtx, stopArchive := context.WithCancel(ctx)
	defer stopArchive()
	go func() {
		srcW.CloseWithError(p.cfg.Repos.Archive(archiveCtx, app.ID, commit.ID, gitEnv, srcW))
	}()
	res, err := p.cfg.Builder.Build(ctx, &skiff.BuildRequest{
		App: app, BuildID: b.Key(), Commit: commit.ID, Source: src,
		Builder: settings.Builder, Buildpacks: settings.Buildpacks,
		Env: buildEnv, PreviousImage: previous,
	}, out)
	src.Close()
	finish := context.WithoutCancel(ctx)
	if err != nil {
		b.Status, b.Error = skiff.BuildFailed, skiff.ErrorMessage(err)
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			p.log.Error("build", "app", app.Name, "build", b.ID, "err", err)
		}
		if ctx.Err() != nil {
			b.Error = "canceled: the push was interrupted"
		}
		if ferr := p.cfg.Store.FinishBuild(finish, b); ferr != nil {
			p.log.Error("record build", "err", ferr)
		}
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			return nil, nil, skiff.Errorf(skiff.EUNAVAILABLE, "Build failed: the server could not run build %d; an admin finds why in the server log", b.ID)
		}
		return nil, nil, skiff.Errorf(skiff.ErrorCode(err), "Build failed: %s", skiff.ErrorMessage(err))
	}
	b.Status, b.Image, b.Builder, b.Buildpacks, b.Phases = skiff.BuildSucceeded, res.Image, res.Builder, res.Buildpacks, res.Phases
	if err := p.cfg.Store.FinishBuild(finish, b); err != nil {
		return nil, nil, err
	}
	if len(res.ProcessTypes) == 0 {
		return nil, nil, skiff.Errorf(skiff.EINVALID, "the image declares no process types: add a Procfile (web: <command>)")
	}
	return res, b, nil
}

// release stores rel as the next release, runs its release phase (see
// phase.go), rolls it out and makes it current once its instances take
// the traffic, applying ch (the config change that made it) in the same
// transaction, then runs its postdeploy scripts. If the release phase or
// the rollout fails, the release is marked failed and the previous one
// keeps serving with its config.
func (p *Pipeline) release(ctx context.Context, app *skiff.App, rel *skiff.Release, ch *skiff.ConfigChange, out io.Writer) error {
	return p.releaseWith(ctx, app, rel, ch, true, out)
}

// releaseWith is release; phase false skips the release phase (a release
// made on an add-on's behalf).
func (p *Pipeline) releaseWith(ctx context.Context, app *skiff.App, rel *skiff.Release, ch *skiff.ConfigChange, phase bool, out io.Writer) error {
	rel.Change = ch
	_, curErr := p.cfg.Store.CurrentRelease(ctx, app.ID)
	first := skiff.ErrorCode(curErr) == skiff.ENOTFOUND
	if err := p.cfg.Store.CreateRelease(ctx, rel); err != nil {
		return err
	}
	step(out, "Releasing v%d (%s)", rel.Version, rel.Description)
	deploy := func() error { return p.cfg.Store.DeployRelease(context.WithoutCancel(ctx), app.ID, rel.Version, ch) }
	err := p.pushImage(ctx, app, rel, out)
	if err == nil && phase {
		err = p.runReleasePhase(ctx, app, rel, out)
	}
	if err == nil {
		err = p.converge(ctx, app, rel, rollout{all: true, commit: deploy}, out)
	}
	if err != nil {
		reason := skiff.ErrorMessage(err)
		if ctx.Err() != nil {
			reason = "interrupted"
		}
		if ferr := p.cfg.Store.FailRelease(context.WithoutCancel(ctx), app.ID, rel.Version, reason); ferr != nil {
			p.log.Error("record failed release", "err", ferr)
		}
		if p.cfg.Scheduler != nil {
			p.sched.AppLog(app.ID, "", fmt.Sprintf("Release v%d failed: %s", rel.Version, reason))
		}
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			p.log.Error("release", "app", app.Name, "version", rel.Version, "err", err)
		}
		return skiff.Errorf(skiff.EUNAVAILABLE, "Release v%d failed, the previous release keeps serving: %s", rel.Version, skiff.ErrorMessage(err))
	}
	if p.cfg.Scheduler != nil {
		p.sched.AppLog(app.ID, "", fmt.Sprintf("Deployed v%d (%s) by %s", rel.Version, rel.Description, skiff.ActorFrom(ctx).Name))
	}
	step(out, "Released v%d", rel.Version)
	if p.cfg.OnRelease != nil {
		p.cfg.OnRelease(app.ID)
	}
	p.runPostdeploy(ctx, app, rel, first, out)
	fmt.Fprintf(out, "=====> Application deployed:\n       %s\n", p.webURL(app))
	return nil
}

func (p *Pipeline) webURL(app *skiff.App) string {
	u := "http://" + app.Name + "." + p.cfg.BaseDomain
	if port := p.cfg.HTTPPort; port != 0 && port != 80 {
		u += ":" + strconv.Itoa(port)
	}
	return u
}

// deployUpdate picks the update that deploys, and refuses the push when any
// ref is one skiff does not take: other branches, tags, or deleting the
// deploy branch. A repository that has only master may push master while
// the deploy branch is the default main.
func (p *Pipeline) deployUpdate(ctx context.Context, req *skiff.PushRequest) (*skiff.RefUpdate, error) {
	deployRef := "refs/heads/" + req.App.DeployBranch
	var deploy *skiff.RefUpdate
	var refused []string
	hasDeployRef := false
	for _, u := range req.Updates {
		if u.Ref == deployRef {
			hasDeployRef = true
		}
	}
	for i := range req.Updates {
		u := &req.Updates[i]
		switch {
		case u.Ref == deployRef && skiff.IsZeroID(u.New):
			refused = append(refused, fmt.Sprintf("deleting %s is not allowed: it is the deploy branch of %s", req.App.DeployBranch, req.App.Name))
		case u.Ref == deployRef:
			deploy = u
		case u.Ref == "refs/heads/master" && req.App.DeployBranch == skiff.DefaultDeployBranch && !hasDeployRef && !skiff.IsZeroID(u.New):
			has, err := p.cfg.Repos.HasBranch(ctx, req.App.ID, skiff.DefaultDeployBranch)
			if err != nil {
				return nil, err
			}
			if has {
				refused = append(refused, fmt.Sprintf("%s deploys branch main; push it with `git push <remote> master:main`", req.App.Name))
			} else {
				deploy = u
			}
		case strings.HasPrefix(u.Ref, "refs/tags/"):
			refused = append(refused, fmt.Sprintf("tags are not accepted (%s): %s deploys branch %s", strings.TrimPrefix(u.Ref, "refs/tags/"), req.App.Name, req.App.DeployBranch))
		case strings.HasPrefix(u.Ref, "refs/heads/"):
			b := strings.TrimPrefix(u.Ref, "refs/heads/")
			refused = append(refused, fmt.Sprintf("branch %s is not deployed: %s deploys branch %s; push it with `git push <remote> %s:%s`", b, req.App.Name, req.App.DeployBranch, b, req.App.DeployBranch))
		default:
			refused = append(refused, fmt.Sprintf("ref %s is not accepted: %s deploys branch %s", u.Ref, req.App.Name, req.App.DeployBranch))
		}
	}
	if len(refused) > 0 {
		return nil, skiff.Errorf(skiff.EINVALID, "push rejected: %s", strings.Join(refused, "; "))
	}
	if deploy == nil {
		return nil, skiff.Errorf(skiff.EINVALID, "push rejected: nothing to deploy (push branch %s)", req.App.DeployBranch)
	}
	return deploy, nil
}

// step and detail write the buildpack convention's step and detail lines.
func step(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "-----> "+format+"\n", args...)
}

func detail(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "       "+format+"\n", args...)
}

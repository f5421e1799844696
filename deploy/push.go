package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/skiffhq/skiff"
)

// PreReceive runs the pipeline for a push. Today it checks which refs the
// push may update, reads the pushed commit, and records the push; the build
// and release steps join here.
func (p *Pipeline) PreReceive(ctx context.Context, req *skiff.PushRequest, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, req.App, "push")
	if err != nil {
		return err
	}
	defer unlock()

	update, err := p.deployUpdate(ctx, req)
	if err != nil {
		return err
	}
	commit, err := p.cfg.Repos.ReadCommit(ctx, req.App.ID, update.New, req.GitEnv)
	if err != nil {
		return fmt.Errorf("read pushed commit: %w", err)
	}
	branch := strings.TrimPrefix(update.Ref, "refs/heads/")
	step(out, "Received %s %s on %s from %s", req.App.Name, commit.Short(), branch, req.Pusher.Name)
	if commit.Subject != "" {
		detail(out, "%q — %s", commit.Subject, commit.Author)
	}
	push := &skiff.Push{AppID: req.App.ID, Ref: update.Ref, OldCommit: update.Old, Commit: update.New, Pusher: req.Pusher.Name}
	if err := p.cfg.Pushes.RecordPush(ctx, push); err != nil {
		return err
	}
	step(out, "Recorded push #%d of %s", push.ID, req.App.Name)
	return nil
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

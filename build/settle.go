package build

import (
	"context"
	"os"
	"time"
)

// settle runs a build's last steps after Build has returned, so that a
// push's release need not wait for them: remove the build's container
// (runc's state, its cgroup, its veth, its mounts), keep its cache (the
// layers it marked cache=true become the app's cache, see keepCache), and
// remove its scratch space (DATA/tmp/builds/<build-id>: the workspace, the
// exported layout, the cache overlay, unmounted first).
//
// The guarantees: the next build of the same app, PurgeCache of it and
// the removal of stale builders wait until the app's last build has
// settled (waitSettled); Close waits for every build to settle; a daemon
// killed before a build settled leaves what Cleanup removes at the next
// start (the container by runc's state and cgroups, the scratch space by
// RemoveScratch, mounts first), and a cache whose merge it interrupted is
// dropped by the next build (cacheMerging).
func (p *Platform) settle(j *job) {
	appID := j.req.App.ID
	done := make(chan struct{})
	p.mu.Lock()
	prev := p.settling[appID]
	p.settling[appID] = done
	p.mu.Unlock()
	p.settles.Add(1)
	go func() {
		defer p.settles.Done()
		times := &stepTimes{last: time.Now()}
		if prev != nil {
			<-prev // in order, though Build waits for the previous one
		}
		if p.settleHook != nil && !p.settleHook(j.req.BuildID) {
			close(done)
			return
		}
		if j.removeSandbox != nil {
			j.removeSandbox()
			times.mark("delete")
		}
		if j.keepCache {
			p.keepCache(j)
			times.mark("cache")
		}
		// The cache's overlay, whatever happened; RemoveAll then reports a
		// mount left.
		if err := unmountUnder(j.work); err != nil {
			p.log.Warn("unmount build scratch", "build", j.req.BuildID, "err", err)
		} else if err := os.RemoveAll(j.work); err != nil {
			p.log.Warn("remove build scratch", "build", j.req.BuildID, "err", err)
		}
		times.mark("cleanup")
		p.mu.Lock()
		if p.settling[appID] == done {
			delete(p.settling, appID)
		}
		p.mu.Unlock()
		close(done)
		p.log.Debug("build settled", "app", appID, "build", j.req.BuildID, "steps", times.String())
	}()
}

// waitSettled waits until the app's last build has settled, or ctx ends.
func (p *Platform) waitSettled(ctx context.Context, appID string) error {
	p.mu.Lock()
	ch := p.settling[appID]
	p.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return canceled(ctx)
	}
}

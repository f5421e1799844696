package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// Deploy switches an app to new backends with no failed request: the new
// ones must pass the health check, the pool is swapped in one atomic store,
// and Deploy returns once the replaced backends are drained. See skiff.Routes.
func (r *Router) Deploy(ctx context.Context, appID string, addrs []string) error {
	a := r.lookupID(appID)
	if a == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "app is not routed")
	}
	for _, addr := range addrs {
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return skiff.Errorf(skiff.EINVALID, "invalid backend address %q: want ip:port", clip(addr))
		}
	}
	st := a.state
	st.deployMu.Lock()
	defer st.deployMu.Unlock()

	old := st.pool.Load()
	kept := map[string]*backend{}
	for _, b := range old.backends {
		kept[b.addr] = b
	}
	next := &pool{}
	var fresh []string
	seen := map[string]bool{}
	for _, addr := range addrs {
		if seen[addr] {
			continue
		}
		seen[addr] = true
		if b := kept[addr]; b != nil {
			next.backends = append(next.backends, b)
			continue
		}
		fresh = append(fresh, addr)
		next.backends = append(next.backends, newBackend(addr))
	}
	if err := r.checkAll(ctx, r.lookupID(appID), fresh); err != nil {
		return err
	}
	if r.lookupID(appID) == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "app was removed during the deploy")
	}
	st.pool.Store(next)
	var gone []*backend
	for _, b := range old.backends {
		if !seen[b.addr] {
			gone = append(gone, b)
		}
	}
	grace := a.route.DrainTimeout
	if grace <= 0 {
		grace = r.cfg.DrainTimeout
	}
	return r.drain(ctx, gone, grace)
}

// checkAll health-checks the new backends in parallel.
func (r *Router) checkAll(ctx context.Context, a *app, addrs []string) error {
	if a == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "app was removed during the deploy")
	}
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() { errs[i] = r.checkHealth(ctx, a, addr) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkHealth polls one backend until it answers as a.route.Health asks, or
// the check's deadline passes.
func (r *Router) checkHealth(ctx context.Context, a *app, addr string) error {
	hc := a.route.Health
	timeout, interval, deadline := orDefault(hc.Timeout, skiff.DefaultCheckTimeout), orDefault(hc.Interval, skiff.DefaultCheckInterval), orDefault(hc.Deadline, skiff.DefaultCheckDeadline)
	path := hc.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	host := "localhost"
	if len(a.hosts) > 0 {
		host = a.hosts[0]
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	var last error
	for {
		last = r.probe(ctx, addr, host, path, timeout, hc.Path != "")
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return skiff.Errorf(skiff.EUNAVAILABLE, "instance %s failed its health check (GET %s): %v", addr, path, last)
		case <-time.After(interval):
		}
	}
}

func (r *Router) probe(ctx context.Context, addr, host, path string, timeout time.Duration, strict bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Host = host
	req.Header.Set("User-Agent", "skiff-health-check")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := r.health.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 || strict && resp.StatusCode >= 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// drain waits until the replaced backends have nothing in flight, for at
// most grace; then it cuts what is left (streams, websockets) and waits a
// moment for those requests to end.
func (r *Router) drain(ctx context.Context, gone []*backend, grace time.Duration) error {
	if len(gone) == 0 {
		return nil
	}
	busy := func() bool {
		for _, b := range gone {
			if b.inflight.Load() > 0 {
				return true
			}
		}
		return false
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for busy() {
		select {
		case <-tick.C:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		}
	}
	for _, b := range gone {
		b.cut.Store(true)
		r.direct.dropIdle(b.addr)
		r.conns.closeAll(b.addr)
	}
	for end := time.Now().Add(2 * time.Second); busy() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

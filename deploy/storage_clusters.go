package deploy

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// Volumes of apps on clusters. There a volume is a claim in the namespace
// of the app that mounted it (the kubernetes package's volumes.go), so its
// data is that app's, on that cluster: a volume whose claim is on a cluster
// cannot be mounted by an app elsewhere (this server, another cluster,
// another app), and storage:destroy removes the claim with the rest.

// claimScheduler is a scheduler that keeps volumes as claims of its own.
type claimScheduler interface {
	// VolumeClaims lists the ids of the apps that hold a claim of each
	// volume (by the volume's id).
	VolumeClaims(ctx context.Context) (map[string][]string, error)
	// RemoveVolume deletes the volume's claims.
	RemoveVolume(ctx context.Context, volumeID string) error
	// GrowVolume grows the volume's claims to size bytes: EINVALID, with
	// nothing changed, for a claim that cannot grow; pending says what a
	// claim whose larger request the cluster took but has not met yet
	// waits on.
	GrowVolume(ctx context.Context, volumeID string, size int64) (pending string, err error)
}

// claimSchedulers are the schedulers of every cluster that keeps claims,
// by cluster name.
func (p *Pipeline) claimSchedulers(ctx context.Context) (map[string]claimScheduler, error) {
	if p.cfg.Clusters == nil {
		return nil, nil
	}
	list, err := p.cfg.Store.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]claimScheduler{}
	for _, c := range list {
		s, err := p.cfg.Clusters.Scheduler(ctx, c.Name)
		if err != nil {
			out[c.Name] = unreachable{err}
			continue
		}
		if cs, ok := s.(claimScheduler); ok {
			out[c.Name] = cs
		}
	}
	return out, nil
}

// unreachable is a cluster whose scheduler could not be opened.
type unreachable struct{ err error }

func (u unreachable) VolumeClaims(context.Context) (map[string][]string, error) { return nil, u.err }
func (u unreachable) RemoveVolume(context.Context, string) error                { return u.err }
func (u unreachable) GrowVolume(context.Context, string, int64) (string, error) { return "", u.err }

// checkVolumeFor refuses to mount v into app where v's data is not:
// another app's volume on a cluster, or a volume whose claim is on a
// cluster for an app that runs elsewhere.
func (p *Pipeline) checkVolumeFor(ctx context.Context, app *skiff.App, cluster string, v *skiff.Volume) error {
	if cluster != "" {
		for _, other := range v.Apps {
			if other != app.Name {
				return skiff.Errorf(skiff.EINVALID, "storage %s is mounted by %s; on cluster %s a volume is one app's (a claim in the app's namespace), so %s cannot share it: make another (storage:ensure-directory)",
					v.Name, other, cluster, app.Name)
			}
		}
	}
	claims, err := p.claimSchedulers(ctx)
	if err != nil {
		return err
	}
	for name, cs := range claims {
		all, err := cs.VolumeClaims(ctx)
		if err != nil && name == cluster {
			p.log.Warn("list a cluster's claims", "cluster", name, "err", err)
			return skiff.Errorf(skiff.EUNAVAILABLE, "cannot tell whether cluster %s holds the data of storage %s: it does not answer; try again when it does", name, v.Name)
		}
		if err != nil {
			// Another cluster that does not answer: it cannot be asked, and
			// its claim (if any) holds data this mount would not see.
			p.log.Warn("list a cluster's claims; mounting without its answer", "cluster", name, "volume", v.Name, "err", err)
			continue
		}
		for _, h := range all[v.ID] {
			if name == cluster && h == app.ID {
				continue
			}
			holder := h
			if a, err := p.cfg.Store.FindAppByID(ctx, h); err == nil {
				holder = a.Name
			}
			where := "this server"
			if cluster != "" {
				where = "cluster " + cluster
			}
			return skiff.Errorf(skiff.EINVALID, "the data of storage %s is in a claim of %s on cluster %s, and does not move to %s for %s: mount it there, or storage:destroy it and make another",
				v.Name, holder, name, where, app.Name)
		}
	}
	return nil
}

// removeVolumeClaims deletes the claims of a volume that is being
// destroyed, on every cluster; a cluster that does not answer fails it
// (the volume is kept, so that storage:destroy can be run again).
func (p *Pipeline) removeVolumeClaims(ctx context.Context, v *skiff.Volume) error {
	claims, err := p.claimSchedulers(ctx)
	if err != nil {
		return err
	}
	var failed []string
	for name, cs := range claims {
		if err := cs.RemoveVolume(ctx, v.ID); err != nil {
			p.log.Error("remove a volume's claims", "cluster", name, "volume", v.Name, "err", err)
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return skiff.Errorf(skiff.EUNAVAILABLE, "storage %s is kept: its claims on cluster %s could not be removed; try again when the cluster answers", v.Name, strings.Join(failed, ", "))
	}
	return nil
}

// checkNoClaims refuses to move an app off cluster while it holds claims
// there (of volumes it mounted once): moving removes its namespace, and
// their data with it.
func (p *Pipeline) checkNoClaims(ctx context.Context, app *skiff.App, cluster string) error {
	s, err := p.cfg.Clusters.Scheduler(ctx, cluster)
	if err != nil {
		return err
	}
	cs, ok := s.(claimScheduler)
	if !ok {
		return nil
	}
	all, err := cs.VolumeClaims(ctx)
	if err != nil {
		p.log.Warn("list a cluster's claims", "cluster", cluster, "err", err)
		return skiff.Errorf(skiff.EUNAVAILABLE, "cannot tell whether %s holds data on cluster %s: it does not answer; try again when it does", app.Name, cluster)
	}
	for id, holders := range all {
		if slices.Contains(holders, app.ID) {
			name := id
			if vols, err := p.cfg.Store.ListVolumes(ctx); err == nil {
				for _, v := range vols {
					if v.ID == id {
						name = v.Name
					}
				}
			}
			return skiff.Errorf(skiff.EINVALID, "%s keeps the data of storage %s in a claim on cluster %s, which moving the app would remove: storage:destroy %s first (after copying what it holds), or keep the app there",
				app.Name, name, cluster, name)
		}
	}
	return nil
}

// growVolumeClaims grows the claims of a volume that storage:resize grows,
// on every cluster, before its size here changes: a claim that cannot grow
// refuses the resize. A cluster that does not answer refuses it too (it
// may hold a claim of the volume, which would not grow). It returns what
// the claims the clusters have not grown yet wait on.
func (p *Pipeline) growVolumeClaims(ctx context.Context, v *skiff.Volume, size int64) (string, error) {
	claims, err := p.claimSchedulers(ctx)
	if err != nil {
		return "", err
	}
	var pending []string
	for _, name := range slices.Sorted(maps.Keys(claims)) {
		cs := claims[name]
		pend, err := cs.GrowVolume(ctx, v.ID, size)
		if _, down := cs.(unreachable); down {
			p.log.Warn("grow a volume's claims", "cluster", name, "volume", v.Name, "err", err)
			return "", skiff.Errorf(skiff.EUNAVAILABLE, "cannot tell whether cluster %s holds a claim of storage %s, which would have to grow too: it does not answer; try again when it does", name, v.Name)
		}
		if err != nil {
			return "", err
		}
		if pend != "" {
			pending = append(pending, pend)
		}
	}
	return strings.Join(pending, "; "), nil
}

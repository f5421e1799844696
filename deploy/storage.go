package deploy

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// CreateVolume makes a volume of size bytes (0: Config.VolumeSize): its
// record, then the volume. If the volume cannot be made the record goes
// again, so nothing half-made remains. An existing volume of that name is
// ECONFLICT; one that would take the sizes past Config.StorageBudget is
// EUNAVAILABLE.
func (p *Pipeline) CreateVolume(ctx context.Context, name string, size int64) (*skiff.Volume, error) {
	if p.cfg.Volumes == nil {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "this server keeps no storage")
	}
	if size == 0 {
		size = p.cfg.VolumeSize
	}
	p.storageMu.Lock()
	defer p.storageMu.Unlock()
	if err := p.checkBudget(ctx, size, "", ""); err != nil {
		return nil, err
	}
	v := &skiff.Volume{Name: name, SizeBytes: size}
	if err := p.cfg.Store.CreateVolume(ctx, v); err != nil {
		return nil, err
	}
	if err := p.cfg.Volumes.Ensure(ctx, v.ID, size); err != nil {
		if derr := p.cfg.Store.DeleteVolume(context.WithoutCancel(ctx), name); derr != nil {
			p.log.Error("undo storage create", "name", name, "err", derr)
		}
		if skiff.ErrorCode(err) != skiff.EINTERNAL {
			return nil, err
		}
		return nil, fmt.Errorf("make storage %s: %w", name, err)
	}
	return v, nil
}

// ReserveServiceVolume implements skiff.Deployer: the service's volume
// is recorded only if its size fits in the budget, checked under the lock
// that CreateVolume and ResizeVolume hold.
func (p *Pipeline) ReserveServiceVolume(ctx context.Context, v *skiff.Volume, what string) error {
	if v.Service == "" || v.SizeBytes < 0 {
		return skiff.Errorf(skiff.EINVALID, "a service's volume names its service and has a size")
	}
	p.storageMu.Lock()
	defer p.storageMu.Unlock()
	if what == "" {
		what = "service " + v.Service
	}
	if err := p.checkBudget(ctx, v.SizeBytes, "", what); err != nil {
		return err
	}
	return p.cfg.Store.CreateVolume(ctx, v)
}

// StorageBudget implements skiff.Deployer.
func (p *Pipeline) StorageBudget(ctx context.Context) (skiff.StorageBudget, error) {
	return p.budget(ctx, "")
}

// budget adds up the volumes' sizes, but for the volume called except.
// It is the one place that does: the budget's rule is here.
func (p *Pipeline) budget(ctx context.Context, except string) (skiff.StorageBudget, error) {
	b := skiff.StorageBudget{BudgetBytes: max(p.cfg.StorageBudget, 0)}
	vols, err := p.cfg.Store.ListVolumes(ctx)
	if err != nil {
		return b, err
	}
	for _, v := range vols {
		if v.Name != except {
			b.GivenBytes += v.SizeBytes
		}
	}
	return b, nil
}

// checkBudget refuses a size that would take the volumes' sizes past the
// budget; except is a volume whose own size the new one replaces, service
// describes the backing service whose disks ask for it ("": a volume).
func (p *Pipeline) checkBudget(ctx context.Context, size int64, except, service string) error {
	if p.cfg.StorageBudget <= 0 {
		return nil
	}
	b, err := p.budget(ctx, except)
	if err != nil {
		return err
	}
	if b.GivenBytes+size <= b.BudgetBytes {
		return nil
	}
	// What all volumes and services take is the server's business: an
	// admin is told it, anyone else only what is left.
	head := fmt.Sprintf("the server's storage budget has %s left", skiff.FormatSize(b.Left()))
	if except != "" {
		head = fmt.Sprintf("the server's storage budget leaves room for %s of %s at most", except, skiff.FormatSize(b.Left()))
	}
	if skiff.ActorFrom(ctx).Admin() {
		head = fmt.Sprintf("the server's storage budget is %s and %s of it is given to volumes and services already (%s left)",
			skiff.FormatSize(b.BudgetBytes), skiff.FormatSize(b.GivenBytes), skiff.FormatSize(b.Left()))
	}
	if service != "" {
		return skiff.Errorf(skiff.EUNAVAILABLE, "%s: %s, %s in all, does not fit; use a smaller --disk, destroy storage or a service no longer needed, or have an admin raise the budget (skiff serve --storage-budget)",
			head, service, skiff.FormatSize(size))
	}
	return skiff.Errorf(skiff.EUNAVAILABLE, "%s: a volume of %s does not fit; use a smaller size, destroy storage or a service no longer needed, or have an admin raise the budget (skiff serve --storage-budget)",
		head, skiff.FormatSize(size))
}

// ResizeVolume grows a volume to size bytes, online: here, and its claims
// on clusters (first: one that cannot grow refuses the resize, with
// nothing changed). A claim whose cluster has not grown it yet is an
// EUNAVAILABLE error that says what it waits on (the size is recorded:
// the cluster has the request).
func (p *Pipeline) ResizeVolume(ctx context.Context, name string, size int64) error {
	if p.cfg.Volumes == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server keeps no storage")
	}
	p.storageMu.Lock()
	defer p.storageMu.Unlock()
	v, err := p.cfg.Store.FindVolume(ctx, name)
	if err != nil {
		return err
	}
	if v.Service != "" {
		return skiff.Errorf(skiff.EINVALID, "storage %s holds the data of service %s, whose disk is set when it is made: to grow it, make a service with a larger --disk and restore a backup into it", v.Name, v.Service)
	}
	if size <= v.SizeBytes {
		return skiff.Errorf(skiff.EINVALID, "volumes only grow: %s is %s already", name, skiff.FormatSize(v.SizeBytes))
	}
	if err := p.checkBudget(ctx, size, name, ""); err != nil {
		return err
	}
	pending, err := p.growVolumeClaims(ctx, v, size)
	if err != nil {
		return err
	}
	if err := p.cfg.Volumes.Resize(ctx, v.ID, size); err != nil {
		return err
	}
	if err := p.cfg.Store.SetVolumeSize(ctx, name, size); err != nil {
		return err
	}
	if pending != "" {
		return skiff.Errorf(skiff.EUNAVAILABLE, "storage %s is %s now, but its claim has not grown yet: %s", name, skiff.FormatSize(size), pending)
	}
	return nil
}

// DestroyVolume removes a volume no app mounts (ECONFLICT otherwise): the
// record first, so nothing can mount it any more, then its files.
func (p *Pipeline) DestroyVolume(ctx context.Context, name string) error {
	v, err := p.cfg.Store.FindVolume(ctx, name)
	if err != nil {
		return err
	}
	if len(v.Apps) == 0 { // else DeleteVolume refuses
		if err := p.removeVolumeClaims(ctx, v); err != nil {
			return err
		}
	}
	if err := p.cfg.Store.DeleteVolume(ctx, name); err != nil {
		return err
	}
	if p.cfg.Volumes != nil {
		if err := p.cfg.Volumes.Remove(context.WithoutCancel(ctx), v.ID); err != nil {
			p.log.Error("remove storage files", "name", name, "id", v.ID, "err", err)
		}
	}
	return nil
}

// Mount mounts the volume into the app's containers at path (only those of
// the process types or one-off kinds given, when any). Like a config
// change it makes a new release that rolls out, unless restart is false
// or the app was never deployed; the release phase runs.
func (p *Pipeline) Mount(ctx context.Context, app *skiff.App, volume, path string, processTypes []string, restart bool, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "storage:mount")
	if err != nil {
		return err
	}
	defer unlock()
	v, err := p.cfg.Store.FindVolume(ctx, volume)
	if err != nil {
		return err
	}
	if v.Service != "" {
		return skiff.Errorf(skiff.EINVALID, "storage %s holds the data of service %s; link the service instead", v.Name, v.Service)
	}
	s, err := p.settings(ctx, app)
	if err != nil && (s == nil || skiff.ErrorCode(err) != skiff.EINVALID) {
		return err
	}
	if err := p.checkVolumeFor(ctx, app, s.Cluster, v); err != nil {
		return err
	}
	if p.cfg.Volumes != nil {
		if err := p.cfg.Volumes.Ensure(ctx, v.ID, v.SizeBytes); err != nil {
			return err
		}
	}
	for _, t := range processTypes {
		if err := skiff.ValidateProcessType(t); err != nil {
			return err
		}
	}
	mounts, err := p.cfg.Store.Mounts(ctx, app.ID)
	if err != nil {
		return err
	}
	m := skiff.AppMount{Volume: v.Name, VolumeID: v.ID, Path: path, ProcessTypes: slices.Compact(slices.Sorted(slices.Values(processTypes)))}
	for _, have := range mounts {
		if have.VolumeID == m.VolumeID && have.Path == m.Path && slices.Equal(have.ProcessTypes, m.ProcessTypes) {
			return skiff.Errorf(skiff.ECONFLICT, "%s is already mounted at %s in %s", v.Name, path, app.Name)
		}
	}
	next := append(slices.Clone(mounts), m)
	if err := skiff.ValidateMounts(next); err != nil {
		return err
	}
	return p.changeMounts(ctx, app, next, fmt.Sprintf("Mount %s at %s", v.Name, path), restart, out)
}

// Unmount takes the volume out of the app at path; a new release as for
// Mount. The volume and its files stay.
func (p *Pipeline) Unmount(ctx context.Context, app *skiff.App, volume, path string, restart bool, out io.Writer) error {
	unlock, err := p.locks.lock(ctx, app, "storage:unmount")
	if err != nil {
		return err
	}
	defer unlock()
	mounts, err := p.cfg.Store.Mounts(ctx, app.ID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(mounts, func(m skiff.AppMount) bool { return m.Volume == volume && m.Path == path })
	if i < 0 {
		var have []string
		for _, m := range mounts {
			have = append(have, m.Volume+":"+m.Path)
		}
		if len(have) == 0 {
			have = []string{"none"}
		}
		return skiff.Errorf(skiff.ENOTFOUND, "%s has no mount %s:%s; its mounts: %s", app.Name, volume, path, strings.Join(have, ", "))
	}
	next := slices.Delete(slices.Clone(mounts), i, i+1)
	return p.changeMounts(ctx, app, next, fmt.Sprintf("Unmount %s from %s", volume, path), restart, out)
}

// changeMounts makes the release with the new mounts, or only records them
// when the app has no release yet or restart is false.
func (p *Pipeline) changeMounts(ctx context.Context, app *skiff.App, mounts []skiff.AppMount, desc string, restart bool, out io.Writer) error {
	cur, err := p.cfg.Store.CurrentRelease(ctx, app.ID)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND || (err == nil && !restart) {
		if err := p.cfg.Store.SetMounts(ctx, app.ID, mounts); err != nil {
			return err
		}
		p.appLog(app, "%s by %s (from the next release)", desc, skiff.ActorFrom(ctx).Name)
		return nil
	} else if err != nil {
		return err
	}
	cfg, err := p.cfg.Store.Config(ctx, app.ID)
	if err != nil {
		return err
	}
	rel := &skiff.Release{AppID: app.ID, Image: cur.Image, Config: cfg, ProcessTypes: cur.ProcessTypes, Scripts: cur.Scripts,
		Cron: cur.Cron, Mounts: mounts, BuildID: cur.BuildID, Commit: cur.Commit, Description: desc}
	return p.release(ctx, app, rel, nil, out)
}

// VolumeUsage is what the volume's files take, and its size.
func (p *Pipeline) VolumeUsage(ctx context.Context, v *skiff.Volume) (skiff.VolumeUsage, error) {
	if p.cfg.Volumes == nil {
		return skiff.VolumeUsage{}, skiff.Errorf(skiff.EUNAVAILABLE, "this server keeps no storage")
	}
	return p.cfg.Volumes.Usage(ctx, v.ID)
}

// destroyAppVolumes removes the volumes only the app mounts, after the
// app itself is gone; those other apps mount stay. It returns what it
// removed and what it kept.
func (p *Pipeline) destroyAppVolumes(ctx context.Context, mounts []skiff.AppMount) (removed, kept []string) {
	seen := map[string]bool{}
	for _, m := range mounts {
		if seen[m.Volume] {
			continue
		}
		seen[m.Volume] = true
		if err := p.DestroyVolume(ctx, m.Volume); err != nil {
			if skiff.ErrorCode(err) == skiff.EINTERNAL {
				p.log.Error("destroy storage", "name", m.Volume, "err", err)
			}
			kept = append(kept, m.Volume)
			continue
		}
		removed = append(removed, m.Volume)
	}
	return removed, kept
}

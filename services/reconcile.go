package services

import (
	"context"
	"errors"
	"os"

	"github.com/skiffhq/skiff"
)

// reconcile converges at start: a service still ServiceCreating was being
// made when a daemon died, and is removed with whatever it had; a ready
// service with no instance (the host rebooted, or it was never adopted) is
// started; instances of services that no longer exist are removed; and
// the links and network paths are made to agree.
func (m *Manager) reconcile(ctx context.Context) error {
	all, err := m.cfg.Store.ListServices(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var errs []error
	for _, svc := range all {
		if svc.State == skiff.ServiceCreating {
			m.log.Warn("removing a service whose create was interrupted", "service", svc.Name)
			errs = append(errs, m.remove(ctx, svc))
			continue
		}
		known[svc.ID] = true
		in, err := m.instance(ctx, svc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if in == nil {
			m.log.Info("starting service", "service", svc.Name)
			if err := m.start(ctx, svc); err != nil {
				m.log.Error("start service", "service", svc.Name, "err", err)
				errs = append(errs, err)
			}
		}
	}
	ins, err := m.cfg.Runtime.Instances(ctx, "")
	if err != nil {
		return err
	}
	for _, in := range ins {
		if !known[in.Spec.AppID] {
			known[in.Spec.AppID] = true
			m.log.Info("removing the instance of a destroyed service", "service", in.Spec.AppName)
			errs = append(errs, m.cfg.Runtime.RemoveApp(ctx, in.Spec.AppID))
		}
	}
	// Volumes of services that were never stored (a daemon killed
	// between the two records).
	vols, err := m.cfg.VolumeStore.ListVolumes(ctx)
	if err != nil {
		return err
	}
	names := map[string]*skiff.Service{}
	for _, svc := range all {
		names[svc.Name] = svc
	}
	for _, v := range vols {
		if v.Service == "" || v.Name != volumeName(v.Service) {
			continue
		}
		if svc := names[v.Service]; svc == nil {
			m.log.Warn("removing the volume of a service that was never made", "volume", v.Name)
			errs = append(errs, m.cfg.Volumes.Remove(ctx, v.ID), m.cfg.VolumeStore.DeleteVolume(ctx, v.Name))
		} else if svc.State != skiff.ServiceCreating {
			errs = append(errs, m.recordSize(ctx, svc, v))
		}
	}
	if err := m.reconcileLinks(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recordSize makes the recorded size of a service's volume, what it takes
// of the storage budget, what its disks take. A service made before the
// budget counted them was recorded with none; the disk images' own sizes
// say what it has (none for one made before services had disks, no WAL
// disk for a PostgreSQL made before those).
func (m *Manager) recordSize(ctx context.Context, svc *skiff.Service, v *skiff.Volume) error {
	var size int64
	for _, img := range []string{m.diskImage(svc), m.walImage(svc)} {
		fi, err := os.Stat(img)
		if err == nil {
			size += fi.Size()
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if size == v.SizeBytes {
		return nil
	}
	m.log.Info("recording what a service's disks take of the storage budget", "service", svc.Name, "bytes", size)
	return m.cfg.VolumeStore.SetVolumeSize(ctx, v.Name, size)
}

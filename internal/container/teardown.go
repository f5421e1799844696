package container

import (
	"context"
	"errors"
	"os"
)

// Teardown removes everything of this Runc from the host: every container
// in its state directory (killed), their cgroups and root file systems
// under bundleRoot, the cgroup parent and the state directory itself. For
// removing skiff from a machine, or a test daemon after its test; never
// while a daemon uses the same state.
func (r *Runc) Teardown(ctx context.Context, bundleRoot string) error {
	errs := []error{r.Cleanup(ctx, bundleRoot, func(string) bool { return false })}
	// A slice is systemd's to remove (it does once it is empty).
	if !r.layout.systemd {
		if err := removeCgroup(r.layout.parentDir()); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, os.RemoveAll(r.cfg.StateDir))
	return errors.Join(errs...)
}

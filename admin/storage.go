package admin

import (
	"fmt"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// Persistent storage, in Dokku's vocabulary. Volume names are global, like
// app names. Who may use a volume: an admin, the user who made it, and
// anyone with access to an app it is mounted into (they can read its files
// through that app already). Only an admin or its maker mounts it into an
// app that does not mount it yet: a collaborator of one app cannot carry
// its data into an app of their own, where it would outlive their access.
// To anyone else a volume that exists and one that does not look alike:
// not authorized.

func (c *call) needStorage() error {
	if c.services().Volumes == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server keeps no storage")
	}
	return nil
}

// mayUseVolume reports whether the actor may see, mount or destroy v.
func (c *call) mayUseVolume(v *skiff.Volume) (bool, error) {
	if c.actor.Admin() || (v.Owner != "" && v.Owner == c.actor.Name) {
		return true, nil
	}
	for _, name := range v.Apps {
		app, err := c.services().Apps.FindAppByName(c.ctx, name)
		if err != nil {
			continue
		}
		if ok, err := c.services().Access.HasAccess(c.ctx, app.ID, c.actor.User); err != nil {
			return false, err
		} else if ok {
			return true, nil
		}
	}
	return false, nil
}

// volumeArg finds the volume called name, if the actor may use it.
func (c *call) volumeArg(name string) (*skiff.Volume, error) {
	if err := skiff.ValidateVolumeName(name); err != nil {
		return nil, err
	}
	v, err := c.services().Volumes.FindVolume(c.ctx, name)
	if skiff.ErrorCode(err) == skiff.ENOTFOUND && c.actor.Admin() {
		return nil, err
	} else if skiff.ErrorCode(err) == skiff.ENOTFOUND {
		c.r.deny(c.ctx, c, "storage "+name)
		return nil, skiff.ErrNotAuthorized
	} else if err != nil {
		return nil, err
	}
	if ok, err := c.mayUseVolume(v); err != nil {
		return nil, err
	} else if !ok {
		c.r.deny(c.ctx, c, "storage "+name)
		return nil, skiff.ErrNotAuthorized
	}
	return v, nil
}

// storageCreate is storage:ensure-directory and storage:create: it makes
// the volume, or says it is there already (ensure-directory is idempotent).
func storageCreate(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	name := c.args[0]
	if err := skiff.ValidateVolumeName(name); err != nil {
		return err
	}
	if ch := c.value("chown"); ch != "" && !slices.Contains([]string{"herokuish", "heroku", "packeto", "paketo", "root", "false"}, ch) {
		return &usageError{cmd: c.cmd, msg: fmt.Sprintf("--chown takes herokuish, heroku, packeto, root or false, not %s", quoteArg(ch))}
	}
	var size int64
	if v := c.value("size"); v != "" {
		var err error
		if size, err = skiff.ParseSize(v); err != nil {
			return err
		}
	}
	c.progress("Ensuring storage %s exists", name)
	v, err := c.services().Deployer.CreateVolume(c.ctx, name, size)
	if skiff.ErrorCode(err) == skiff.ECONFLICT {
		if _, err := c.volumeArg(name); err != nil {
			return skiff.Errorf(skiff.ECONFLICT, "storage %s is taken; choose another name", name)
		}
		fmt.Fprintf(c.stderr(), "       It exists already\n")
		return nil
	} else if err != nil {
		return err
	}
	if v.SizeBytes > 0 {
		fmt.Fprintf(c.stderr(), "       Made a volume of %s (storage:resize grows it)\n", bytesText(v.SizeBytes))
	}
	fmt.Fprintf(c.stderr(), "       Each container that mounts it gets it as its own user: no --chown needed\n")
	fmt.Fprintf(c.stderr(), "       Ready for mounting: storage:mount <app> %s:/app/storage\n", name)
	return nil
}

func storageResize(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	v, err := c.volumeArg(c.args[0])
	if err != nil {
		return err
	}
	size, err := skiff.ParseSize(c.args[1])
	if err != nil {
		return err
	}
	c.progress("Growing storage %s to %s", v.Name, bytesText(size))
	return c.services().Deployer.ResizeVolume(c.ctx, v.Name, size)
}

func storageDestroy(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	v, err := c.volumeArg(c.args[0])
	if err != nil {
		return err
	}
	if v.Service != "" {
		return skiff.Errorf(skiff.EINVALID, "storage %s holds the data of service %s; destroy the service instead", v.Name, v.Service)
	}
	if !c.flag("force") {
		return skiff.Errorf(skiff.EINVALID, "this deletes storage %s and every file in it. Run again with --force to go ahead", v.Name)
	}
	if err := c.services().Deployer.DestroyVolume(c.ctx, v.Name); err != nil {
		return err
	}
	c.progress("Destroying storage %s... done", v.Name)
	return nil
}

// mountArgs reads "<name>:<path>" and the volume, for storage:mount and
// storage:unmount.
func (c *call) mountArgs() (*skiff.Volume, string, error) {
	name, path, err := skiff.ParseMountSpec(c.args[0])
	if err != nil {
		return nil, "", err
	}
	v, err := c.volumeArg(name)
	return v, path, err
}

func storageMount(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	v, path, err := c.mountArgs()
	if err != nil {
		return err
	}
	if !c.actor.Admin() && (v.Owner == "" || v.Owner != c.actor.Name) && !slices.Contains(v.Apps, c.app.Name) {
		c.r.deny(c.ctx, c, "storage "+v.Name)
		return skiff.Errorf(skiff.EUNAUTHORIZED, "storage %s is not yours: only its maker or an admin mounts it into an app that does not have it yet", v.Name)
	}
	var types []string
	if t := c.value("process-type"); t != "" {
		types = strings.Split(t, ",")
	}
	where := "every process"
	if len(types) > 0 {
		where = strings.Join(types, ", ")
	}
	c.progress("Mounting %s at %s in %s of %s", v.Name, path, where, c.app.Name)
	return c.services().Deployer.Mount(c.ctx, c.app, v.Name, path, types, !c.flag("no-restart"), c.stderr())
}

func storageUnmount(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	name, path, err := skiff.ParseMountSpec(c.args[0])
	if err != nil {
		return err
	}
	c.progress("Unmounting %s from %s in %s (its files stay)", name, path, c.app.Name)
	return c.services().Deployer.Unmount(c.ctx, c.app, name, path, !c.flag("no-restart"), c.stderr())
}

func storageList(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	mounts, err := c.services().Volumes.Mounts(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(mounts)
	}
	if len(mounts) == 0 {
		fmt.Fprintf(c.stderr(), "%s mounts no storage; storage:mount %s <name>:<path> adds some.\n", c.app.Name, c.app.Name)
		return nil
	}
	c.section(c.app.Name + " volume bind-mounts")
	rows := make([][]string, len(mounts))
	for i, m := range mounts {
		rows[i] = []string{m.Volume + ":" + m.Path, mountTypes(m)}
	}
	c.table(nil, rows)
	return nil
}

func mountTypes(m skiff.AppMount) string {
	if len(m.ProcessTypes) == 0 {
		return "every process"
	}
	return strings.Join(m.ProcessTypes, ", ")
}

// volumeReport is a volume as storage:report shows it.
type volumeReport struct {
	*skiff.Volume
	UsedBytes int64  `json:"used_bytes"`
	UsedError string `json:"used_error,omitempty"`
}

func sizeOrNone(n int64) string {
	if n <= 0 {
		return "no limit"
	}
	return bytesText(n)
}

// storageReport shows volumes and their disk use: the app's, or every
// volume the actor may use.
func storageReport(c *call) error {
	if err := c.needStorage(); err != nil {
		return err
	}
	vols, err := c.services().Volumes.ListVolumes(c.ctx)
	if err != nil {
		return err
	}
	var app *skiff.App
	if len(c.args) == 1 {
		if err := c.resolveApp(); err != nil {
			return err
		}
		app = c.app
	}
	var reports []volumeReport
	var total, sizes int64
	for _, v := range vols {
		if app != nil && !slices.Contains(v.Apps, app.Name) {
			continue
		}
		if ok, err := c.mayUseVolume(v); err != nil {
			return err
		} else if !ok {
			continue
		}
		r := volumeReport{Volume: v}
		u, err := c.services().Deployer.VolumeUsage(c.ctx, v)
		if err != nil {
			r.UsedError = skiff.ErrorMessage(err)
		}
		r.UsedBytes = u.UsedBytes
		total += r.UsedBytes
		sizes += v.SizeBytes
		reports = append(reports, r)
	}
	budget, err := c.services().Deployer.StorageBudget(c.ctx)
	if err != nil {
		return err
	}
	if c.json() {
		if reports == nil {
			reports = []volumeReport{}
		}
		out := map[string]any{"volumes": reports, "used_bytes": total, "size_bytes": sizes}
		if left := budget.Left(); left >= 0 {
			out["left_bytes"] = left
		}
		if c.actor.Admin() {
			out["budget_bytes"], out["given_bytes"] = budget.BudgetBytes, budget.GivenBytes
		}
		return c.writeJSON(out)
	}
	if len(reports) == 0 {
		fmt.Fprintf(c.stderr(), "No storage to show; storage:ensure-directory <name> makes some.\n")
		c.budgetLine(budget)
		return nil
	}
	title := "storage"
	if app != nil {
		title = app.Name + " storage"
	}
	c.section(title)
	rows := make([][]string, 0, len(reports)+1)
	for _, r := range reports {
		used := bytesText(r.UsedBytes)
		if r.UsedBytes == 0 && r.UsedError == "" {
			used = "0"
		}
		if r.UsedError != "" {
			used = "? (" + r.UsedError + ")"
		}
		mounted := strings.Join(r.Apps, ", ")
		if r.Service != "" {
			mounted = "service " + r.Service
		}
		rows = append(rows, []string{r.Name, used, sizeOrNone(r.SizeBytes), orNone(mounted), orNone(r.Owner), formatTime(r.CreatedAt)})
	}
	c.table([]string{"NAME", "USED", "SIZE", "MOUNTED BY", "OWNER", "CREATED"}, rows)
	fmt.Fprintf(c.stdout(), "Total: %s used of %s\n", bytesText(max(total, 1)), sizeOrNone(sizes))
	c.budgetLine(budget)
	return nil
}

// budgetLine says what the server's storage budget is and what of it the
// volumes and services are given (the sizes that count, of every one), to
// an admin; to anyone else only what is left, which tells nothing of what
// other users' volumes and services take.
func (c *call) budgetLine(b skiff.StorageBudget) {
	if !c.actor.Admin() {
		if b.BudgetBytes <= 0 {
			fmt.Fprintf(c.stdout(), "Budget: none set; the server's disk is the limit\n")
			return
		}
		fmt.Fprintf(c.stdout(), "Budget: %s left for new storage and services\n", amountText(b.Left()))
		return
	}
	if b.BudgetBytes <= 0 {
		fmt.Fprintf(c.stdout(), "Budget: none set (skiff serve --storage-budget); %s given to volumes and services\n", amountText(b.GivenBytes))
		return
	}
	fmt.Fprintf(c.stdout(), "Budget: %s, of which %s is given to volumes and services, %s left (skiff serve --storage-budget)\n",
		bytesText(b.BudgetBytes), amountText(b.GivenBytes), amountText(b.Left()))
}

// amountText is bytesText, with "0" for nothing.
func amountText(n int64) string {
	if n <= 0 {
		return "0"
	}
	return bytesText(n)
}

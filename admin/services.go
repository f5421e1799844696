package admin

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

// serviceCommands are the backing services' commands: Dokku's postgres:
// and redis: vocabulary for each kind, and Heroku's addons: names over
// both. A service is its creator's (and the admins'); linking it also
// needs access to the app.
func serviceCommands() []*command {
	var cmds []*command
	for _, kind := range skiff.ServiceKinds {
		k := kind
		sf := []flag{{name: "version", value: "V", help: "the major version (`help " + k + "` lists them)"}, {name: "memory", value: "SIZE", help: "memory of the server, like 1g (default 512m)"},
			{name: "disk", value: "SIZE", help: "its own file system for the data, like 20g (default 8g; sparse: it takes what the data takes)"}}
		cmds = append(cmds,
			&command{name: k + ":create", args: "<name>", summary: "create a " + k + " service", min: 1, max: 1, flags: sf, run: serviceCreate(k)},
			&command{name: k + ":list", aliases: []string{k}, summary: "list the " + k + " services you can use", format: true, max: 0, run: serviceList(k)},
			&command{name: k + ":info", args: "<name>", summary: "show version, state, disk, connections and linked apps", format: true, min: 1, max: 1, run: serviceInfo(k)},
			&command{name: k + ":link", args: "<name> <app>", summary: "make it reachable from an app and set " + (&skiff.Service{Kind: k}).ConfigVar() + " (a new release)", min: 2, max: 2, run: serviceLink(k),
				flags: []flag{{name: "alias", value: "NAME", help: "set NAME_URL instead (for a second " + k + " of one app)"}, buildsFlag}},
			&command{name: k + ":unlink", args: "<name> <app>", summary: "cut the app's path to it at once and unset the var (a new release)", min: 2, max: 2, run: serviceUnlink(k)},
			&command{name: k + ":connect", args: "<name>", summary: "open " + clientName(k) + " on it (`ssh -t` for a terminal; SQL or commands on stdin otherwise)", min: 1, max: 1, terminal: true, run: serviceConnect(k)},
			&command{name: k + ":backup", aliases: []string{k + ":export"}, args: "<name>", summary: "write a consistent dump to stdout, progress to stderr", min: 1, max: 1, stream: true, run: serviceBackup(k),
				help: "  ssh … " + k + ":backup mydb > mydb." + dumpExt(k)},
			&command{name: k + ":restore", aliases: []string{k + ":import"}, args: "<name>", summary: "replace its data with a dump from stdin (or a stored backup)", min: 1, max: 1, run: serviceRestore(k),
				flags: []flag{{name: "from", value: "BACKUP", help: "a stored backup's name (" + k + ":backups lists them)"}}},
			&command{name: k + ":backup-schedule", args: "<name> \"<cron>\"|off", summary: "back it up on a schedule (UTC) into the data directory", min: 2, max: 6, run: serviceSchedule(k),
				flags: []flag{{name: "keep", value: "N", help: "backups kept, the oldest removed first (default 7)"}},
				help: "  ssh … " + k + ":backup-schedule mydb \"0 3 * * *\" --keep 7     every day at 03:00 UTC\n  ssh … " + k + ":backup-schedule mydb off\n" +
					"The five fields may arrive as one argument or as five (ssh joins its arguments with spaces)."},
			&command{name: k + ":backups", args: "<name>", summary: "list the stored backups", format: true, min: 1, max: 1, run: serviceBackups(k)},
			&command{name: k + ":restart", args: "<name>", summary: "restart the server (the URL stays)", min: 1, max: 1, run: serviceRestart(k)},
			&command{name: k + ":logs", args: "<name>", summary: "show the server's log", min: 1, max: 1, run: serviceLogs(k),
				flags: []flag{{name: "num", short: "n", value: "N", help: "lines of history (default 100)"}, {name: "tail", short: "t", help: "keep streaming new lines"}}},
			&command{name: k + ":destroy", args: "<name>", summary: "destroy it and its data (unlink it first)", min: 1, max: 1, run: serviceDestroy(k), flags: destroyFlags},
		)
	}
	return append(cmds,
		&command{name: "addons:list", aliases: []string{"addons"}, summary: "list every service you can use, of any kind", format: true, max: 0, run: serviceList("")},
		&command{name: "addons:create", args: "<kind>", summary: "create a service: postgres or redis", min: 1, max: 1, run: addonsCreate,
			flags: []flag{{name: "as", value: "NAME", help: "its name (default: <kind>-<random>)"}, {name: "version", value: "V", help: "the major version"}, {name: "memory", value: "SIZE", help: "memory, like 1g"}, {name: "disk", value: "SIZE", help: "disk, like 20g"}}},
		&command{name: "addons:info", args: "<name>", summary: "show a service of any kind", format: true, min: 1, max: 1, run: serviceInfo("")},
		&command{name: "addons:attach", args: "<name> <app>", summary: "link a service to an app", min: 2, max: 2, run: serviceLink(""),
			flags: []flag{{name: "alias", value: "NAME", help: "set NAME_URL instead"}, buildsFlag}},
		&command{name: "addons:detach", args: "<name> <app>", summary: "unlink a service from an app", min: 2, max: 2, run: serviceUnlink("")},
		&command{name: "addons:destroy", args: "<name>", summary: "destroy a service and its data", min: 1, max: 1, run: serviceDestroy(""), flags: destroyFlags},
	)
}

// destroyFlags are every service destroy's: Dokku's --force or Heroku's
// --confirm NAME.
var destroyFlags = []flag{{name: "force", help: "required: the data is gone for good"}, {name: "confirm", value: "NAME", help: "confirm by naming it (Heroku's spelling)"}}

var buildsFlag = flag{name: "builds", help: "let the app's builds reach it too (off by default: a build runs the pushed code)"}

func clientName(kind string) string {
	if kind == skiff.ServiceRedis {
		return "redis-cli"
	}
	return "psql"
}

func dumpExt(kind string) string {
	if kind == skiff.ServiceRedis {
		return "rdb"
	}
	return "dump"
}

// describeServices puts the versions the service manager offers into the
// create commands' help.
func (r *Runner) describeServices() {
	if r.services.Services == nil {
		return
	}
	for _, kind := range skiff.ServiceKinds {
		vs := r.services.Services.Versions(kind)
		if len(vs) == 0 {
			continue
		}
		text := fmt.Sprintf("Versions (from Debian's packages): %s (the default), or --version %s.", vs[0], strings.Join(vs[1:], ", "))
		for _, name := range []string{kind + ":create", "addons:create"} {
			if c := r.byName[name]; c != nil {
				c.help = strings.TrimSpace(c.help + "\n" + kind + " " + text)
			}
		}
	}
}

func (c *call) needServices() error {
	if c.services().Services == nil || c.services().ServiceStore == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server runs no services (it was started with --git-only)")
	}
	return nil
}

// resolveService takes the service argument: a service of kind ("" for
// any) that the actor may use. A service that exists but is not theirs,
// or is of another kind, and one that does not exist get the same answer.
func (c *call) resolveService(kind string) (*skiff.Service, error) {
	if err := c.needServices(); err != nil {
		return nil, err
	}
	name := c.args[0]
	if err := skiff.ValidateServiceName(name); err != nil {
		return nil, err
	}
	svc, err := c.services().ServiceStore.FindService(c.ctx, name)
	notFound := func() error {
		if c.actor.Admin() {
			return skiff.Errorf(skiff.ENOTFOUND, "there is no %s service %s; `%s` lists them", orAny(kind), name, listCommand(kind))
		}
		c.r.deny(c.ctx, c, name)
		return skiff.ErrNotAuthorized
	}
	if skiff.ErrorCode(err) == skiff.ENOTFOUND || (err == nil && kind != "" && svc.Kind != kind) {
		return nil, notFound()
	} else if err != nil {
		return nil, err
	}
	if !c.mayUse(svc) {
		c.r.deny(c.ctx, c, name)
		return nil, skiff.ErrNotAuthorized
	}
	if svc.State != skiff.ServiceReady {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "%s is still being created", name)
	}
	c.args = c.args[1:]
	return svc, nil
}

func (c *call) mayUse(svc *skiff.Service) bool {
	return c.actor.Admin() || (c.actor.User != nil && svc.Owner == c.actor.Name)
}

func orAny(kind string) string {
	if kind == "" {
		return "add-on"
	}
	return kind
}

func listCommand(kind string) string {
	if kind == "" {
		return "addons"
	}
	return kind + ":list"
}

func serviceRequest(c *call, name, kind string) (*skiff.ServiceRequest, error) {
	req := &skiff.ServiceRequest{Name: name, Kind: kind, Version: c.value("version")}
	if v := c.value("memory"); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return nil, err
		}
		req.Limits.MemoryBytes = n
	}
	if v := c.value("disk"); v != "" {
		n, err := parseBytes(v)
		if err != nil {
			return nil, err
		}
		req.DiskBytes = n
	}
	return req, nil
}

func serviceCreate(kind string) func(*call) error {
	return func(c *call) error {
		if err := c.needServices(); err != nil {
			return err
		}
		req, err := serviceRequest(c, c.args[0], kind)
		if err != nil {
			return err
		}
		svc, err := c.services().Services.Create(c.ctx, req, c.stderr())
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout(), "%s\n", svc.Name)
		return nil
	}
}

var kindRE = regexp.MustCompile(`^[a-z]+$`)

func addonsCreate(c *call) error {
	kind := c.args[0]
	if !skiff.ValidServiceKind(kind) {
		k := kind
		if !kindRE.MatchString(k) {
			k = quoteArg(k)
		}
		return skiff.Errorf(skiff.EINVALID, "unknown add-on %s: skiff has %s", k, strings.Join(skiff.ServiceKinds, " and "))
	}
	name := c.value("as")
	if name == "" {
		name = fmt.Sprintf("%s-%d", kind, time.Now().UnixNano()%100000)
	}
	c.args = []string{name}
	return serviceCreate(kind)(c)
}

// serviceView is a service as lists and reports show it.
type serviceView struct {
	*skiff.Service
	ServerVersion string                `json:"server_version"`
	Links         []*skiff.ServiceLink  `json:"links"`
	Status        *skiff.ServiceStatus  `json:"status,omitempty"`
	Schedule      *skiff.BackupSchedule `json:"backup_schedule,omitempty"`
}

func (c *call) view(svc *skiff.Service, status bool) (*serviceView, error) {
	links, err := c.services().ServiceStore.Links(c.ctx, svc.ID)
	if err != nil {
		return nil, err
	}
	if links == nil {
		links = []*skiff.ServiceLink{}
	}
	v := &serviceView{Service: svc, Links: links, ServerVersion: serverVersion(svc)}
	if status {
		if v.Status, err = c.services().Services.Status(c.ctx, svc); err != nil {
			return nil, err
		}
		schedules, err := c.services().ServiceStore.BackupSchedules(c.ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range schedules {
			if s.ServiceID == svc.ID {
				v.Schedule = s
			}
		}
	}
	return v, nil
}

// serverVersion is the Debian version of the server package, or the major.
func serverVersion(svc *skiff.Service) string {
	for p, v := range svc.Packages {
		if p == "redis-server" && svc.Kind == skiff.ServiceRedis || p == "postgresql-"+svc.Version && svc.Kind == skiff.ServicePostgres {
			return v
		}
	}
	return svc.Version
}

func serviceList(kind string) func(*call) error {
	return func(c *call) error {
		if err := c.needServices(); err != nil {
			return err
		}
		all, err := c.services().ServiceStore.ListServices(c.ctx)
		if err != nil {
			return err
		}
		views := []*serviceView{}
		for _, s := range all {
			if (kind != "" && s.Kind != kind) || !c.mayUse(s) || s.State != skiff.ServiceReady {
				continue
			}
			v, err := c.view(s, true)
			if err != nil {
				return err
			}
			views = append(views, v)
		}
		if c.json() {
			return c.writeJSON(views)
		}
		if len(views) == 0 {
			how := kind + ":create <name>"
			if kind == "" {
				how = "addons:create postgres --as <name> (or redis)"
			}
			fmt.Fprintf(c.stderr(), "No %s services. Create one with %s.\n", orAny(kind), how)
			return nil
		}
		rows := [][]string{}
		var disk int64
		for _, v := range views {
			var apps []string
			for _, l := range v.Links {
				apps = append(apps, l.AppName)
			}
			disk += v.Status.DiskBytes
			rows = append(rows, []string{v.Name, v.Kind, v.ServerVersion, v.Status.State, formatSize(v.Status.DiskBytes), strings.Join(apps, ",")})
		}
		c.table([]string{"NAME", "KIND", "VERSION", "STATE", "DISK", "LINKED APPS"}, rows)
		fmt.Fprintf(c.stdout(), "Disk used by services: %s\n", formatSize(disk))
		return nil
	}
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dK", n>>10)
}

func serviceInfo(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		v, err := c.view(svc, true)
		if err != nil {
			return err
		}
		if c.json() {
			return c.writeJSON(v)
		}
		var apps []string
		for _, l := range v.Links {
			apps = append(apps, l.AppName+" ("+l.Var+")")
		}
		st := v.Status
		state := st.State
		if st.Restarts > 0 {
			state += fmt.Sprintf(", %d restarts, last: %s", st.Restarts, st.LastExit)
		}
		conns := strconv.Itoa(st.Connections)
		if st.Connections < 0 || st.State != string(skiff.InstanceUp) {
			conns = "-"
		}
		schedule := "none"
		if v.Schedule != nil {
			schedule = fmt.Sprintf("%s UTC, keeping %d", v.Schedule.Schedule, v.Schedule.Keep)
		}
		c.section(svc.Name)
		c.fields("Kind", svc.Kind, "Version", v.ServerVersion+" (Debian)", "Status", state, "Started", formatTime(st.StartedAt),
			"Address", fmt.Sprintf("%s:%d", svc.Address, svc.Port), "Disk", formatSize(st.DiskBytes)+" of "+formatSize(svc.DiskBytes),
			"Memory", formatSize(st.MemoryBytes)+" of "+formatSize(svc.Limits.MemoryBytes), "Connections", conns,
			"Linked apps", orNone(strings.Join(apps, ", ")), "Backups", schedule, "Owner", orNone(svc.Owner), "Created", formatTime(svc.CreatedAt))
		return nil
	}
}

func serviceLink(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		if err := c.resolveApp(); err != nil {
			return err
		}
		opts := skiff.LinkOptions{Builds: c.flag("builds")}
		if a := c.value("alias"); a != "" {
			opts.Var = strings.ToUpper(strings.TrimSuffix(a, "_URL")) + "_URL"
		}
		return c.services().Services.Link(c.ctx, svc, c.app, opts, c.stderr())
	}
}

func serviceUnlink(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		if err := c.resolveApp(); err != nil {
			return err
		}
		return c.services().Services.Unlink(c.ctx, svc, c.app, c.stderr())
	}
}

func serviceConnect(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		req := &skiff.RunRequest{Stdin: c.inv.Stdin, Stdout: c.raw.Stdout, Stderr: c.raw.Stderr, TTY: c.inv.TTY}
		code, err := c.services().Services.Connect(c.ctx, svc, req)
		if err != nil {
			return err
		}
		if code != 0 {
			return &exitError{code: code}
		}
		return nil
	}
}

func serviceBackup(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		return c.services().Services.Backup(c.ctx, svc, c.stdout(), c.stderr())
	}
}

func serviceRestore(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		in := c.inv.Stdin
		if from := c.value("from"); from != "" {
			f, err := c.services().Services.OpenBackup(c.ctx, svc, from)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		} else if in == nil {
			return skiff.Errorf(skiff.EINVALID, "send the dump on stdin: ssh … %s:restore %s < %s.%s", svc.Kind, svc.Name, svc.Name, dumpExt(svc.Kind))
		}
		return c.services().Services.Restore(c.ctx, svc, in, c.stderr())
	}
}

func serviceSchedule(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		// ssh joins its arguments: "0 3 * * *" arrives as five words.
		schedule := strings.Join(c.args, " ")
		if schedule == "off" || schedule == "none" {
			if err := c.services().Services.SetBackupSchedule(c.ctx, svc, "", 0); err != nil {
				return err
			}
			c.progress("Scheduled backups of %s are off (the stored ones stay)", svc.Name)
			return nil
		}
		keep := 7
		if k := c.value("keep"); k != "" {
			if keep, err = strconv.Atoi(k); err != nil {
				return &usageError{cmd: c.cmd, msg: "--keep takes a number"}
			}
		}
		if err := c.services().Services.SetBackupSchedule(c.ctx, svc, schedule, keep); err != nil {
			return err
		}
		c.progress("Backing up %s on %q (UTC), keeping the newest %d", svc.Name, schedule, keep)
		return nil
	}
}

func serviceBackups(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		list, err := c.services().Services.Backups(c.ctx, svc)
		if err != nil {
			return err
		}
		if c.json() {
			if list == nil {
				list = []*skiff.Backup{}
			}
			return c.writeJSON(list)
		}
		if len(list) == 0 {
			fmt.Fprintf(c.stderr(), "%s has no stored backups; %s:backup-schedule makes them.\n", svc.Name, svc.Kind)
			return nil
		}
		rows := [][]string{}
		for _, b := range list {
			rows = append(rows, []string{b.Name, formatSize(b.Size), formatTime(b.CreatedAt)})
		}
		c.table([]string{"BACKUP", "SIZE", "TAKEN"}, rows)
		return nil
	}
}

func serviceRestart(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		return c.services().Services.Restart(c.ctx, svc, c.stderr())
	}
}

func serviceLogs(kind string) func(*call) error {
	return func(c *call) error {
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		q := skiff.LogQuery{Follow: c.flag("tail"), Lines: 100}
		if n := c.value("num"); n != "" {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 || v > 100000 {
				return &usageError{cmd: c.cmd, msg: "-n takes a number from 0 to 100000"}
			}
			q.Lines = v
		}
		w := c.stdout()
		err = c.services().Services.Logs(c.ctx, svc, q, func(l skiff.LogLine) error {
			source := svc.Kind
			if l.Source == "skiff" {
				source = "skiff"
			}
			_, err := fmt.Fprintf(w, "%s %s: %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), source, sanitize(l.Text))
			return err
		})
		if c.ctx.Err() != nil {
			return nil
		}
		return err
	}
}

func serviceDestroy(kind string) func(*call) error {
	return func(c *call) error {
		name := c.args[0]
		svc, err := c.resolveService(kind)
		if err != nil {
			return err
		}
		if !c.flag("force") && c.value("confirm") != name {
			return skiff.Errorf(skiff.EINVALID, "this destroys %s and all of its data. Run again with --force (or --confirm %s) to go ahead", name, name)
		}
		if err := c.services().Services.Destroy(c.ctx, svc, c.stderr()); err != nil {
			return err
		}
		c.progress("Destroyed %s", name)
		return nil
	}
}

// Package admin is skiff's command vocabulary: it turns a command line
// (from SSH or the local CLI) into calls on the platform's services and
// writes the answer — data to stdout, progress and errors to stderr, and an
// exit status: 0 success, 1 error, 2 bad usage. One command table drives
// dispatch and help for every caller.
//
// Authorization lives here, once: admin-only commands check the actor's role,
// and commands on an app check access before anything else, answering "not
// authorized" alike for apps that are not the caller's and apps that do not
// exist.
package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff"
)

// Services are what the commands act on. Builder, Scheduler, Routes and
// Builders may be nil on a server that does not build or run apps; their
// commands then say so.
type Services struct {
	Apps      skiff.AppService
	Users     skiff.UserService
	Access    skiff.AccessService
	Events    skiff.EventService
	Pushes    skiff.PushService
	Releases  skiff.ReleaseService
	Config    skiff.ConfigService
	Domains   skiff.DomainService
	Settings  skiff.SettingsService
	Deployer  skiff.Deployer
	Volumes   skiff.VolumeService
	Cron      skiff.CronScheduler
	CronRuns  skiff.CronService
	Builder   skiff.Builder
	Scheduler skiff.Scheduler
	Routes    skiff.Routes
	Builders  Builders
	Backup    Backuper
	// Clusters and ClusterStore reach and keep the Kubernetes clusters
	// apps may run on (nil: the server runs no apps).
	Clusters     skiff.Clusters
	ClusterStore skiff.ClusterService
	// Services and ServiceStore run and keep backing services (nil:
	// the server runs none).
	Services     skiff.ServiceManager
	ServiceStore skiff.ServiceStore
}

// Backuper writes a consistent copy of the state database.
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) error
}

// Builders manages builder images: the default one skiff makes, and any
// CNB builder pulled from a registry.
type Builders interface {
	// HasDefault reports whether the default builder exists.
	HasDefault() bool
	// CreateDefault makes (or refreshes) the default builder.
	CreateDefault(ctx context.Context, out io.Writer) error
	// Pull fetches a builder image and its run image; it returns the
	// reference to store for the app.
	Pull(ctx context.Context, ref string, out io.Writer) (string, error)
	// CheckBuildpacks tells whether builder (an app's builder setting; ""
	// for the default one) has every pinned buildpack; an EINVALID error
	// names the buildpacks it has.
	CheckBuildpacks(ctx context.Context, builder string, pins []string) error
	// Stored reports whether a builder image is on the server already (so
	// picking it pulls nothing), and the reference to store for the app.
	Stored(ctx context.Context, ref string) (string, bool)
}

// Info describes the server to users: where to push and browse.
type Info struct {
	SSHHost string // host[:port] users reach the SSH server at
	Domain  string // base domain: apps answer at <app>.<Domain>
	// HTTPPort is the router's HTTP port; an app's URL names it unless it
	// is 80 (or 0: unknown).
	HTTPPort int
}

// GitURL is the git remote of an app.
func (i Info) GitURL(app string) string { return "ssh://skiff@" + i.SSHHost + "/" + app }

// SSHCommand is how users reach the commands: "ssh -p PORT skiff@HOST",
// or without -p on port 22.
func (i Info) SSHCommand() string {
	host := i.SSHHost
	if host == "" {
		host = "<host>"
	}
	if h, port, err := net.SplitHostPort(host); err == nil {
		return "ssh -p " + port + " skiff@" + h
	}
	return "ssh skiff@" + host
}

// WebURL is the default address of an app.
func (i Info) WebURL(app string) string { return webURL(app, i.Domain, i.HTTPPort) }

// webURL is http://<app>.<domain>, with the port unless it is HTTP's own.
func webURL(app, domain string, port int) string {
	u := "http://" + app + "." + domain
	if port != 0 && port != 80 {
		u += ":" + strconv.Itoa(port)
	}
	return u
}

// Runner runs admin commands; it implements skiff.CommandRunner.
type Runner struct {
	services Services
	info     Info
	log      *slog.Logger
	access   skiff.AccessLogs
	commands []*command
	byName   map[string]*command
}

var _ skiff.CommandRunner = (*Runner)(nil)

// New returns a Runner over the services. access may be nil when the
// server has no router.
func New(s Services, info Info, access skiff.AccessLogs, log *slog.Logger) *Runner {
	r := &Runner{services: s, info: info, log: log, access: access, byName: map[string]*command{}}
	r.commands = commandTable()
	for _, c := range r.commands {
		for _, n := range append([]string{c.name}, c.aliases...) {
			if r.byName[n] != nil {
				panic("admin: duplicate command name " + n)
			}
			r.byName[n] = c
		}
	}
	r.describeServices()
	return r
}

// usageError is bad usage: exit status 2 and the command's usage line.
type usageError struct {
	cmd *command
	msg string
}

func (e *usageError) Error() string { return e.msg }

// RunCommand runs inv.Args and returns the exit status.
func (r *Runner) RunCommand(ctx context.Context, inv *skiff.Invocation) int {
	ctx = skiff.WithActor(ctx, inv.Actor)
	raw := inv
	if inv.TTY != nil {
		// The caller's terminal is raw (ssh -t): a line ends in CR LF, as
		// a terminal's line discipline would make it for a program that
		// had one. A process given the terminal (run) has one: it gets
		// raw's writers; a command's data on stdout goes as it is.
		cp := *inv
		cp.Stderr = crlfWriter{inv.Stderr}
		if !r.streams(inv.Args) {
			cp.Stdout = crlfWriter{inv.Stdout}
		}
		inv = &cp
	}
	err := r.run(ctx, inv, raw)
	var uerr *usageError
	var exit *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.code // a one-off process's own status, passed back as is
	case errors.As(err, &uerr):
		fmt.Fprintf(inv.Stderr, " !     %s\n", uerr.msg)
		if uerr.cmd != nil {
			fmt.Fprintf(inv.Stderr, "       usage: %s\n", uerr.cmd.synopsis())
		}
		return 2
	default:
		if skiff.ErrorCode(err) == skiff.EINTERNAL {
			r.log.Error("command failed", "command", inv.Args[0], "actor", inv.Actor.Name, "err", err)
		}
		fmt.Fprintf(inv.Stderr, " !     %s\n", skiff.ErrorMessage(err))
		return 1
	}
}

// noCommand is the answer to a session with no command (a plain `ssh
// skiff@host`, which asks for a shell): how commands are given instead.
func (r *Runner) noCommand() string {
	ssh := r.info.SSHCommand()
	return strings.Join([]string{
		"skiff has no shell: give a command after the host, like",
		"  " + ssh + " help        the commands",
		"  " + ssh + " apps        your apps",
		"  " + ssh + " help apps   a topic's commands",
		"and deploy with git push " + r.info.GitURL("<app>") + " main",
	}, "\n       ")
}

// streams reports whether args name a command whose output is data.
func (r *Runner) streams(args []string) bool {
	return len(args) > 0 && r.byName[args[0]] != nil && r.byName[args[0]].stream
}

// crlfWriter ends each line in CR LF.
type crlfWriter struct{ w io.Writer }

func (c crlfWriter) Write(p []byte) (int, error) {
	if _, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r *Runner) run(ctx context.Context, inv, raw *skiff.Invocation) error {
	if len(inv.Args) == 0 {
		return &usageError{msg: r.noCommand()}
	}
	name := inv.Args[0]
	if name == "--help" || name == "-h" {
		name = "help"
	}
	cmd := r.byName[name]
	if cmd == nil {
		if topic := r.topicCommands(name); len(topic) > 0 {
			return &usageError{msg: fmt.Sprintf("%s is a topic, not a command; `help %s` lists its commands", name, name)}
		}
		return &usageError{msg: fmt.Sprintf("unknown command %s; `help` lists the commands", quoteArg(name))}
	}
	args, flags, err := cmd.parse(inv.Args[1:])
	if err != nil {
		return err
	}
	if _, ok := flags["help"]; ok {
		r.printCommandHelp(inv.Stdout, cmd)
		return nil
	}
	c := &call{ctx: ctx, inv: inv, raw: raw, actor: inv.Actor, args: args, flags: flags, r: r, cmd: cmd}
	if f, ok := flags["format"]; ok && f != "json" && f != "text" {
		return &usageError{cmd: cmd, msg: "--format takes json or text"}
	}
	if cmd.admin && !inv.Actor.Admin() {
		r.deny(ctx, c, "")
		return skiff.ErrNotAuthorized
	}
	if cmd.app {
		if err := c.resolveApp(); err != nil {
			return err
		}
		if !cmd.removesApp {
			defer c.watchAccess()() // revoke.go
		}
	}
	return c.revokedOr(cmd.run(c))
}

// deny logs a refused command; the caller gets "not authorized" and nothing
// else.
func (r *Runner) deny(ctx context.Context, c *call, app string) {
	r.log.Warn("not authorized", "actor", c.actor.Name, "fingerprint", c.actor.Fingerprint, "command", c.cmd.name, "app", app)
}

// call is one command being run.
type call struct {
	ctx   context.Context
	inv   *skiff.Invocation
	raw   *skiff.Invocation // inv as the caller gave it: a terminal's writers unconverted
	actor *skiff.Actor
	cmd   *command
	r     *Runner
	app   *skiff.App // set for commands on an app
	args  []string   // positional arguments after the app
	flags map[string]string
}

func (c *call) services() Services { return c.r.services }

// resolveApp takes the app argument and applies the access rule.
func (c *call) resolveApp() error {
	name := c.args[0]
	app, err := skiff.AuthorizeApp(c.ctx, c.services().Apps, c.services().Access, c.actor, name, c.cmd.owner)
	if err == skiff.ErrNotAuthorized {
		c.r.deny(c.ctx, c, name)
	}
	if err != nil {
		return err
	}
	c.app, c.args = app, c.args[1:]
	return nil
}

func (c *call) json() bool            { return c.flags["format"] == "json" }
func (c *call) stdout() io.Writer     { return c.inv.Stdout }
func (c *call) stderr() io.Writer     { return c.inv.Stderr }
func (c *call) flag(n string) bool    { _, ok := c.flags[n]; return ok }
func (c *call) value(n string) string { return c.flags[n] }

func quoteArg(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// topicCommands lists the commands of a topic ("apps" for apps:*).
func (r *Runner) topicCommands(topic string) []*command {
	var cmds []*command
	for _, c := range r.commands {
		if c.topic() == topic {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

func (c *command) topic() string {
	if i := strings.IndexByte(c.name, ':'); i >= 0 {
		return c.name[:i]
	}
	return c.name
}

package admin

import (
	"fmt"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

func appsList(c *call) error {
	filter := skiff.AppFilter{VisibleTo: c.actor.User}
	if c.actor.Admin() {
		filter.VisibleTo = nil
	}
	apps, err := c.services().Apps.ListApps(c.ctx, filter)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(apps)
	}
	if len(apps) == 0 {
		fmt.Fprintln(c.stderr(), "You have no apps. Create one with `apps:create <name>`, or push to a new remote as an admin.")
		return nil
	}
	c.section("Apps")
	for _, a := range apps {
		fmt.Fprintln(c.stdout(), a.Name)
	}
	return nil
}

func appsCreate(c *call) error {
	name := c.args[0]
	if err := skiff.ValidateAppName(name); err != nil {
		return err
	}
	app, err := c.services().Deployer.CreateApp(c.ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr(), "-----> Creating %s... done\n", app.Name)
	fmt.Fprintf(c.stdout(), "%s | %s\n", c.r.info.WebURL(app.Name), c.r.info.GitURL(app.Name))
	fmt.Fprintf(c.stderr(), "       Push with: git remote add skiff %s && git push skiff main\n", c.r.info.GitURL(app.Name))
	return nil
}

// appInfo is the report of apps:info.
type appInfo struct {
	*skiff.App
	GitURL   string      `json:"git_url"`
	WebURL   string      `json:"web_url"`
	Access   []string    `json:"access"`
	LastPush *skiff.Push `json:"last_push,omitempty"`
	Domains  []string    `json:"domains"` // custom ones; the default is in web_url
	// The current release, without its config (config shows that).
	Release            int             `json:"release,omitempty"`
	ReleaseDescription string          `json:"release_description,omitempty"`
	ReleasedAt         *time.Time      `json:"released_at,omitempty"`
	Formation          skiff.Formation `json:"formation,omitempty"`
}

func appsInfo(c *call) error {
	access, err := c.services().Access.ListAccess(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	info := appInfo{App: c.app, GitURL: c.r.info.GitURL(c.app.Name), WebURL: c.r.info.WebURL(c.app.Name), Access: access}
	pushes, err := c.services().Pushes.ListPushes(c.ctx, c.app.ID, 1)
	if err != nil {
		return err
	}
	if len(pushes) > 0 {
		info.LastPush = pushes[0]
	}
	if info.Domains, err = c.services().Domains.Domains(c.ctx, c.app.ID); err != nil {
		return err
	}
	f, cur, err := effectiveFormation(c)
	if err != nil {
		return err
	}
	info.Formation = f
	if cur != nil {
		info.Release, info.ReleaseDescription, info.ReleasedAt = cur.Version, cur.Description, &cur.CreatedAt
	}
	if c.json() {
		return c.writeJSON(info)
	}
	owner := c.app.Owner
	if owner == "" {
		owner = "(admins)"
	}
	last := "never"
	if p := info.LastPush; p != nil {
		last = fmt.Sprintf("%s by %s at %s", skiff.ShortID(p.Commit), p.Pusher, formatTime(p.CreatedAt))
	}
	release := "none yet"
	if info.ReleasedAt != nil {
		release = fmt.Sprintf("v%d (%s) at %s", info.Release, info.ReleaseDescription, formatTime(*info.ReleasedAt))
	}
	c.section(c.app.Name)
	c.fields("Id", c.app.ID, "Owner", owner, "Access", orNone(strings.Join(access, ", ")),
		"Deploy branch", c.app.DeployBranch, "Git URL", info.GitURL, "Web URL", info.WebURL,
		"Domains", orNone(strings.Join(info.Domains, ", ")), "Release", release,
		"Formation", orNone(formationText(info.Formation)),
		"Created", formatTime(c.app.CreatedAt), "Last push", last)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func appsRename(c *call) error {
	newName := c.args[0]
	if err := skiff.ValidateAppName(newName); err != nil {
		return err
	}
	old := c.app.Name
	if err := c.services().Deployer.RenameApp(c.ctx, c.app, newName); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr(), "-----> Renaming %s to %s... done\n", old, newName)
	fmt.Fprintf(c.stdout(), "%s | %s\n", c.r.info.WebURL(newName), c.r.info.GitURL(newName))
	fmt.Fprintf(c.stderr(), "       Update your remote: git remote set-url skiff %s\n", c.r.info.GitURL(newName))
	return nil
}

func appsDestroy(c *call) error {
	if !c.flag("force") && c.value("confirm") != c.app.Name {
		return skiff.Errorf(skiff.EINVALID, "this destroys %s: its repository, releases, config and logs. Run again with --force (or --confirm %s) to go ahead", c.app.Name, c.app.Name)
	}
	// The services it is linked to stay, as do its volumes: say so, and
	// how they go, rather than let "destroy" sound like it took them.
	var linked []string
	if st := c.services().ServiceStore; st != nil {
		links, err := st.AppLinks(c.ctx, c.app.ID)
		if err != nil {
			return err
		}
		for _, l := range links {
			if svc, err := st.FindServiceByID(c.ctx, l.ServiceID); err == nil {
				linked = append(linked, fmt.Sprintf("Unlinked %s %s (%s); it stays, with its data: %s:destroy %s --force removes it", svc.Kind, svc.Name, l.Var, svc.Kind, svc.Name))
			}
		}
	}
	fmt.Fprintf(c.stderr(), "-----> Destroying %s (its releases, config, logs, build cache and git repository)\n", c.app.Name)
	if err := c.services().Deployer.DestroyApp(c.ctx, c.app, c.flag("volumes"), c.stderr()); err != nil {
		return err
	}
	for _, l := range linked {
		fmt.Fprintf(c.stderr(), "       %s\n", l)
	}
	fmt.Fprintf(c.stderr(), "       done\n")
	return nil
}

func gitSet(c *call) error {
	if c.args[0] != "deploy-branch" {
		return &usageError{cmd: c.cmd, msg: fmt.Sprintf("unknown git setting %s; the setting is deploy-branch", quoteArg(c.args[0]))}
	}
	branch := c.args[1]
	if err := c.services().Deployer.SetDeployBranch(c.ctx, c.app, branch); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr(), "-----> Setting deploy-branch of %s to %s... done\n", c.app.Name, branch)
	return nil
}

func gitReport(c *call) error {
	pushes, err := c.services().Pushes.ListPushes(c.ctx, c.app.ID, 10)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(map[string]any{"app": c.app.Name, "deploy_branch": c.app.DeployBranch, "git_url": c.r.info.GitURL(c.app.Name), "pushes": pushes})
	}
	c.section(c.app.Name + " git")
	c.fields("Deploy branch", c.app.DeployBranch, "Git URL", c.r.info.GitURL(c.app.Name))
	if len(pushes) > 0 {
		fmt.Fprintln(c.stdout())
		rows := make([][]string, len(pushes))
		for i, p := range pushes {
			rows[i] = []string{formatTime(p.CreatedAt), p.Pusher, p.Ref, skiff.ShortID(p.OldCommit) + ".." + skiff.ShortID(p.Commit)}
		}
		c.table([]string{"PUSHED", "BY", "REF", "COMMITS"}, rows)
	}
	return nil
}

package admin

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

func (c *call) needRoutes() error {
	if c.services().Routes == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server has no router")
	}
	return nil
}

func domainsList(c *call) error {
	domains, err := c.services().Domains.Domains(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	def := c.app.Name + "." + c.r.info.Domain
	if c.json() {
		return c.writeJSON(map[string]any{"app": c.app.Name, "default": def, "custom": domains})
	}
	c.section(c.app.Name + " Domains")
	fmt.Fprintf(c.stdout(), "%s (default)\n", def)
	for _, d := range domains {
		fmt.Fprintln(c.stdout(), d)
	}
	return nil
}

func domainsAdd(c *call) error {
	host, err := c.services().Deployer.AddDomain(c.ctx, c.app, c.args[0])
	if err != nil {
		return err
	}
	c.progress("Adding %s to %s... done", host, c.app.Name)
	fmt.Fprintf(c.stderr(), "       Point its DNS (an A or CNAME record) at this server.\n")
	return nil
}

func domainsRemove(c *call) error {
	host, err := c.services().Deployer.RemoveDomain(c.ctx, c.app, c.args[0])
	if err != nil {
		return err
	}
	c.progress("Removing %s from %s... done", host, c.app.Name)
	return nil
}

func certsAdd(c *call) error {
	if err := c.needRoutes(); err != nil {
		return err
	}
	if c.inv.Stdin == nil {
		return skiff.Errorf(skiff.EINVALID, "no certificate on stdin; try: cat cert.pem key.pem | ssh … certs:add %s", c.app.Name)
	}
	data, err := io.ReadAll(io.LimitReader(c.inv.Stdin, skiff.MaxCertBundle+1))
	if err != nil {
		return err
	}
	if len(data) > skiff.MaxCertBundle {
		return skiff.Errorf(skiff.EINVALID, "certs:add reads at most %d bytes", skiff.MaxCertBundle)
	}
	if len(data) == 0 {
		return skiff.Errorf(skiff.EINVALID, "no certificate on stdin; try: cat cert.pem key.pem | ssh … certs:add %s", c.app.Name)
	}
	if err := c.services().Deployer.SetCertificate(c.ctx, c.app, data); err != nil {
		return err
	}
	c.progress("Adding the certificate of %s... done; HTTP now redirects to HTTPS", c.app.Name)
	return certsReport(c)
}

func certsRemove(c *call) error {
	if err := c.needRoutes(); err != nil {
		return err
	}
	if err := c.services().Deployer.RemoveCertificate(c.ctx, c.app); err != nil {
		return err
	}
	c.progress("Removing the certificate of %s... done", c.app.Name)
	return nil
}

func certsReport(c *call) error {
	if err := c.needRoutes(); err != nil {
		return err
	}
	certs := c.services().Routes.Certificates(c.app.ID)
	s, err := c.settings()
	if err != nil {
		return err
	}
	if c.json() {
		if certs == nil {
			certs = []skiff.CertInfo{}
		}
		return c.writeJSON(map[string]any{"app": c.app.Name, "auto": s.ACME, "hsts": s.HSTS, "certificates": certs})
	}
	c.section(c.app.Name + " Certificates")
	c.fields("Automatic (ACME)", onOff(s.ACME), "HSTS", onOff(s.HSTS))
	if len(certs) == 0 {
		fmt.Fprintln(c.stdout(), "No certificate yet: add one with certs:add, or turn on certs:auto.")
		return nil
	}
	rows := [][]string{}
	var failures []string
	for _, ci := range certs {
		expires := formatTime(ci.NotAfter)
		switch ci.Status {
		case "pending":
			expires = "(being ordered)"
		case "failed":
			expires = "(failed)"
		}
		if ci.Error != "" { // an order, or a renewal, failed
			next := ""
			if ci.NextRetry != nil {
				next = "; next attempt after " + formatTime(*ci.NextRetry)
			}
			failures = append(failures, fmt.Sprintf(" !     %s: %s%s", strings.Join(ci.Names, ","), ci.Error, next))
		}
		rows = append(rows, []string{ci.Source, strings.Join(ci.Names, ","), orNone(ci.Issuer), expires})
	}
	fmt.Fprintln(c.stdout())
	c.table([]string{"SOURCE", "NAMES", "ISSUER", "EXPIRES"}, rows)
	if len(failures) > 0 {
		fmt.Fprintln(c.stdout())
		for _, f := range failures {
			fmt.Fprintln(c.stdout(), f)
		}
		fmt.Fprintln(c.stdout(), "       Check that the name's DNS points at this server and that ports 80 and 443 reach skiff.")
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// settings reads the app's settings for a report.
func (c *call) settings() (*skiff.Settings, error) {
	return c.services().Settings.Settings(c.ctx, c.app.ID)
}

// updateSettings makes the command's one change of the app's settings.
func (c *call) updateSettings(update func(*skiff.Settings) error) (*skiff.Settings, error) {
	return c.services().Deployer.UpdateSettings(c.ctx, c.app, c.cmd.name, update)
}

// Toggles of settings: which field a command turns on or off.
var (
	maintenanceSetting = func(s *skiff.Settings) *bool { return &s.Maintenance }
	acmeSetting        = func(s *skiff.Settings) *bool { return &s.ACME }
	hstsSetting        = func(s *skiff.Settings) *bool { return &s.HSTS }
)

// settingToggle makes a command that turns a setting on or off.
func settingToggle(field func(*skiff.Settings) *bool, on bool, what string) func(*call) error {
	return func(c *call) error {
		if _, err := c.updateSettings(func(s *skiff.Settings) error {
			*field(s) = on
			return nil
		}); err != nil {
			return err
		}
		c.progress("%s %s for %s... done", map[bool]string{true: "Turning on", false: "Turning off"}[on], what, c.app.Name)
		return nil
	}
}

func certsAuto(c *call) error {
	on := true
	if len(c.args) == 1 {
		switch c.args[0] {
		case "on", "enable":
		case "off", "disable":
			on = false
		default:
			return &usageError{cmd: c.cmd, msg: "certs:auto takes on or off"}
		}
	}
	return settingToggle(acmeSetting, on, "automatic certificates (ACME)")(c)
}

func certsHSTS(c *call) error {
	if c.args[0] != "on" && c.args[0] != "off" {
		return &usageError{cmd: c.cmd, msg: "certs:hsts takes on or off"}
	}
	return settingToggle(hstsSetting, c.args[0] == "on", "HSTS")(c)
}

func maintenanceReport(c *call) error {
	s, err := c.settings()
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(map[string]any{"app": c.app.Name, "maintenance": s.Maintenance, "custom_page": s.MaintenancePage != ""})
	}
	fmt.Fprintln(c.stdout(), onOff(s.Maintenance))
	return nil
}

func maintenancePage(c *call) error {
	if c.inv.Stdin == nil {
		return skiff.Errorf(skiff.EINVALID, "no page on stdin; try: ssh … maintenance:page %s < page.html", c.app.Name)
	}
	data, err := io.ReadAll(io.LimitReader(c.inv.Stdin, skiff.MaxMaintenancePage+1))
	if err != nil {
		return err
	}
	if _, err := c.updateSettings(func(s *skiff.Settings) error {
		s.MaintenancePage = string(data) // Validate refuses a page over the limit
		return nil
	}); err != nil {
		return err
	}
	c.progress("Setting the maintenance page of %s... done (%d bytes; empty restores the default)", c.app.Name, len(data))
	return nil
}

// checksSet reads key=value settings of the health check a new web
// instance must pass before it takes traffic.
func checksSet(c *call) error {
	type assignment struct{ name, value string }
	var set []assignment
	for _, a := range c.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !slices.Contains(skiff.CheckSettings, k) {
			return &usageError{cmd: c.cmd, msg: fmt.Sprintf("%s is not one of path=/up, timeout=S, deadline=S, wait-to-retire=S, release-timeout=S", quoteArg(a))}
		}
		set = append(set, assignment{k, v})
	}
	s, err := c.updateSettings(func(s *skiff.Settings) error {
		for _, a := range set {
			if err := s.SetCheck(a.name, a.value); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.progress("Setting the checks of %s... done; they apply from the next deploy", c.app.Name)
	return c.printChecks(s)
}

func checksReport(c *call) error {
	s, err := c.settings()
	if err != nil {
		return err
	}
	return c.printChecks(s)
}

func (c *call) printChecks(s *skiff.Settings) error {
	report := map[string]string{
		"path": s.Check.Path, "timeout": skiff.FormatSeconds(s.Check.Timeout),
		"deadline": skiff.FormatSeconds(s.Check.Deadline), "wait-to-retire": skiff.FormatSeconds(s.WaitToRetire),
		"release-timeout": skiff.FormatSeconds(s.ReleaseTimeout),
	}
	if c.json() {
		return c.writeJSON(report)
	}
	path := report["path"]
	if path == "" {
		path = "(none: any HTTP answer on $PORT)"
	}
	c.section(c.app.Name + " checks")
	c.fields("Path", path, "Timeout", secondsOr(report["timeout"], skiff.DefaultCheckTimeout), "Deadline", secondsOr(report["deadline"], skiff.DefaultCheckDeadline),
		"Wait to retire", secondsOr(report["wait-to-retire"], skiff.DefaultWaitToRetire),
		"Release timeout", secondsOr(report["release-timeout"], skiff.DefaultReleaseTimeout))
	return nil
}

func secondsOr(v string, def time.Duration) string {
	if v == "" {
		return skiff.FormatSeconds(def) + "s (default)"
	}
	return v + "s"
}

// proxySet sets a router knob of the app; an empty value restores the
// default (Dokku's nginx:set shape).
func proxySet(c *call) error {
	name, value := c.args[0], ""
	if len(c.args) == 2 {
		value = c.args[1]
	}
	if !slices.Contains(skiff.ProxySettings, name) {
		return &usageError{cmd: c.cmd, msg: fmt.Sprintf("unknown proxy setting %s; the settings are max-body-size and response-timeout", quoteArg(name))}
	}
	s, err := c.updateSettings(func(s *skiff.Settings) error { return s.SetProxy(name, value) })
	if err != nil {
		return err
	}
	shown := "the default"
	if value != "" {
		shown = proxyValues(s)[name]
	}
	c.progress("Setting %s of %s to %s... done", name, c.app.Name, shown)
	return nil
}

// proxyValues are the proxy settings as proxy:set takes them ("" for a
// default).
func proxyValues(s *skiff.Settings) map[string]string {
	body := ""
	if s.MaxBodyBytes != 0 {
		body = strconv.FormatInt(s.MaxBodyBytes, 10)
	}
	return map[string]string{"max-body-size": body, "response-timeout": skiff.FormatSeconds(s.ResponseTimeout)}
}

func proxyReport(c *call) error {
	s, err := c.settings()
	if err != nil {
		return err
	}
	report := proxyValues(s)
	if c.json() {
		return c.writeJSON(report)
	}
	c.section(c.app.Name + " proxy")
	body := "default"
	if s.MaxBodyBytes != 0 {
		body = bytesText(s.MaxBodyBytes)
	}
	c.fields("Max body size", body, "Response timeout", secondsOr(report["response-timeout"], skiff.DefaultResponseTimeout))
	return nil
}

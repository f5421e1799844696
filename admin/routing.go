package admin

import (
	"fmt"
	"io"
	"strconv"
	"strings"

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
	host, err := skiff.ValidateDomain(c.args[0])
	if err != nil {
		return err
	}
	base := c.r.info.Domain
	if host == base || strings.HasSuffix(host, "."+base) || skiff.DomainCovers(host, base) {
		return skiff.Errorf(skiff.EINVALID, "%s is under the server's own domain %s, whose names belong to apps by their names; rename the app instead", host, base)
	}
	if strings.HasPrefix(host, "*.") && !c.actor.Admin() {
		return skiff.Errorf(skiff.EUNAUTHORIZED, "only admins may add wildcard domains")
	}
	if err := c.services().Domains.AddDomain(c.ctx, c.app.ID, host); err != nil {
		return err
	}
	if err := c.services().Deployer.UpdateRoute(c.ctx, c.app); err != nil {
		// The router refused it (another app's host): take it back.
		c.services().Domains.RemoveDomain(c.ctx, c.app.ID, host)
		return err
	}
	c.progress("Adding %s to %s... done", host, c.app.Name)
	fmt.Fprintf(c.stderr(), "       Point its DNS (an A or CNAME record) at this server.\n")
	return nil
}

func domainsRemove(c *call) error {
	host, err := skiff.ValidateDomain(c.args[0])
	if err != nil {
		return err
	}
	if err := c.services().Domains.RemoveDomain(c.ctx, c.app.ID, host); err != nil {
		return err
	}
	if err := c.services().Deployer.UpdateRoute(c.ctx, c.app); err != nil {
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
	if err := c.services().Routes.SetCertificate(c.app.ID, data); err != nil {
		return err
	}
	c.services().Events.RecordEvent(c.ctx, &skiff.Event{AppID: c.app.ID, App: c.app.Name, Action: "certs:add"})
	c.progress("Adding the certificate of %s... done; HTTP now redirects to HTTPS", c.app.Name)
	return certsReport(c)
}

func certsRemove(c *call) error {
	if err := c.needRoutes(); err != nil {
		return err
	}
	if err := c.services().Routes.RemoveCertificate(c.app.ID); err != nil {
		return err
	}
	c.services().Events.RecordEvent(c.ctx, &skiff.Event{AppID: c.app.ID, App: c.app.Name, Action: "certs:remove"})
	c.progress("Removing the certificate of %s... done", c.app.Name)
	return nil
}

func certsReport(c *call) error {
	if err := c.needRoutes(); err != nil {
		return err
	}
	certs := c.services().Routes.Certificates(c.app.ID)
	s, err := c.services().Domains.Settings(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	auto := s[skiff.SettingACME] == "on"
	if c.json() {
		if certs == nil {
			certs = []skiff.CertInfo{}
		}
		return c.writeJSON(map[string]any{"app": c.app.Name, "auto": auto, "hsts": s[skiff.SettingHSTS] == "on", "certificates": certs})
	}
	c.section(c.app.Name + " Certificates")
	c.fields("Automatic (ACME)", onOff(auto), "HSTS", onOff(s[skiff.SettingHSTS] == "on"))
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

// settingToggle makes a command that turns a setting on or off.
func settingToggle(key string, on bool, what string) func(*call) error {
	return func(c *call) error {
		v := ""
		if on {
			v = "on"
		}
		if err := c.services().Domains.SetSettings(c.ctx, c.app.ID, c.cmd.name, map[string]string{key: v}); err != nil {
			return err
		}
		if err := c.services().Deployer.UpdateRoute(c.ctx, c.app); err != nil {
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
	return settingToggle(skiff.SettingACME, on, "automatic certificates (ACME)")(c)
}

func certsHSTS(c *call) error {
	if c.args[0] != "on" && c.args[0] != "off" {
		return &usageError{cmd: c.cmd, msg: "certs:hsts takes on or off"}
	}
	return settingToggle(skiff.SettingHSTS, c.args[0] == "on", "HSTS")(c)
}

func maintenanceReport(c *call) error {
	s, err := c.services().Domains.Settings(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	on := s[skiff.SettingMaintenance] == "on"
	if c.json() {
		return c.writeJSON(map[string]any{"app": c.app.Name, "maintenance": on, "custom_page": s[skiff.SettingMaintenancePage] != ""})
	}
	fmt.Fprintln(c.stdout(), onOff(on))
	return nil
}

// maxMaintenancePage caps a custom maintenance page.
const maxMaintenancePage = 256 << 10

func maintenancePage(c *call) error {
	if c.inv.Stdin == nil {
		return skiff.Errorf(skiff.EINVALID, "no page on stdin; try: ssh … maintenance:page %s < page.html", c.app.Name)
	}
	data, err := io.ReadAll(io.LimitReader(c.inv.Stdin, maxMaintenancePage+1))
	if err != nil {
		return err
	}
	if len(data) > maxMaintenancePage {
		return skiff.Errorf(skiff.EINVALID, "the page is over %d KiB", maxMaintenancePage>>10)
	}
	if err := c.services().Domains.SetSettings(c.ctx, c.app.ID, c.cmd.name, map[string]string{skiff.SettingMaintenancePage: string(data)}); err != nil {
		return err
	}
	if err := c.services().Deployer.UpdateRoute(c.ctx, c.app); err != nil {
		return err
	}
	c.progress("Setting the maintenance page of %s... done (%d bytes; empty restores the default)", c.app.Name, len(data))
	return nil
}

// checksSet reads key=value settings of the health check a new web
// instance must pass before it takes traffic.
func checksSet(c *call) error {
	keys := map[string]string{"path": skiff.SettingHealthPath, "timeout": skiff.SettingHealthTimeout,
		"deadline": skiff.SettingHealthDeadline, "wait-to-retire": skiff.SettingWaitToRetire}
	settings := map[string]string{}
	for _, a := range c.args {
		k, v, ok := strings.Cut(a, "=")
		key, known := keys[k]
		if !ok || !known {
			return &usageError{cmd: c.cmd, msg: fmt.Sprintf("%s is not one of path=/up, timeout=S, deadline=S, wait-to-retire=S", quoteArg(a))}
		}
		if k == "path" {
			if v != "" && (!strings.HasPrefix(v, "/") || strings.ContainsAny(v, " \r\n\x00") || len(v) > 512) {
				return skiff.Errorf(skiff.EINVALID, "the check path must start with / (like /up)")
			}
		} else if v != "" {
			if n, err := strconv.ParseFloat(v, 64); err != nil || n <= 0 || n > 3600 {
				return skiff.Errorf(skiff.EINVALID, "%s takes seconds from 1 to 3600", k)
			}
		}
		settings[key] = v
	}
	if err := c.services().Domains.SetSettings(c.ctx, c.app.ID, c.cmd.name, settings); err != nil {
		return err
	}
	if err := c.services().Deployer.UpdateRoute(c.ctx, c.app); err != nil {
		return err
	}
	c.progress("Setting the checks of %s... done; they apply from the next deploy", c.app.Name)
	return checksReport(c)
}

func checksReport(c *call) error {
	s, err := c.services().Domains.Settings(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	report := map[string]string{
		"path": s[skiff.SettingHealthPath], "timeout": s[skiff.SettingHealthTimeout],
		"deadline": s[skiff.SettingHealthDeadline], "wait-to-retire": s[skiff.SettingWaitToRetire],
	}
	if c.json() {
		return c.writeJSON(report)
	}
	path := report["path"]
	if path == "" {
		path = "(none: any HTTP answer on $PORT)"
	}
	c.section(c.app.Name + " checks")
	c.fields("Path", path, "Timeout", secondsOr(report["timeout"], "5s"), "Deadline", secondsOr(report["deadline"], "60s"),
		"Wait to retire", secondsOr(report["wait-to-retire"], "30s"))
	return nil
}

func secondsOr(v, def string) string {
	if v == "" {
		return def + " (default)"
	}
	return v + "s"
}

// proxySettings are the router's per-app knobs that proxy:set takes.
var proxySettings = map[string]struct {
	key   string
	parse func(string) (string, error)
}{
	"max-body-size": {skiff.SettingMaxBody, func(v string) (string, error) {
		n, err := parseBytes(v)
		return strconv.FormatInt(n, 10), err
	}},
	"response-timeout": {skiff.SettingResponseTimeout, func(v string) (string, error) {
		n, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
		if err != nil || n < 1 || n > 3600 {
			return "", skiff.Errorf(skiff.EINVALID, "response-timeout takes seconds from 1 to 3600")
		}
		return strconv.FormatFloat(n, 'f', -1, 64), nil
	}},
}

// proxySet sets a router knob of the app; an empty value restores the
// default (Dokku's nginx:set shape).
func proxySet(c *call) error {
	name, value := c.args[0], ""
	if len(c.args) == 2 {
		value = c.args[1]
	}
	ps, ok := proxySettings[name]
	if !ok {
		return &usageError{cmd: c.cmd, msg: fmt.Sprintf("unknown proxy setting %s; the settings are max-body-size and response-timeout", quoteArg(name))}
	}
	if value != "" {
		var err error
		if value, err = ps.parse(value); err != nil {
			return err
		}
	}
	if err := c.services().Domains.SetSettings(c.ctx, c.app.ID, c.cmd.name, map[string]string{ps.key: value}); err != nil {
		return err
	}
	if err := c.services().Deployer.UpdateRoute(c.ctx, c.app); err != nil {
		return err
	}
	c.progress("Setting %s of %s to %s... done", name, c.app.Name, orNone(map[bool]string{true: "the default", false: value}[value == ""]))
	return nil
}

func proxyReport(c *call) error {
	s, err := c.services().Domains.Settings(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	report := map[string]string{"max-body-size": s[skiff.SettingMaxBody], "response-timeout": s[skiff.SettingResponseTimeout]}
	if c.json() {
		return c.writeJSON(report)
	}
	c.section(c.app.Name + " proxy")
	body := "default"
	if v := report["max-body-size"]; v != "" {
		n, _ := strconv.ParseInt(v, 10, 64)
		body = bytesText(n)
	}
	c.fields("Max body size", body, "Response timeout", secondsOr(report["response-timeout"], "30s"))
	return nil
}

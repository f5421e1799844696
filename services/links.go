package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
)

// rules are the network paths of a link: from the app's containers, and
// with Builds from its builds.
func (m *Manager) rules(svc *skiff.Service, l *skiff.ServiceLink) ([]container.LinkRule, error) {
	a, err := netip.ParseAddr(svc.Address)
	if err != nil {
		return nil, err
	}
	out := []container.LinkRule{{Group: skiff.AppNetGroup(l.AppID), Service: a, Port: uint16(svc.Port)}} //nolint:gosec // a service's port, from its kind
	if l.Builds {
		out = append(out, container.LinkRule{Group: skiff.BuildNetGroup(l.AppID), Service: a, Port: uint16(svc.Port)}) //nolint:gosec // as above
	}
	return out, nil
}

// open and close make or cut every path of rules.
func (m *Manager) open(rules []container.LinkRule) error {
	for _, r := range rules {
		if err := m.cfg.Network.Link(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) close(rules []container.LinkRule) error {
	var errs []error
	for _, r := range rules {
		errs = append(errs, m.cfg.Network.Unlink(r))
	}
	return errors.Join(errs...)
}

// Link implements skiff.ServiceManager. The link is recorded as pending,
// the network path opens, and a release sets the var; only then is the
// link complete. A failure undoes all of it; a daemon killed on the way
// finds the pending link at its next start and finishes or undoes it (see
// reconcileLinks).
func (m *Manager) Link(ctx context.Context, svc *skiff.Service, app *skiff.App, opts skiff.LinkOptions, out io.Writer) error {
	if m.cfg.Deployer == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not run apps")
	}
	varName := opts.Var
	if varName == "" {
		varName = svc.ConfigVar()
	}
	if err := skiff.ValidateConfigKey(varName); err != nil {
		return err
	}
	unlock := m.lock(svc.ID)
	defer unlock()
	l := &skiff.ServiceLink{ServiceID: svc.ID, AppID: app.ID, Var: varName, Builds: opts.Builds}
	rules, err := m.rules(svc, l)
	if err != nil {
		return err
	}
	if err := m.cfg.Store.AddLink(ctx, l); err != nil {
		return err
	}
	undo := func(cause error) error {
		bg := context.WithoutCancel(ctx)
		errs := []error{m.close(rules), m.cfg.Store.RemoveLink(bg, svc.ID, app.ID)}
		if err := errors.Join(errs...); err != nil {
			m.log.Error("undo a failed link", "service", svc.Name, "app", app.Name, "err", err)
		}
		return cause
	}
	// The path first: the release's new instances use the URL at once.
	if err := m.open(rules); err != nil {
		return undo(fmt.Errorf("open the path to %s: %w", svc.Name, err))
	}
	also := ""
	if opts.Builds {
		also = " (its builds too)"
	}
	fmt.Fprintf(out, "-----> Linking %s to %s as %s%s\n", svc.Name, app.Name, varName, also)
	// With Builds the var is a build-time one too: a build that may reach
	// the service knows where it is.
	ch := &skiff.ConfigChange{Set: map[string]string{varName: svc.URL()}, Build: opts.Builds, Description: fmt.Sprintf("Link %s as %s", svc.Name, varName)}
	if err := m.cfg.Deployer.SetConfig(ctx, app, ch, true, out); err != nil {
		return undo(err)
	}
	if err := m.cfg.Store.CompleteLink(context.WithoutCancel(ctx), svc.ID, app.ID); err != nil {
		return err // the next start completes it: the var is set
	}
	return nil
}

// Unlink implements skiff.ServiceManager: the path goes first (open
// connections are reset), then a release unsets the var (if it still holds
// the service's URL), then the record.
func (m *Manager) Unlink(ctx context.Context, svc *skiff.Service, app *skiff.App, out io.Writer) error {
	if m.cfg.Deployer == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not run apps")
	}
	unlock := m.lock(svc.ID)
	defer unlock()
	links, err := m.cfg.Store.AppLinks(ctx, app.ID)
	if err != nil {
		return err
	}
	var l *skiff.ServiceLink
	for _, x := range links {
		if x.ServiceID == svc.ID {
			l = x
		}
	}
	if l == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "%s is not linked to %s", svc.Name, app.Name)
	}
	// Every path the app's groups may have to the service, whatever
	// the link says.
	rules, err := m.rules(svc, &skiff.ServiceLink{AppID: app.ID, Builds: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "-----> Unlinking %s from %s\n", svc.Name, app.Name)
	if err := m.close(rules); err != nil {
		return err
	}
	vars, err := m.cfg.Config.Config(ctx, app.ID)
	if err != nil {
		return err
	}
	if vars[l.Var] == svc.URL() {
		ch := &skiff.ConfigChange{Unset: []string{l.Var}, Description: fmt.Sprintf("Unlink %s (%s)", svc.Name, l.Var)}
		if err := m.cfg.Deployer.SetConfig(ctx, app, ch, true, out); err != nil {
			return fmt.Errorf("%w (the path to %s is closed; unlink again to unset %s)", err, svc.Name, l.Var)
		}
	}
	return m.cfg.Store.RemoveLink(context.WithoutCancel(ctx), svc.ID, app.ID)
}

// reconcileLinks makes the links and the network agree: a link is whole
// when its app's config holds the service's URL in its var (a pending
// link whose release happened is completed; one whose release did not, or
// an unlink that got as far as the var, is removed); the network then has
// exactly the paths of the whole links.
func (m *Manager) reconcileLinks(ctx context.Context) error {
	links, err := m.cfg.Store.Links(ctx, "")
	if err != nil {
		return err
	}
	want := map[container.LinkRule]bool{}
	for _, l := range links {
		svc, err := m.cfg.Store.FindServiceByID(ctx, l.ServiceID)
		if err != nil {
			return err
		}
		vars, err := m.cfg.Config.Config(ctx, l.AppID)
		if err != nil {
			return err
		}
		rules, err := m.rules(svc, l)
		if err != nil {
			return err
		}
		if vars[l.Var] != svc.URL() {
			m.log.Warn("removing a link its app's config does not have (an interrupted link or unlink)", "service", svc.Name, "app", l.AppName, "var", l.Var)
			if err := m.cfg.Store.RemoveLink(ctx, l.ServiceID, l.AppID); err != nil {
				return err
			}
			continue
		}
		if l.Pending {
			m.log.Info("completing an interrupted link", "service", svc.Name, "app", l.AppName)
			if err := m.cfg.Store.CompleteLink(ctx, l.ServiceID, l.AppID); err != nil {
				return err
			}
		}
		for _, r := range rules {
			want[r] = true
		}
	}
	have, err := m.cfg.Network.Links()
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range have {
		if !want[r] {
			errs = append(errs, m.cfg.Network.Unlink(r))
		}
	}
	for r := range want {
		errs = append(errs, m.cfg.Network.Link(r))
	}
	return errors.Join(errs...)
}

package admin

import (
	"fmt"
	"strconv"

	"github.com/skiffhq/skiff"
)

func eventsList(c *call) error {
	filter := skiff.EventFilter{Limit: 50}
	if n := c.value("num"); n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > 10000 {
			return &usageError{cmd: c.cmd, msg: "-n takes a number from 1 to 10000"}
		}
		filter.Limit = v
	}
	if len(c.args) == 1 {
		// Resolve and check the app like any app command.
		if err := c.resolveApp(); err != nil {
			return err
		}
		filter.AppID = c.app.ID
	} else if !c.actor.Admin() {
		return skiff.Errorf(skiff.EUNAUTHORIZED, "the server-wide trail is for admins; name one of your apps: events <app>")
	}
	events, err := c.services().Events.ListEvents(c.ctx, filter)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(events)
	}
	rows := make([][]string, len(events))
	for i, e := range events {
		rows[i] = []string{formatTime(e.Time), e.Actor, orNone(e.App), e.Action, e.Detail}
	}
	c.table([]string{"TIME", "ACTOR", "APP", "ACTION", "DETAIL"}, rows)
	return nil
}

func whoami(c *call) error {
	a := c.actor
	if c.json() {
		return c.writeJSON(map[string]any{"name": a.Name, "admin": a.Admin(), "fingerprint": a.Fingerprint})
	}
	role := ""
	if a.Admin() {
		role = " (admin)"
	}
	fmt.Fprintf(c.stdout(), "%s%s\n", a.Name, role)
	return nil
}

func version(c *call) error {
	if c.json() {
		return c.writeJSON(map[string]string{"version": skiff.Version})
	}
	fmt.Fprintf(c.stdout(), "skiff %s\n", skiff.Version)
	return nil
}

func backup(c *call) error {
	if c.services().Backup == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "backups are not available on this server")
	}
	if err := c.services().Backup.Backup(c.ctx, c.stdout()); err != nil {
		return err
	}
	if err := c.services().Events.RecordEvent(c.ctx, &skiff.Event{Action: "backup"}); err != nil {
		c.r.log.Error("record the backup's event", "err", err) // the copy is made: the trail is the server's problem
	}
	return nil
}

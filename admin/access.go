package admin

import (
	"fmt"

	"github.com/skiffhq/skiff"
)

func accessList(c *call) error {
	users, err := c.services().Access.ListAccess(c.ctx, c.app.ID)
	if err != nil {
		return err
	}
	if c.json() {
		return c.writeJSON(map[string]any{"app": c.app.Name, "owner": c.app.Owner, "users": users})
	}
	c.section(c.app.Name + " access")
	owner := c.app.Owner
	if owner == "" {
		owner = "(admins)"
	}
	rows := [][]string{{owner, "owner"}}
	for _, u := range users {
		rows = append(rows, []string{u, "collaborator"})
	}
	c.table(nil, rows)
	return nil
}

func accessAdd(c *call) error {
	user := c.args[0]
	if err := skiff.ValidateUserName(user); err != nil {
		return err
	}
	if err := c.services().Access.GrantAccess(c.ctx, c.app.ID, user); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr(), "-----> Adding %s to %s collaborators... done\n", user, c.app.Name)
	return nil
}

func accessRemove(c *call) error {
	user := c.args[0]
	if err := skiff.ValidateUserName(user); err != nil {
		return err
	}
	if err := c.services().Access.RevokeAccess(c.ctx, c.app.ID, user); err != nil {
		return err
	}
	fmt.Fprintf(c.stderr(), "-----> Removing %s from %s collaborators... done\n", user, c.app.Name)
	return nil
}

package admin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func help(c *call) error {
	if len(c.args) == 0 {
		c.r.printOverview(c.stdout(), c.actor.Admin())
		return nil
	}
	name := c.args[0]
	// A topic ("apps") lists its commands, even where it is also an alias.
	if cmds := c.r.topicCommands(name); len(cmds) > 1 {
		c.r.printCommands(c.stdout(), cmds)
		return nil
	}
	if cmd := c.r.byName[name]; cmd != nil {
		c.r.printCommandHelp(c.stdout(), cmd)
		return nil
	}
	return &usageError{msg: fmt.Sprintf("no help for %s; `help` lists the topics and commands", quoteArg(name))}
}

func (r *Runner) printOverview(w io.Writer, admin bool) {
	fmt.Fprintf(w, "Usage: ssh -p <port> skiff@<host> <command> [<app>] [args] [--flags]\n")
	fmt.Fprintf(w, "       git remote add skiff ssh://skiff@<host>:<port>/<app> && git push skiff main\n")
	// One block per topic, in the table's order, each aligned on its own.
	var topics []string
	byTopic := map[string][]*command{}
	for _, c := range r.commands {
		if c.admin && !admin {
			continue
		}
		t := c.topic()
		if byTopic[t] == nil {
			topics = append(topics, t)
		}
		byTopic[t] = append(byTopic[t], c)
	}
	for _, t := range topics {
		fmt.Fprintln(w)
		r.printCommands(w, byTopic[t])
	}
	fmt.Fprintf(w, "\n`help <topic>` or `help <command>` tells more; lists and reports take --format json.\n")
}

func (r *Runner) printCommands(w io.Writer, cmds []*command) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
}

func (r *Runner) printCommandHelp(w io.Writer, c *command) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.synopsis(), upperFirst(c.summary))
	if len(c.aliases) > 0 {
		fmt.Fprintf(w, "Aliases: %s\n", strings.Join(c.aliases, ", "))
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", c.help)
	}
	if len(c.flags) > 0 || c.format {
		fmt.Fprintln(w, "\nFlags:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, f := range c.flags {
			name := "--" + f.name
			if f.short != "" {
				name = "-" + f.short + ", " + name
			}
			if f.value != "" {
				name += " " + f.value
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, f.help)
		}
		if c.format {
			fmt.Fprintf(tw, "  --format json\tmachine-readable output\n")
		}
		tw.Flush()
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

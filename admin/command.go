package admin

import (
	"fmt"
	"slices"
	"strings"
)

// command is one entry of the command table.
type command struct {
	name    string
	aliases []string
	args    string // usage of the positional arguments, e.g. "<app> <new-name>"
	summary string
	help    string // longer text for `help <command>`
	flags   []flag // accepted flags besides --help (and --format for format commands)
	format  bool   // takes --format json|text
	admin   bool   // admins only
	app     bool   // the first argument is an app the actor must have access to
	owner   bool   // with app: only the owner (or an admin) may run it
	min     int    // positional arguments, app included
	max     int    // -1: any number
	rawFrom int    // > 0: arguments from this position on are never flags (run's command)
	// terminal: it attaches the caller's terminal (ssh -t, or the local
	// CLI on one) to a process: run, postgres:connect.
	terminal bool
	// stream: what it writes to stdout is data to arrive byte for byte (a
	// dump, a copy of the database), never lines for a terminal.
	stream bool
	// removesApp: the command ends everyone's access to its app itself
	// (apps:destroy), so its own session is not ended for that.
	removesApp bool
	run        func(*call) error
}

// flag is a command-line flag: --name, or -short, taking a value unless bool.
type flag struct {
	name, short string
	value       string // "" for a bool flag, else the value's name for help ("N")
	help        string
}

func (c *command) synopsis() string {
	s := "skiff " + c.name
	if c.args != "" {
		s += " " + c.args
	}
	for _, f := range c.flags {
		s += " [--" + f.name
		if f.value != "" {
			s += " " + f.value
		}
		s += "]"
	}
	if c.format {
		s += " [--format json]"
	}
	return s
}

func (c *command) lookupFlag(arg string) *flag {
	for i := range c.flags {
		f := &c.flags[i]
		if arg == "--"+f.name || (f.short != "" && arg == "-"+f.short) {
			return f
		}
	}
	switch arg {
	case "--help", "-h":
		return &flag{name: "help"}
	case "--format":
		if c.format {
			return &flag{name: "format", value: "FORMAT"}
		}
	}
	return nil
}

// parse separates flags from positional arguments. Flags may come anywhere
// (Dokku's `apps:destroy web --force`); `--` ends them.
func (c *command) parse(argv []string) ([]string, map[string]string, error) {
	var args []string
	flags := map[string]string{}
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || (c.rawFrom > 0 && len(args) >= c.rawFrom) {
			if a == "--" {
				i++
			}
			args = append(args, argv[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			args = append(args, a)
			continue
		}
		name, value, hasValue := strings.Cut(a, "=")
		f := c.lookupFlag(name)
		if f == nil {
			return nil, nil, &usageError{cmd: c, msg: fmt.Sprintf("unknown flag %s for %s", quoteArg(name), c.name)}
		}
		switch {
		case f.value == "" && hasValue:
			return nil, nil, &usageError{cmd: c, msg: fmt.Sprintf("flag --%s takes no value", f.name)}
		case f.value != "" && !hasValue:
			if i+1 == len(argv) {
				return nil, nil, &usageError{cmd: c, msg: fmt.Sprintf("flag --%s needs a value", f.name)}
			}
			i++
			value = argv[i]
		}
		flags[f.name] = value
	}
	if _, help := flags["help"]; help {
		return args, flags, nil
	}
	if len(args) < c.min || (c.max >= 0 && len(args) > c.max) {
		msg := "wrong number of arguments"
		if len(args) < c.min {
			msg = "missing arguments"
		}
		return nil, nil, &usageError{cmd: c, msg: msg}
	}
	return args, flags, nil
}

// TakesTerminal reports whether args name a command that attaches the
// caller's terminal to a process (run, postgres:connect): the local CLI
// on a terminal hands its terminal to those, and leaves it alone for the
// others.
func TakesTerminal(args []string) bool {
	if len(args) == 0 {
		return false
	}
	for _, c := range commandTable() {
		if c.name == args[0] || slices.Contains(c.aliases, args[0]) {
			return c.terminal
		}
	}
	return false
}

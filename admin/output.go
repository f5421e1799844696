package admin

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// writeJSON writes v as indented JSON, the --format json answer.
func (c *call) writeJSON(v any) error {
	enc := json.NewEncoder(c.stdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; a nil header prints none.
func (c *call) table(header []string, rows [][]string) {
	w := tabwriter.NewWriter(c.stdout(), 0, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(w, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
}

// section prints a Heroku-style header line.
func (c *call) section(title string) { fmt.Fprintf(c.stdout(), "=== %s\n", title) }

// fields prints "Key: value" lines aligned, for reports.
func (c *call) fields(kv ...string) {
	w := tabwriter.NewWriter(c.stdout(), 0, 4, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(w, "%s:\t%s\n", kv[i], kv[i+1])
	}
	w.Flush()
}

// progress writes a step line to stderr, as the push output does.
func (c *call) progress(format string, args ...any) {
	fmt.Fprintf(c.stderr(), "-----> "+format+"\n", args...)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

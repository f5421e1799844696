package admin

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff"
)

// parseSince reads "1h", "30m", "2d" or an RFC 3339 time.
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return time.Now().Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, skiff.Errorf(skiff.EINVALID, "invalid --since %s: use a duration like 1h or 2d, or a time like 2026-11-25T10:00:00Z", quoteArg(s))
}

func logs(c *call) error {
	q := skiff.LogQuery{AppID: c.app.ID, Process: c.value("ps"), Follow: c.flag("tail"), Lines: 100}
	if n := c.value("num"); n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 || v > 100000 {
			return &usageError{cmd: c.cmd, msg: "-n takes a number from 0 to 100000"}
		}
		q.Lines = v
	}
	if s := c.value("since"); s != "" {
		t, err := parseSince(s)
		if err != nil {
			return err
		}
		q.Since = t
	}
	if q.Process != "" && q.Process != "router" {
		name, _, _ := strings.Cut(q.Process, ".")
		if err := skiff.ValidateProcessType(name); err != nil {
			return err
		}
	}
	w := c.stdout()
	if q.Process == "router" {
		return c.routerLogs(q, w)
	}
	if err := c.needScheduler(); err != nil {
		return err
	}
	err := c.services().Scheduler.Logs(c.ctx, q, func(l skiff.LogLine) error {
		source := "app[" + l.Process + "]"
		if l.Source == "skiff" {
			source = "skiff"
			if l.Process != "" {
				source += "[" + l.Process + "]"
			}
		}
		_, err := fmt.Fprintf(w, "%s %s: %s\n", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), source, sanitize(l.Text))
		return err
	})
	if c.ctx.Err() != nil {
		return nil // the client hung up on a tail: that is how tails end
	}
	return err
}

// routerLogs prints the app's access log: the last lines of the file, then
// new ones while following.
func (c *call) routerLogs(q skiff.LogQuery, w io.Writer) error {
	al := c.r.access
	if al == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server has no router")
	}
	var tail <-chan []byte
	if q.Follow {
		tail = al.TailAccessLog(c.ctx, c.app.ID) // subscribe before reading history: no gap
	}
	f, err := os.Open(al.AccessLogPath(c.app.ID))
	if err == nil {
		var lines []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !q.Since.IsZero() && logTime(line).Before(q.Since) {
				continue
			}
			lines = append(lines, line)
			if len(lines) > q.Lines {
				lines = lines[1:]
			}
		}
		f.Close()
		for _, l := range lines {
			fmt.Fprintf(w, "%s\n", formatAccess(l))
		}
	}
	if tail == nil {
		return nil
	}
	for line := range tail {
		if _, err := fmt.Fprintf(w, "%s\n", formatAccess(string(line))); err != nil {
			return nil
		}
	}
	return nil
}

func logTime(line string) time.Time {
	var v struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal([]byte(line), &v) != nil {
		return time.Time{} // not a line of the access log's: it sorts first
	}
	return v.Time
}

// formatAccess prefixes an access log line like the app's lines.
func formatAccess(line string) string {
	line = strings.TrimSpace(line)
	t := logTime(line)
	if t.IsZero() {
		return "router: " + line
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z") + " router: " + line
}

// sanitize drops terminal control sequences from an app's output before it
// reaches a user's terminal (tabs stay).
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}

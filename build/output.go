package build

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/skiffhq/skiff"
)

// maxLine is the longest line passed on whole; longer runs of output
// without a newline are cut into lines of this size.
const maxLine = 8 << 10

// tailLines is how many lines a failed build shows again in its error.
const tailLines = 20

// buildOutput receives the lifecycle's output. It times the phases from the
// lifecycle's "===> PHASE" headers, passes the buildpacks' output to the
// user (terminal escapes removed) and keeps the lifecycle's own chatter
// (restoring, exporting) for the log, which gets every line up to its cap.
type buildOutput struct {
	mu     sync.Mutex
	user   io.Writer
	log    *cappedLog
	now    func() time.Time
	buf    []byte
	phase  string
	start  time.Time
	phases map[string]time.Duration
	tail   []string
	// userMax caps what reaches the pusher; userN counts it.
	userMax, userN int64
	userCapped     bool
}

func newBuildOutput(user io.Writer, log *cappedLog, userMax int64) *buildOutput {
	return &buildOutput{user: user, log: log, now: time.Now, phases: map[string]time.Duration{}, userMax: userMax}
}

func (o *buildOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	for {
		i := bytes.IndexByte(o.buf, '\n')
		if i < 0 {
			if len(o.buf) >= maxLine {
				o.line(string(o.buf[:maxLine]))
				o.buf = append(o.buf[:0], o.buf[maxLine:]...)
				continue
			}
			break
		}
		if i > maxLine {
			i = maxLine
			o.line(string(o.buf[:i]))
			o.buf = append(o.buf[:0], o.buf[i:]...)
			continue
		}
		o.line(string(o.buf[:i]))
		o.buf = append(o.buf[:0], o.buf[i+1:]...)
	}
	return len(p), nil
}

// finish flushes a last partial line and closes the running phase.
func (o *buildOutput) finish() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) > 0 {
		o.line(string(o.buf))
		o.buf = nil
	}
	o.endPhase()
}

func (o *buildOutput) endPhase() {
	if o.phase != "" {
		o.phases[o.phase] += o.now().Sub(o.start)
		o.phase = ""
	}
}

// line handles one line of output.
func (o *buildOutput) line(s string) {
	s = sanitize(strings.TrimSuffix(s, "\r"))
	// Invalid UTF-8 comes back as U+FFFD, three bytes a byte: cap again,
	// on a rune boundary.
	if len(s) > maxLine {
		cut := maxLine
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	o.log.WriteLine(s)
	if ph, ok := strings.CutPrefix(s, "===> "); ok {
		o.endPhase()
		o.phase, o.start = strings.TrimSpace(ph), o.now()
		return
	}
	show := false
	switch {
	case strings.HasPrefix(s, "target distro name/version labels not found"):
		// The lifecycle's note about run images without distro labels.
	case o.phase == "BUILDING":
		show = true
	case o.phase == "DETECTING" && strings.TrimSpace(s) != "":
		show = true
		if !strings.HasPrefix(s, "-----> ") && !strings.HasPrefix(s, " !") && !strings.HasPrefix(s, "ERROR:") && !strings.HasPrefix(s, "======") {
			s = "       " + s
		}
	case strings.HasPrefix(s, "ERROR:"), strings.HasPrefix(s, "WARNING:"):
		show = true
	}
	if show {
		o.tail = append(o.tail, s)
		if len(o.tail) > tailLines {
			o.tail = o.tail[1:]
		}
		switch {
		case o.userN+int64(len(s))+1 <= o.userMax:
			n, _ := fmt.Fprintln(o.user, s)
			o.userN += int64(n)
		case !o.userCapped:
			o.userCapped = true
			fmt.Fprintf(o.user, " !     The build's output passed %d KiB; the rest is not shown (the build goes on)\n", o.userMax>>10)
		}
	}
}

// Phases returns the phase durations.
func (o *buildOutput) Phases() skiff.BuildPhases {
	o.mu.Lock()
	defer o.mu.Unlock()
	return skiff.BuildPhases{
		Analyze: o.phases["ANALYZING"], Detect: o.phases["DETECTING"],
		Restore: o.phases["RESTORING"], Build: o.phases["BUILDING"], Export: o.phases["EXPORTING"],
	}
}

// lastOutput returns what a failed build's error repeats: the buildpack's
// own failure message when the output ends with one (the block of " !"
// lines a buildpack prints, its message and hints, joined into one line, so
// the summary keeps whole sentences), else the last line the buildpacks
// printed, without the buildpack convention's markers.
func (o *buildOutput) lastOutput() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	end := len(o.tail) - 1
	for end >= 0 && (strings.TrimSpace(o.tail[end]) == "" || strings.HasPrefix(o.tail[end], "ERROR:") || strings.HasPrefix(o.tail[end], "WARNING:")) {
		end--
	}
	if end < 0 {
		return ""
	}
	var block []string
	for i := end; i >= 0; i-- {
		msg, ok := strings.CutPrefix(o.tail[i], " !")
		msg = strings.TrimSpace(msg)
		if !ok || msg == "" || strings.HasPrefix(msg, "Warning:") {
			break
		}
		block = append([]string{msg}, block...)
	}
	if len(block) > 0 {
		s := strings.Join(block, " ")
		if len(s) > maxSummary {
			s = s[:maxSummary] + "…"
		}
		return s
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(o.tail[end]), "----->"))
}

// maxSummary caps the buildpack message a failed build's error repeats.
const maxSummary = 2000

// lastError returns the last ERROR: line, if any.
func (o *buildOutput) lastError() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.tail) - 1; i >= 0; i-- {
		if e, ok := strings.CutPrefix(o.tail[i], "ERROR: "); ok {
			return e
		}
	}
	return ""
}

// sanitize removes terminal escape sequences and control characters other
// than tab, so build output cannot repaint or retitle the pusher's terminal.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f || r >= 0x80 && r < 0xa0 }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x1b { // ESC: skip a CSI/OSC sequence or the next byte
			if i+1 < len(s) && s[i+1] == '[' {
				i += 2
				for i < len(s) && (s[i] < 0x40 || s[i] > 0x7e) {
					i++
				}
			} else if i+1 < len(s) && s[i+1] == ']' {
				i += 2
				for i < len(s) && s[i] != 0x07 && !(s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\') {
					i++
				}
				if i < len(s) && s[i] == 0x1b {
					i++
				}
			} else {
				i++
			}
			continue
		}
		if c < 0x20 && c != '\t' || c == 0x7f {
			continue
		}
		b.WriteByte(c)
	}
	out := b.String()
	// C1 controls (U+0080–U+009F) act as escapes on some terminals.
	return strings.Map(func(r rune) rune {
		if r >= 0x80 && r < 0xa0 {
			return -1
		}
		return r
	}, out)
}

// cappedLog is a build's log file, cut off with a marker at its cap.
type cappedLog struct {
	f       *os.File
	max     int64
	n       int64
	capped  bool
	writeMu sync.Mutex
}

func openCappedLog(path string, max int64) (*cappedLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &cappedLog{f: f, max: max}, nil
}

// WriteLine appends one line, or the truncation marker once the cap is hit.
func (l *cappedLog) WriteLine(s string) {
	if l == nil {
		return
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.capped {
		return
	}
	if l.n+int64(len(s))+1 > l.max {
		l.capped = true
		fmt.Fprintf(l.f, "[log truncated at %d bytes]\n", l.max)
		return
	}
	n, _ := fmt.Fprintln(l.f, s)
	l.n += int64(n)
}

func (l *cappedLog) Close() error {
	if l == nil {
		return nil
	}
	return l.f.Close()
}

package skiff

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The Procfile parser lives in the domain, not in the buildpack that reads
// the file, because a process type name is a domain rule: the same names are
// scaled by ps:scale, stored in formations, and name the runtime's instances
// (and may become DNS labels). Keeping the rule and the one parser that reads
// user-written names together stops them drifting apart.

// ProcessType is one entry of a Procfile: a process type and the shell
// command that starts it.
type ProcessType struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	Line    int    `json:"-"` // 1-based line in the Procfile, for messages
}

// Limits of a Procfile: far beyond any real one, small enough that a hostile
// file cannot make a build or the daemon hold much memory.
const (
	MaxProcfileSize   = 64 << 10
	MaxProcessTypes   = 100
	maxProcessNameLen = 63
)

var processTypeRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// ValidateProcessType checks a process type name: a DNS label (lower-case
// letters, digits and inner hyphens, at most 63 characters), so that it can
// name instances and hosts as it is.
func ValidateProcessType(name string) error {
	if len(name) > maxProcessNameLen || !processTypeRE.MatchString(name) {
		hint := ""
		if strings.ContainsRune(name, '_') {
			hint = " (replace _ with -)"
		} else if strings.ToLower(name) != name {
			hint = " (use lower case)"
		}
		return Errorf(EINVALID, "invalid process type %s%s: use up to 63 lower-case letters, digits and inner hyphens, like web or worker-1", quoteForUser(name), hint)
	}
	return nil
}

// ParseProcfile parses a Procfile: one "<type>: <command>" per line, blank
// lines and "#" comments allowed, a UTF-8 byte order mark and CRLF line ends
// tolerated. Everything else is an EINVALID error naming the line, since a
// Procfile that is half understood starts the wrong processes: binary
// content, merge-conflict markers, lines without a type, empty commands,
// duplicate types, and a file that declares nothing.
func ParseProcfile(data []byte) ([]ProcessType, error) {
	if len(data) > MaxProcfileSize {
		return nil, Errorf(EINVALID, "Procfile is larger than %d KiB; it should hold one short line per process type", MaxProcfileSize>>10)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
		return nil, Errorf(EINVALID, "Procfile line %d: not text (binary or not UTF-8); a Procfile holds lines like \"web: ./server\"", badTextLine(data))
	}
	var procs []ProcessType
	seen := map[string]int{}
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		if isConflictMarker(line) {
			return nil, Errorf(EINVALID, "Procfile line %d: merge conflict marker %s; resolve the conflict and commit the Procfile", n, quoteForUser(strings.TrimSpace(line)))
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if i := strings.IndexFunc(line, isForbiddenControl); i >= 0 {
			return nil, Errorf(EINVALID, "Procfile line %d: control character %q in the line; save the file as plain text", n, line[i])
		}
		name, command, ok := strings.Cut(trimmed, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, Errorf(EINVALID, "Procfile line %d: expected \"<process type>: <command>\", got %s", n, quoteForUser(trimmed))
		}
		if err := ValidateProcessType(name); err != nil {
			return nil, Errorf(EINVALID, "Procfile line %d: %s", n, ErrorMessage(err))
		}
		command = strings.TrimSpace(command)
		if command == "" {
			return nil, Errorf(EINVALID, "Procfile line %d: process type %s has no command", n, name)
		}
		if first, dup := seen[name]; dup {
			return nil, Errorf(EINVALID, "Procfile line %d: process type %s is already defined on line %d", n, name, first)
		}
		if len(procs) == MaxProcessTypes {
			return nil, Errorf(EINVALID, "Procfile line %d: more than %d process types", n, MaxProcessTypes)
		}
		seen[name] = n
		procs = append(procs, ProcessType{Name: name, Command: command, Line: n})
	}
	if len(procs) == 0 {
		return nil, Errorf(EINVALID, "Procfile declares no process types; add a line like \"web: ./server\"")
	}
	return procs, nil
}

// isConflictMarker reports lines git writes around a conflict. "=======" is
// only a marker on its own, so a command may still contain it.
func isConflictMarker(line string) bool {
	return strings.HasPrefix(line, "<<<<<<<") || strings.HasPrefix(line, ">>>>>>>") ||
		strings.HasPrefix(line, "|||||||") || strings.TrimRight(line, " \t") == "======="
}

// isForbiddenControl matches control characters other than tab: a stray
// carriage return or escape sequence hides what the command really is.
func isForbiddenControl(r rune) bool {
	return (r < 0x20 && r != '\t') || r == 0x7f
}

// badTextLine returns the 1-based line of the first NUL byte or invalid
// UTF-8 sequence in data.
func badTextLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == 0 || (r == utf8.RuneError && size <= 1) {
			return line
		}
		if r == '\n' {
			line++
		}
		i += size
	}
	return line
}

// String renders the process type as a Procfile line.
func (p ProcessType) String() string { return fmt.Sprintf("%s: %s", p.Name, p.Command) }

package skiff

import (
	"strings"
)

// MaxCommandLine caps a command line from the network.
const MaxCommandLine = 64 << 10

// ParseCommandLine splits a command line as a POSIX shell would split words,
// and nothing more: no variables, globs, substitutions or operators are
// expanded — `$(id)` is just a word. Single quotes are literal; in double
// quotes a backslash escapes only `"`, `\`, `$` and a backquote; outside
// quotes a backslash escapes the next character. An unbalanced quote, a NUL
// byte or an empty line is an error, never an empty command.
func ParseCommandLine(line string) ([]string, error) {
	if len(line) > MaxCommandLine {
		return nil, Errorf(EINVALID, "command line too long (the limit is %d bytes)", MaxCommandLine)
	}
	if strings.IndexByte(line, 0) >= 0 {
		return nil, Errorf(EINVALID, "command line contains a NUL byte")
	}
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, Errorf(EINVALID, "unbalanced ' in command line")
			}
			word.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				word.WriteByte(line[i])
			}
			if i == len(line) {
				return nil, Errorf(EINVALID, `unbalanced " in command line`)
			}
			inWord = true
		case c == '\\':
			if i+1 == len(line) {
				return nil, Errorf(EINVALID, "command line ends with a backslash")
			}
			i++
			if line[i] != '\n' { // backslash-newline continues the line
				word.WriteByte(line[i])
				inWord = true
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	if len(words) == 0 {
		return nil, Errorf(EINVALID, "empty command; try `help`")
	}
	return words, nil
}

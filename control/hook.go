package control

import (
	"errors"
	"fmt"
	"io"

	"github.com/skiffhq/skiff"
)

// maxHookInput caps what a hook reads from git (the ref updates).
const maxHookInput = 1 << 20

// Hook is git's pre-receive hook, as `skiff hook pre-receive` runs it: it
// hands the push (stdin's ref updates, the quarantine's variables from
// lookupEnv) to the daemon at SKIFF_CONTROL_SOCKET with the push's
// SKIFF_PUSH_TOKEN, relays the pipeline's output to stderr (git shows it to
// the pusher as "remote:"), and returns the hook's exit status.
func Hook(name string, stdin io.Reader, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	if name != "pre-receive" {
		fmt.Fprintln(stderr, "usage: skiff hook pre-receive (git runs this; you do not)")
		return 2
	}
	token, _ := lookupEnv("SKIFF_PUSH_TOKEN")
	socket, _ := lookupEnv("SKIFF_CONTROL_SOCKET")
	if token == "" || socket == "" {
		fmt.Fprintln(stderr, "skiff hook: not run by skiff's git server")
		return 1
	}
	input, err := readLimited(stdin, maxHookInput)
	if err != nil {
		fmt.Fprintf(stderr, " !     %v\n", err)
		return 1
	}
	h := &skiff.Hook{Name: name, Token: token, Input: input}
	for _, k := range []string{"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"} {
		if v, ok := lookupEnv(k); ok {
			h.Env = append(h.Env, k+"="+v)
		}
	}
	code, err := RunHook(socket, h, stderr)
	if err != nil {
		fmt.Fprintf(stderr, " !     %v\n", err)
		return 1
	}
	return code
}

func readLimited(r io.Reader, max int64) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return "", err
	}
	if int64(len(data)) > max {
		return "", errors.New("hook input too large")
	}
	return string(data), nil
}

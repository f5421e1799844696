// Command skiff-hook is git's pre-receive hook for pushes to skiff, the
// same as `skiff hook pre-receive` in a program of its own: git starts it
// once per push, and the skiff binary (its admin commands, the scheduler's
// client and their packages' initialisation) takes about 20 ms more to
// start than this does, each push. skiff serve writes a hook that runs it
// when it is beside the skiff binary, and `skiff hook` otherwise.
//
//	skiff-hook hook pre-receive
package main

import (
	"fmt"
	"os"

	"github.com/skiffhq/skiff/control"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "hook" {
		fmt.Fprintln(os.Stderr, "usage: skiff-hook hook pre-receive (git runs this; you do not)")
		os.Exit(2)
	}
	os.Exit(control.Hook(os.Args[2], os.Stdin, os.LookupEnv, os.Stderr))
}

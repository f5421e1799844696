// Command skiff is the whole platform in one binary:
//
//	skiff serve [--data DIR] [--ssh-addr :2222] [--http-addr :80] [--https-addr :443] [--domain D]
//	skiff hook pre-receive          (run by git for each push; talks to the daemon)
//	skiff <command> [args]          (admin commands, run by the daemon over DATA/control.sock)
//
// This is the only package that sees every other one: it reads flags and
// the environment, validates them once, and wires the packages together.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/control"

	// Cron jobs run in the zone of an app's TZ, whatever the host has.
	_ "time/tzdata"
)

const defaultData = "/var/lib/skiff"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	dataDir := envOr("SKIFF_DATA", defaultData)
	// A leading --data DIR applies to every subcommand.
	if len(args) > 0 && (args[0] == "--data" || strings.HasPrefix(args[0], "--data=")) {
		if v, ok := strings.CutPrefix(args[0], "--data="); ok {
			dataDir, args = v, args[1:]
		} else if len(args) > 1 {
			dataDir, args = args[1], args[2:]
		} else {
			fmt.Fprintln(os.Stderr, "skiff: --data needs a directory")
			return 2
		}
	}
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(dataDir, args[1:])
	case "hook":
		return hook(args[1:])
	case "teardown":
		return teardown(dataDir, args[1:])
	case "--version", "-v":
		fmt.Println("skiff", skiff.Version)
		return 0
	case "--help", "-h":
		usage()
		return 0
	}
	return local(dataDir, args)
}

func usage() {
	fmt.Fprint(os.Stderr, `Usage:
  skiff serve [--data DIR] [--ssh-addr :2222] [--http-addr :80] [--https-addr :443] [--domain D]
  skiff [--data DIR] <command> [args]    run an admin command in the running daemon (as root)
  skiff help                             list the admin commands
  skiff teardown                         stop every app and remove skiff's cgroups, runc state and
                                         firewall rules from this host (the daemon must be stopped)

The data directory is --data, or $SKIFF_DATA, or `+defaultData+`.
`)
}

// local runs an admin command in the daemon, as the server's local admin.
func local(dataDir string, args []string) int {
	socket := filepath.Join(dataDir, "control.sock")
	var stdin io.Reader
	var code int
	var err error
	switch {
	case term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) && admin.TakesTerminal(args):
		code, err = localTerminal(socket, args) // run, postgres:connect: the process gets the terminal
	default:
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			stdin = os.Stdin // piped input (keys:add < key.pub); a terminal is left alone
		}
		code, err = control.RunCommand(socket, args, stdin, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff: %v\n", err)
		return 1
	}
	return code
}

// hook is git's pre-receive hook: it hands the push to the daemon and
// relays the pipeline's output, which git shows the pusher as "remote:".
func hook(args []string) int {
	if len(args) != 1 {
		return control.Hook("", os.Stdin, os.LookupEnv, os.Stderr)
	}
	return control.Hook(args[0], os.Stdin, os.LookupEnv, os.Stderr)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// signalContext is canceled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

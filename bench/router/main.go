// Command router-bench measures skiff's router against nginx and Caddy as
// reverse proxies to the same upstream on this machine, with wrk as the load
// generator. See README.md beside this file.
//
//	go run ./bench/router run [-reps 3] [-duration 10s] [-out bench/out]
//	go run ./bench/router instructions [-requests 20000]   # callgrind
//
// The subcommand upstream is the app it starts, refproxy the reference
// proxies (refproxy.go); the router process is the router package's test
// binary (router/benchserve_test.go).
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: router-bench run|serve|sched|instructions|slowloris|redeploy|upstream|refproxy [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "upstream":
		err = upstream(os.Args[2:])
	case "refproxy":
		err = refproxy(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	case "sched":
		err = sched(os.Args[2:])
	case "slowloris":
		err = slowloris(os.Args[2:])
	case "redeploy":
		err = redeploy(os.Args[2:])
	case "instructions":
		err = instructions(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "router-bench:", err)
		os.Exit(1)
	}
}

func newFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ExitOnError) }

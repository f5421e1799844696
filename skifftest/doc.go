// Package skifftest holds honest in-memory implementations of skiff's
// seams, for tests that need the whole pipeline in seconds and without
// root: a Scheduler whose instances are real HTTP servers on 127.0.0.1:0
// (so the real router's health checks pass against them), a Builder that
// makes images from the pushed tree's Procfile, and TestScheduler, the
// conformance suite that this package's Scheduler and runtime.Runtime both
// pass, so that the fake cannot drift from the real thing.
//
// The fake runs the programs of its images in memory. It understands the
// command language of the test probe (internal/container/testdata/probe)
// that the runtime's tests run for real:
//
//	serve          HTTP on $PORT: "hello from <process>" at every path, the environment at /env
//	exit N         print "exiting N", exit with status N
//	sleep D        print "sleeping", sleep for the Go duration D, exit 0
//	ignore-term    print "ignoring SIGTERM", run until killed
//	stdin          copy stdin to stdout
//
// Anything else prints "unknown command" to stderr and exits 2.
package skifftest

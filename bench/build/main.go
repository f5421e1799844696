// Command build-bench measures push-to-live: a `git push` of each sample app
// (Node.js, Go, Python, static) to a real skiff daemon, until the router
// serves the new release's answer. Each sample is pushed cold (a new app:
// no cache, no previous image), then again after a one-line change, several
// times (cached). It prints, per push, the time to live and each phase, and
// per sample the cached median and its ratio to the cold push. It measures
// and asserts nothing. See README.md beside this file.
//
//	bench/build/run.sh [-cached 3] [-samples nodejs,go,python,static]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.skiff, "skiff", "bin/skiff", "the skiff binary (make build)")
	flag.StringVar(&cfg.apps, "apps", "buildpacks/testdata/apps", "the sample apps, one directory each")
	samples := flag.String("samples", "nodejs,go,python,static", "samples to push, in order")
	flag.IntVar(&cfg.cached, "cached", 3, "cached pushes (a one-line change each) per sample")
	flag.StringVar(&cfg.debootstrap, "debootstrap-cache", "/var/cache/skiff-test/debootstrap",
		"builder:create's Debian cache (shared with the tests); an empty directory measures a first builder:create")
	flag.StringVar(&cfg.prefix, "resource-prefix", "bskb", "the daemon's host resource prefix")
	flag.StringVar(&cfg.pool, "network-pool", "10.217.0.0/16", "the daemon's instance address pool")
	flag.StringVar(&cfg.out, "out", "bench/out", "where the table is also written")
	flag.BoolVar(&cfg.verbose, "v", false, "show every push's output")
	flag.BoolVar(&inMS, "ms", false, "durations in milliseconds instead of seconds to 0.1 s")
	flag.Parse()
	cfg.samples = strings.Split(*samples, ",")
	if err := run(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "build-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	skiff, apps, debootstrap, prefix, pool, out string
	samples                                     []string
	cached                                      int
	verbose                                     bool
}

func run(cfg *config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: builds and apps run under runc")
	}
	var err error
	if cfg.skiff, err = filepath.Abs(cfg.skiff); err != nil {
		return err
	}
	load := startLoadSampler()
	started := time.Now()
	d, err := startDaemon(cfg)
	if err != nil {
		return err
	}
	defer d.stop()
	// An interrupt stops the daemon and removes what it put on the host.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		d.stop()
		os.Exit(1)
	}()
	steps, err := d.builderCreate()
	if err != nil {
		return err
	}
	// A first push of any app unpacks the builder's root file system and
	// the run image's layers, once per daemon: a warm-up push of the
	// Procfile sample pays for that, so that each sample's cold push is
	// its own.
	if err := warmUp(cfg, d); err != nil {
		return fmt.Errorf("warm-up push: %w", err)
	}
	var results []*sampleResult
	for _, name := range cfg.samples {
		r, err := benchSample(cfg, d, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, r)
	}
	rep := report(results, steps, load.stop(), started)
	fmt.Print(rep)
	if cfg.out != "" {
		if err := os.MkdirAll(cfg.out, 0o755); err == nil {
			f := filepath.Join(cfg.out, "build-"+started.UTC().Format("20060102-150405")+".md")
			if err := os.WriteFile(f, []byte(rep), 0o644); err != nil {
				return err
			}
			fmt.Fprintln(os.Stderr, "build-bench: table written to", f)
		}
	}
	return nil
}

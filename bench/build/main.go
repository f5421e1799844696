// Command build measures push-to-image time: each app under -apps is built
// cold (no cache, no previous image), then again after a one-line change
// (cache and previous image in place), with the default builder, and the
// lifecycle's phase times and skiff's own overhead (the time outside the
// buildpacks' build phase) are printed as a table. Run it as root through
// run.sh, which builds the lifecycle and packages the buildpacks first.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/build"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/imagestore"
)

func main() {
	data := flag.String("data", "/var/tmp/skiff-bench-build", "data directory (kept between runs: the debootstrap cache lives there)")
	bps := flag.String("buildpacks", "", "packaged buildpacks (go run ./buildpacks/cmd/package -o DIR)")
	apps := flag.String("apps", "bench/build/apps", "one directory per app")
	lifecycle := flag.String("lifecycle", "build/lifecycle", "directory with the lifecycle binaries")
	verbose := flag.Bool("v", false, "show the builds' output")
	flag.Parse()
	if err := run(*data, *bps, *apps, *lifecycle, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(data, bps, apps, lifecycle string, verbose bool) error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := imagestore.Open(filepath.Join(data, "images"))
	if err != nil {
		return err
	}
	nw, err := container.NewNetwork(container.NetworkConfig{
		Pool: netip.MustParsePrefix("10.215.0.0/16"), LinkPrefix: "skbn", Table: "skiffbench",
		LockFile: "/run/skiff-bench-network.lock",
	}, log)
	if err != nil {
		return err
	}
	defer nw.Remove()
	p, err := build.New(build.Config{DataDir: data, Store: store, Log: log, LifecycleDir: lifecycle, Network: nw,
		StateDir: "/run/skiff/runc-bench-builds", CgroupParent: "skiff-bench-builds"})
	if err != nil {
		return err
	}
	if err := p.Cleanup(ctx); err != nil {
		return err
	}
	var out io.Writer = io.Discard
	if verbose {
		out = os.Stderr
	}
	start := time.Now()
	if err := p.CreateDefaultBuilder(ctx, build.CreateOptions{BuildpacksDir: bps}, os.Stderr); err != nil {
		return err
	}
	fmt.Printf("builder:create: %.1fs\n\n", time.Since(start).Seconds())
	fmt.Println("| app | build | total | detect | restore | build phase | export | skiff overhead |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	ents, err := os.ReadDir(apps)
	if err != nil {
		return err
	}
	for i, e := range ents {
		if !e.IsDir() {
			continue
		}
		app := &skiff.App{ID: "bench-" + e.Name(), Name: e.Name()}
		if err := p.PurgeCache(ctx, app.ID); err != nil {
			return err
		}
		var prev string
		for round, kind := range []string{"cold", "cached"} {
			src, err := tarApp(filepath.Join(apps, e.Name()), round)
			if err != nil {
				return err
			}
			t0 := time.Now()
			res, err := p.Build(ctx, &skiff.BuildRequest{
				App: app, BuildID: fmt.Sprintf("b%d-%d-%d", time.Now().Unix(), i, round),
				Commit: "0000000", Source: src, PreviousImage: prev,
			}, out)
			took := time.Since(t0)
			if err != nil {
				fmt.Printf("| %s | %s | failed: %v | | | | | |\n", e.Name(), kind, err)
				break
			}
			ph := res.Phases
			fmt.Printf("| %s | %s | %.1fs | %.1fs | %.1fs | %.1fs | %.1fs | %.1fs |\n", e.Name(), kind, took.Seconds(),
				ph.Detect.Seconds(), (ph.Analyze + ph.Restore).Seconds(), ph.Build.Seconds(), ph.Export.Seconds(),
				(took - ph.Build).Seconds())
			prev = res.Image
		}
	}
	return nil
}

// tarApp archives an app as git archive would, with a one-line change in
// every round after the first (a comment appended to a file named
// bench-change, which every app gets).
func tarApp(dir string, round int) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755})
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(b))}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	change := []byte(fmt.Sprintf("change %d\n", round))
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bench-change", Mode: 0o644, Size: int64(len(change))})
	tw.Write(change)
	return &buf, tw.Close()
}

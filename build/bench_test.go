//go:build skiffbench

// The push-to-image benchmark (bench/build/run.sh): each app under -apps is
// built cold (no cache, no previous image), then again after a one-line
// change (cache and previous image in place), with the default builder, and
// the lifecycle's phase times and skiff's own overhead (the time outside the
// buildpacks' build phase) are printed as a table. It measures; it asserts
// nothing about time. A test file behind a build tag, so that it drives the
// package from inside rather than wiring packages together.
package build

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
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/imagestore"
)

var (
	benchData       = flag.String("bench.data", "/var/tmp/skiff-bench-build", "data directory (kept between runs: the debootstrap cache lives there)")
	benchBuildpacks = flag.String("bench.buildpacks", "", "packaged buildpacks (go run ./buildpacks/cmd/package -o DIR)")
	benchApps       = flag.String("bench.apps", "../bench/build/apps", "one directory per app")
	benchShow       = flag.Bool("bench.show", false, "show the builds' output")
)

func TestBenchPushToImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the benchmark runs builds: run it as root (bench/build/run.sh)")
	}
	if err := runBench(*benchData, *benchBuildpacks, *benchApps, testLifecycle(t), *benchShow); err != nil {
		t.Fatal(err)
	}
}

func runBench(data, bps, apps, lifecycle string, verbose bool) error {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := imagestore.Open(filepath.Join(data, "images"))
	if err != nil {
		return err
	}
	nw, err := container.NewNetwork(container.NetworkConfig{
		Pool: netip.MustParsePrefix("10.215.0.0/16"), LinkPrefix: "sbn", Table: "skiffbench",
		LockFile: "/run/skiff-bench-network.lock",
	}, log)
	if err != nil {
		return err
	}
	defer nw.Remove()
	p, err := New(Config{DataDir: data, Store: store, Log: log, LifecycleDir: lifecycle, Network: nw,
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
	if err := p.CreateDefaultBuilder(ctx, CreateOptions{BuildpacksDir: bps}, os.Stderr); err != nil {
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

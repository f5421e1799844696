// Command package builds skiff's buildpacks into a directory the default
// builder is assembled from:
//
//	go run ./buildpacks/cmd/package -o DIR [-arch amd64]
//
// writes DIR/<escaped id>/<version>/{buildpack.toml,bin/build,bin/detect}
// for each buildpack and DIR/order.toml. It runs "go build" for the
// buildpack binary (static, trimmed), so it needs the Go toolchain and must
// run inside the skiff module.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/skiffhq/skiff/buildpacks"
)

func main() {
	out := flag.String("o", "", "output directory (required)")
	arch := flag.String("arch", runtime.GOARCH, "target architecture (GOARCH)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./buildpacks/cmd/package -o DIR [-arch GOARCH]")
		os.Exit(2)
	}
	if err := run(context.Background(), *out, *arch); err != nil {
		fmt.Fprintf(os.Stderr, "package: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, arch string) error {
	tmp, err := os.MkdirTemp("", "skiff-buildpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "skiff-buildpack")
	if err := buildpacks.BuildBinary(ctx, bin, arch); err != nil {
		return err
	}
	if err := buildpacks.WriteTree(out, bin, arch); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	for _, bp := range buildpacks.List() {
		fmt.Printf("%s@%s -> %s\n", bp.ID, bp.Version, filepath.Join(out, buildpacks.EscapeID(bp.ID), bp.Version))
	}
	return nil
}

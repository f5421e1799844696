package buildpacks

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// Main is the buildpack binary's entry point. What it does depends on the
// name it was run as: bin/detect or bin/build of the buildpack whose
// directory holds it (CNB_BUILDPACK_DIR), or ServerName for the static web
// server. It returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(args) == 0 {
		fmt.Fprintln(stderr, "skiff-buildpack: no arguments")
		return 2
	}
	switch name := filepath.Base(args[0]); name {
	case "detect", "build":
		bp, err := self(args[0])
		if err != nil {
			fmt.Fprintf(stderr, "skiff-buildpack: %v\n", err)
			return 1
		}
		if name == "detect" {
			return cnb.RunDetect(ctx, bp, stdout)
		}
		return cnb.RunBuild(ctx, bp, stdout)
	case ServerName:
		return serve(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "skiff-buildpack: run as bin/detect or bin/build of a buildpack, or as %s (was run as %q)\n", ServerName, name)
		return 2
	}
}

// self finds which buildpack this binary is, from the id in buildpack.toml
// of its buildpack directory.
func self(argv0 string) (*cnb.Buildpack, error) {
	dir := os.Getenv("CNB_BUILDPACK_DIR")
	if dir == "" {
		dir = filepath.Dir(filepath.Dir(argv0))
	}
	var desc descriptorTOML
	if _, err := toml.DecodeFile(filepath.Join(dir, "buildpack.toml"), &desc); err != nil {
		return nil, fmt.Errorf("read buildpack.toml: %w", err)
	}
	bp := lookup(desc.Buildpack.ID)
	if bp == nil {
		return nil, fmt.Errorf("buildpack.toml names %q, which this binary does not implement", desc.Buildpack.ID)
	}
	return bp, nil
}

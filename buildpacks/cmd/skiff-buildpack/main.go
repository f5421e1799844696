// Command skiff-buildpack is the one binary behind all of skiff's
// buildpacks: installed as bin/build (and bin/detect, a symlink) of each
// buildpack directory, and as the static sites' web server. Build it static
// (CGO_ENABLED=0): it runs on any base image.
package main

import (
	"os"

	"github.com/skiffhq/skiff/buildpacks"
)

func main() { os.Exit(buildpacks.Main(os.Args, os.Stdout, os.Stderr)) }

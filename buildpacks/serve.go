package buildpacks

import (
	"context"
	"io"

	"github.com/skiffhq/skiff/buildpacks/internal/static"
	"github.com/skiffhq/skiff/buildpacks/internal/staticserver"
)

// ServerName is the name the binary answers to as the static sites' web
// server; the static buildpack installs it under that name.
const ServerName = static.ServerName

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return staticserver.Main(ctx, ServerName, args, stdout, stderr)
}

package buildpacks

import (
	"context"
	"fmt"
	"io"
)

// ServerName is the name the binary answers to as the static sites' web
// server.
const ServerName = "skiff-static"

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "skiff-static: not implemented yet")
	return 1
}

package buildpacks

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// BinaryPackage is the import path of the buildpack binary's main package.
const BinaryPackage = "github.com/skiffhq/skiff/buildpacks/cmd/skiff-buildpack"

// BuildBinary compiles the buildpack binary to out for linux/arch with the
// go command on PATH: static (CGO_ENABLED=0, so it runs on any base image),
// trimmed and stripped. It must run inside the skiff module.
func BuildBinary(ctx context.Context, out, arch string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, BinaryPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout = os.Stderr
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", BinaryPackage, err, stderr.String())
	}
	return nil
}

package build

import (
	"context"
	"fmt"

	"github.com/skiffhq/skiff"
)

// lifecycleError turns the creator's exit code (platform spec codes) into a
// message for the pusher.
func lifecycleError(code int, lastErr, lastOut string) error {
	var msg string
	switch {
	case code == 20 || code == 21:
		msg = "no buildpack detected this app; add a file the builder's buildpacks recognise (package.json, go.mod, requirements.txt, index.html, a Procfile) or pin one with buildpacks:set"
	case code == 22:
		msg = "detection failed"
	case code == 51:
		msg = "a buildpack failed"
		if lastOut != "" {
			msg += ": " + lastOut
		}
	case code >= 50 && code < 60:
		msg = "the build failed"
	case code >= 30 && code < 50:
		msg = "restoring the cache failed; builds:purge-cache may help"
	case code >= 60 && code < 70:
		msg = "exporting the image failed"
	case code == 137 || code == 128+9:
		msg = "the build was killed (out of memory?)"
	default:
		msg = fmt.Sprintf("the lifecycle exited with status %d", code)
	}
	if lastErr != "" && code != 51 {
		msg += ": " + lastErr
	}
	return skiff.Errorf(skiff.EINVALID, "%s", msg)
}

func canceled(ctx context.Context) error {
	return skiff.Errorf(skiff.EUNAVAILABLE, "build canceled (%v)", context.Cause(ctx))
}

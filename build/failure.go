package build

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/skiffhq/skiff"
)

// apiRE finds the buildpack and the API version in the lifecycle's
// incompatible-API error ("set API for buildpack 'x@1': buildpack API
// version '0.1' is incompatible with the lifecycle").
var apiRE = regexp.MustCompile(`(?i)set API for (?:buildpack|extension) '([^'@]+)(?:@[^']*)?': buildpack API version '([^']+)'`)

// lifecycleError turns the creator's exit code (platform spec codes) into a
// message for the pusher; pins are the buildpacks the app pinned, if any.
func lifecycleError(code int, lastErr, lastOut string, pins ...string) error {
	var msg string
	switch {
	case (code == 20 || code == 21) && len(pins) > 0:
		msg = fmt.Sprintf("the buildpacks pinned with buildpacks:set (%s) do not detect this app (their output is above); pin others, or buildpacks:clear to use the builder's detection", strings.Join(pins, ", "))
		lastErr = ""
	case code == 20 || code == 21:
		msg = "no buildpack detected this app; add a file the builder's buildpacks recognise (package.json, go.mod, requirements.txt, index.html, a Procfile) or pin one with buildpacks:set"
	case code == 12:
		if m := apiRE.FindStringSubmatch(lastErr); m != nil {
			msg = fmt.Sprintf("buildpack %s asks for buildpack API %s, which the lifecycle does not support (it supports %s to %s); use a newer release of the buildpack", m[1], m[2], buildpackAPIs[0], buildpackAPIs[len(buildpackAPIs)-1])
			lastErr = ""
		} else {
			msg = "a buildpack asks for a buildpack API the lifecycle does not support"
		}
	case strings.Contains(lastErr, "contains extensions which is not supported"):
		msg = "this builder chose an image extension, and skiff does not run image extensions (which rewrite the build or run image); use a builder without them, or pin buildpacks with buildpacks:set"
		lastErr = ""
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

package python

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/skiffhq/skiff/buildpacks/internal/cnb"
)

// maxPipOutput is how much of pip's output is kept to explain a failure.
const maxPipOutput = 1 << 20

// tail keeps the last max bytes written to it.
type tail struct {
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }

var (
	pipNetworkRE  = regexp.MustCompile(`(?i)(Name or service not known|Temporary failure in name resolution|No address associated with hostname|Failed to establish a new connection|Connection refused|Network is unreachable|Read timed out|ConnectTimeoutError|timed out|SSLError|CERTIFICATE_VERIFY_FAILED|ProxyError)`)
	pipNoMatchRE  = regexp.MustCompile(`(?:No matching distribution found for|Could not find a version that satisfies the requirement) ([^\s(]+)`)
	pipBuildRE    = regexp.MustCompile(`(?:Failed to build|Failed building wheel for|Building wheel for) ([A-Za-z0-9._-]+)`)
	pipConflictRE = regexp.MustCompile(`ResolutionImpossible|conflicting dependencies`)
	pipHashRE     = regexp.MustCompile(`THESE PACKAGES DO NOT MATCH THE HASHES|Hashes are required in --require-hashes mode`)
	pipHTTPRE     = regexp.MustCompile(`(?i)(HTTP error (\d{3})|(\d{3}) Client Error|(\d{3}) Server Error)`)
)

// pipFailure says what made pip fail, from its output: the package index
// unreachable (naming it and the network error), no release of a package,
// conflicting requirements, hashes that do not match the lock, a package
// that failed to build from source; source is the file the requirements
// came from.
func pipFailure(output, index, source string, code int, probe func(string) error) *cnb.UserError {
	if !pipNetworkRE.MatchString(output) && strings.Contains(output, "(from versions: none)") && probe != nil {
		// pip says no more when it does not retry: ask the index.
		if err := probe(index); err != nil {
			return cnb.Failf("pip could not reach the package index %s (%v): the build's network, not %s, is the problem.", index, err, source).
				Hint("Check that this server reaches the index, or point PIP_INDEX_URL at one it reaches, as a build-time config var.")
		}
	}
	switch {
	case pipNetworkRE.MatchString(output):
		// pip then also says no version satisfies the requirement: the
		// network is the cause, and comes first.
		m := pipNetworkRE.FindString(output)
		return cnb.Failf("pip could not reach the package index %s (%s): the build's network, not %s, is the problem.", index, m, source).
			Hint("Check that this server reaches the index, or point PIP_INDEX_URL at one it reaches, as a build-time config var.")
	case strings.Contains(output, "is not a trusted or secure host"):
		return cnb.Failf("pip ignored the package index %s: it is plain HTTP, which pip trusts only on this machine's own addresses.", index).
			Hint("Use the index's https:// address, or set PIP_TRUSTED_HOST to its host as a build-time config var.")
	case pipHashRE.MatchString(output):
		return cnb.Failf("A download from %s does not match the hash %s pins.", index, source).
			Hint("Lock again against the index you install from, commit the lock file and push again.")
	case pipNoMatchRE.MatchString(output):
		pkg := pipNoMatchRE.FindStringSubmatch(output)[1]
		return cnb.Failf("The package index %s has no release of %s that %s accepts for this Python.", index, strings.TrimRight(pkg, ",;"), source).
			Hint("Check the name and version in %s, or the Python version it needs.", source)
	case pipConflictRE.MatchString(output):
		return cnb.Failf("The requirements of %s conflict: pip found no set of versions that satisfies them all (above).", source).
			Hint("Loosen the pins that conflict, lock again and commit.")
	case strings.Contains(output, "error: subprocess-exited-with-error") || strings.Contains(output, "Failed to build"):
		pkg := "a package"
		if m := pipBuildRE.FindAllStringSubmatch(output, -1); len(m) > 0 {
			pkg = m[len(m)-1][1]
		}
		return cnb.Failf("pip could not build %s from source (exit status %d); its build output is above.", pkg, code).
			Hint("A package built from source may need C libraries the builder lacks; a release with a wheel for this Python avoids the build.")
	case pipHTTPRE.MatchString(output):
		return cnb.Failf("The package index %s answered %s.", index, pipHTTPRE.FindString(output)).
			Hint("Check PIP_INDEX_URL and the index's credentials.")
	}
	return cnb.Failf("pip install failed (exit status %d); the pip output above says why.", code).Hint("Check %s.", source)
}

// probeIndex asks the index for its root page, as pip would, and returns
// the network error if there is one (an HTTP status is no network error).
func probeIndex(ctx context.Context) func(string) error {
	return func(index string) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(index, "/")+"/", nil)
		if err != nil {
			return err
		}
		// The buildpack's own environment is the lifecycle's: the proxy
		// variables pip saw.
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}).Do(req)
		if err != nil {
			var dns *net.DNSError
			var op *net.OpError
			switch {
			case errors.As(err, &dns):
				return fmt.Errorf("%s: %s", dns.Name, dns.Err)
			case errors.As(err, &op):
				return op
			}
			return err
		}
		resp.Body.Close()
		return nil
	}
}

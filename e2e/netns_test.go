package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testnet"
)

// serveBeyondHost serves h at an address that is not the host's (builds
// may not reach the host's services) yet stays on this machine, and
// returns host:port.
func serveBeyondHost(t *testing.T, h http.Handler) string {
	t.Helper()
	ln := testnet.Listen(t, "pyix", 251)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

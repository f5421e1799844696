// Package registrytest serves a real OCI distribution registry for tests:
// go-containerregistry's pkg/registry (the registry it tests itself
// against), over TLS, behind HTTP basic auth as a registry with accounts
// answers (401 with a Basic challenge, every request checked). It stands
// for an external registry (a team's, a cloud's) that skiff pushes to.
// Both it and OnDisk (the same registry without accounts) keep what they
// are given on disk rather than in the test's memory.
package registrytest

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is a registry serving on a listener.
type Registry struct {
	srv *http.Server
	dir string // what it keeps, removed by Close

	mu     sync.Mutex
	pushes int // manifests put
	pulls  int // manifests got by a client with the credentials
}

// Serve serves a registry on l with TLS (cert) for the one account
// user/password, keeping what it is given on disk (OnDisk, in a
// temporary directory); Close stops it and removes what it kept.
func Serve(l net.Listener, cert tls.Certificate, user, password string) *Registry {
	r := &Registry{}
	var inner http.Handler
	dir, err := os.MkdirTemp("", "registrytest-")
	if err == nil {
		r.dir = dir
		inner, err = OnDisk(dir)
	}
	if err != nil { // no room on disk: in memory, as pkg/registry keeps it
		log.Printf("registrytest: %v; the registry keeps its blobs in memory", err)
		inner = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	}
	r.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			if isManifest(req.URL.Path) {
				r.mu.Lock()
				switch req.Method {
				case http.MethodPut:
					r.pushes++
				case http.MethodGet:
					r.pulls++
				}
				r.mu.Unlock()
			}
			inner.ServeHTTP(w, req)
		}),
	}
	go func() {
		if err := r.srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("registrytest: %v", err)
		}
	}()
	return r
}

func isManifest(path string) bool {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			j := i - len("/manifests")
			return j >= 0 && path[j:i] == "/manifests"
		}
	}
	return false
}

// Counts are the manifests pushed to it and pulled from it with the
// credentials.
func (r *Registry) Counts() (pushes, pulls int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pushes, r.pulls
}

// Close stops the registry and removes what it kept.
func (r *Registry) Close() error {
	err := r.srv.Close()
	if r.dir != "" {
		_ = os.RemoveAll(r.dir) // a temporary directory of its own
	}
	return err
}

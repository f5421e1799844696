// Package registry serves skiff's image store to Kubernetes clusters as an
// OCI distribution registry: pull only (nothing can be pushed or deleted),
// by digest only, behind per-app credentials.
//
// Each app is a repository named by its stable id. A cluster's nodes pull an
// app's images with the credentials of that app on that cluster (the pull
// secret skiff puts in the app's namespace), and those credentials open that
// one repository and nothing else: its manifests are the app's releases'
// images, its blobs only what those manifests name. So a pull secret read
// from one app's namespace fetches no other app's image, though the blobs
// are shared on disk.
//
// External (push.go) is the other way: skiff pushes an app's image by
// digest to a registry the admin names per cluster.
package registry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiffhq/skiff/internal/imagestore"
)

// Access tells the registry what it may serve.
type Access interface {
	// ClusterSecret is the random secret of a cluster skiff knows; an
	// error (ENOTFOUND) for one it does not (removed: its credentials stop
	// working).
	ClusterSecret(ctx context.Context, cluster string) ([]byte, error)
	// AppImages lists the manifest digests of the app's releases that a
	// cluster may pull ("sha256:…").
	AppImages(ctx context.Context, appID string) ([]string, error)
}

// Server is the registry's http.Handler.
type Server struct {
	store  *imagestore.Store
	access Access
	log    *slog.Logger
}

// New serves the images of store that access allows.
func New(store *imagestore.Store, access Access, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{store: store, access: access, log: log}
}

// Credentials are the user name and password that pull appID's images for
// cluster, given the cluster's secret. They are derived, not stored:
// a new cluster secret revokes all of them.
func Credentials(secret []byte, cluster, appID string) (user, password string) {
	user = appID + "@" + cluster
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("skiff registry pull\x00" + user))
	return user, base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Repository is the repository an app's images are pulled from.
func Repository(appID string) string { return appID }

var (
	pathRE   = regexp.MustCompile(`^/v2/([a-z0-9][a-z0-9-]{0,63})/(manifests|blobs)/(sha256:[a-f0-9]{64})$`)
	userRE   = regexp.MustCompile(`^([a-z0-9][a-z0-9-]{0,63})@([a-z0-9][a-z0-9-]{0,62})$`)
	manifest = map[string]bool{
		"application/vnd.oci.image.manifest.v1+json":           true,
		"application/vnd.docker.distribution.manifest.v2+json": true,
	}
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fail(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry only serves pulls")
		return
	}
	appID, ok := s.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="skiff"`)
		fail(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	m := pathRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		fail(w, http.StatusNotFound, "NAME_UNKNOWN", "images are pulled by digest: /v2/<app-id>/manifests/sha256:…")
		return
	}
	repo, kind, digest := m[1], m[2], m[3]
	// Another app's repository looks like a missing one.
	if repo != appID {
		fail(w, http.StatusNotFound, "NAME_UNKNOWN", "repository not found")
		return
	}
	allowed, err := s.allowed(r.Context(), appID, kind == "manifests")
	if err != nil {
		s.log.Error("registry: list an app's images", "app", appID, "err", err)
		fail(w, http.StatusInternalServerError, "UNKNOWN", "internal error")
		return
	}
	if !slices.Contains(allowed, digest) {
		code := "MANIFEST_UNKNOWN"
		if kind == "blobs" {
			code = "BLOB_UNKNOWN"
		}
		fail(w, http.StatusNotFound, code, "not found")
		return
	}
	h, _ := v1.NewHash(digest)
	f, err := os.Open(s.store.BlobPath(h))
	if err != nil {
		code := "BLOB_UNKNOWN"
		if kind == "manifests" {
			code = "MANIFEST_UNKNOWN"
		}
		fail(w, http.StatusNotFound, code, "not found")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail(w, http.StatusInternalServerError, "UNKNOWN", "internal error")
		return
	}
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("ETag", `"`+digest+`"`)
	if kind == "manifests" {
		var head struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.NewDecoder(f).Decode(&head); err != nil || !manifest[head.MediaType] {
			fail(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "not an image manifest")
			return
		}
		if _, err := f.Seek(0, 0); err != nil {
			fail(w, http.StatusInternalServerError, "UNKNOWN", "internal error")
			return
		}
		w.Header().Set("Content-Type", head.MediaType)
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	// Content-addressed: never changes, and Range requests resume pulls.
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// authenticate checks the request's Basic credentials and returns the app
// they open.
func (s *Server) authenticate(r *http.Request) (string, bool) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	m := userRE.FindStringSubmatch(user)
	if m == nil {
		return "", false
	}
	secret, err := s.access.ClusterSecret(r.Context(), m[2])
	if err != nil || len(secret) == 0 {
		return "", false
	}
	_, want := Credentials(secret, m[2], m[1])
	if subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		return "", false
	}
	return m[1], true
}

// allowed lists the digests an app may pull: its images' manifests, or with
// blobs false also their configs and layers.
func (s *Server) allowed(ctx context.Context, appID string, manifests bool) ([]string, error) {
	images, err := s.access.AppImages(ctx, appID)
	if err != nil {
		return nil, err
	}
	if manifests {
		return images, nil
	}
	var out []string
	for _, img := range images {
		blobs, err := s.store.ImageBlobs(img)
		if err != nil {
			continue // collected since: nothing of it to serve
		}
		for _, b := range blobs[1:] {
			out = append(out, b.String())
		}
	}
	return out, nil
}

// fail writes an OCI distribution error.
func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`+"\n", code, msg)
}

// Reference is how a cluster names an app's image on this registry: host is
// the registry's address as the nodes reach it.
func Reference(host, appID, digest string) string {
	return strings.TrimSuffix(host, "/") + "/" + Repository(appID) + "@" + digest
}

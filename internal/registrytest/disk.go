package registrytest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

// uploadPath is a blob upload's URL: /v2/<repository>/blobs/uploads/<id>,
// the id pkg/registry handed out (decimal digits).
var uploadPath = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/([0-9]+)$`)

// OnDisk is pkg/registry with its blobs kept in dir, the blobs being
// uploaded too. pkg/registry keeps a chunked upload (the PATCH requests
// that go-containerregistry's remote.Write and most clients send) in
// memory, whole, until its closing PUT: a builder of hundreds of megabytes
// took that much of the test process's heap, and more while its buffer
// grew. Here each PATCH's body is appended to a file, and the PUT hands
// the registry the file and what the PUT itself carries as one monolithic
// upload (POST ?digest=), which it streams to its disk handler.
func OnDisk(dir string) (http.Handler, error) {
	blobs, uploads := filepath.Join(dir, "blobs"), filepath.Join(dir, "uploads")
	for _, d := range []string{blobs, uploads} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(registry.NewDiskBlobHandler(blobs)))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m := uploadPath.FindStringSubmatch(req.URL.Path)
		if m == nil || (req.Method != http.MethodPatch && req.Method != http.MethodPut) {
			inner.ServeHTTP(w, req)
			return
		}
		file := filepath.Join(uploads, m[2])
		if req.Method == http.MethodPatch {
			appendChunk(w, req, file)
			return
		}
		f, err := os.Open(file)
		var size int64
		var head io.Reader = strings.NewReader("") // a PUT with the whole blob
		if err == nil {
			defer os.Remove(file)
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			size, head = fi.Size(), f
		}
		post := req.Clone(req.Context())
		post.Method = http.MethodPost
		post.URL.Path = "/v2/" + m[1] + "/blobs/uploads/"
		post.URL.RawPath = ""
		post.Body = io.NopCloser(io.MultiReader(head, req.Body))
		post.ContentLength = -1
		if req.ContentLength >= 0 {
			post.ContentLength = size + req.ContentLength
		}
		inner.ServeHTTP(w, post)
	}), nil
}

// appendChunk adds a PATCH's body to the upload's file, at the offset its
// Content-Range names (if any), and answers as the distribution API does.
func appendChunk(w http.ResponseWriter, req *http.Request, file string) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if cr := req.Header.Get("Content-Range"); cr != "" {
		start, _, _ := strings.Cut(cr, "-")
		if n, err := strconv.ParseInt(start, 10, 64); err != nil || n != fi.Size() {
			http.Error(w, "the content range does not continue the upload", http.StatusRequestedRangeNotSatisfiable)
			return
		}
	}
	n, err := io.Copy(f, req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Location", req.URL.Path)
	w.Header().Set("Range", fmt.Sprintf("0-%d", fi.Size()+n-1))
	w.WriteHeader(http.StatusAccepted)
}

package registrytest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// serveOnDisk serves OnDisk over a directory of the test's until it ends.
func serveOnDisk(t *testing.T) (string, *httptest.Server) {
	dir := t.TempDir()
	h, err := OnDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return dir, srv
}

// An image pushed with remote.Write (chunked uploads) comes back the same,
// its blobs are files under the directory, and no upload is left there.
func TestOnDiskRoundTrip(t *testing.T) {
	dir, srv := serveOnDisk(t)
	img, err := random.Image(4<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/team/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, err := got.Digest(); err != nil || d != want {
		t.Fatalf("pulled %v %v, pushed %v", d, err, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if fi, err := os.Stat(filepath.Join(dir, "blobs", d.Algorithm, d.Hex)); err != nil || fi.Size() == 0 {
			t.Errorf("layer %s is not on disk: %v", d, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(left) != 0 {
		t.Errorf("uploads left: %v", left)
	}
}

// A chunked upload by hand: each chunk goes to the upload's file, the PUT
// adds its own bytes, and the blob is what they make together.
func TestOnDiskChunks(t *testing.T) {
	dir, srv := serveOnDisk(t)
	do := func(method, path, body string, header ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Header.Set("X-Body", string(b))
		return resp
	}
	resp := do(http.MethodPost, "/v2/team/app/blobs/uploads/", "")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !uploadPath.MatchString(loc) {
		t.Fatalf("start: %s %q", resp.Status, loc)
	}
	id := uploadPath.FindStringSubmatch(loc)[2]
	if resp := do(http.MethodPatch, loc, "abc", "Content-Range", "0-2"); resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != "0-2" {
		t.Fatalf("first chunk: %s %q", resp.Status, resp.Header.Get("Range"))
	}
	if resp := do(http.MethodPatch, loc, "def", "Content-Range", "3-5"); resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != "0-5" {
		t.Fatalf("second chunk: %s %q", resp.Status, resp.Header.Get("Range"))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "uploads", id)); err != nil || string(b) != "abcdef" {
		t.Fatalf("the upload's file: %q %v", b, err)
	}
	if resp := do(http.MethodPatch, loc, "xyz", "Content-Range", "9-11"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("a chunk at the wrong offset: %s", resp.Status)
	}
	sum := sha256.Sum256([]byte("abcdefgh"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if resp := do(http.MethodPut, loc+"?digest="+digest, "gh"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("commit: %s %s", resp.Status, resp.Header.Get("X-Body"))
	}
	if _, err := os.Stat(filepath.Join(dir, "uploads", id)); !os.IsNotExist(err) {
		t.Errorf("the upload's file stayed: %v", err)
	}
	if resp := do(http.MethodGet, "/v2/team/app/blobs/"+digest, ""); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Body") != "abcdefgh" {
		t.Errorf("the blob: %s %q", resp.Status, resp.Header.Get("X-Body"))
	}
	// A wrong digest is refused, and nothing is kept of it.
	resp = do(http.MethodPost, "/v2/team/app/blobs/uploads/", "")
	loc = resp.Header.Get("Location")
	do(http.MethodPatch, loc, "abc")
	if resp := do(http.MethodPut, loc+"?digest="+digest, ""); resp.StatusCode == http.StatusCreated {
		t.Errorf("a blob that is not its digest was taken")
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(left) != 0 {
		t.Errorf("uploads left: %v", left)
	}
}

package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/imagestore"
)

type access struct {
	secrets map[string][]byte
	images  map[string][]string
}

func (a *access) ClusterSecret(_ context.Context, cluster string) ([]byte, error) {
	if s, ok := a.secrets[cluster]; ok {
		return s, nil
	}
	return nil, skiff.Errorf(skiff.ENOTFOUND, "no cluster %s", cluster)
}

func (a *access) AppImages(_ context.Context, appID string) ([]string, error) {
	return a.images[appID], nil
}

type fixture struct {
	srv        *httptest.Server
	acc        *access
	imgA, imgB v1.Image
	digA, digB string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	store, err := imagestore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{acc: &access{secrets: map[string][]byte{"prod": []byte("0123456789abcdef"), "dev": []byte("fedcba9876543210")}}}
	for i, img := range []*v1.Image{&f.imgA, &f.imgB} {
		if *img, err = random.Image(2048, 2); err != nil {
			t.Fatal(err)
		}
		h, err := store.Put(context.Background(), fmt.Sprintf("skiff.local/app/x:%d", i), *img)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			f.digA = h.String()
		} else {
			f.digB = h.String()
		}
	}
	f.acc.images = map[string][]string{"aaaa": {f.digA}, "bbbb": {f.digB}}
	f.srv = httptest.NewTLSServer(New(store, f.acc, nil))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) host() string { return strings.TrimPrefix(f.srv.URL, "https://") }

// pull fetches an image with go-containerregistry's client, as a node would.
func (f *fixture) pull(ref, user, pass string) (v1.Image, error) {
	r, err := name.NewDigest(ref)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, remote.WithAuth(&authn.Basic{Username: user, Password: pass}),
		remote.WithTransport(f.srv.Client().Transport))
	if err != nil {
		return nil, err
	}
	// Reading every layer checks the blobs are served too.
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

func TestPullWithAppCredentials(t *testing.T) {
	f := setup(t)
	user, pass := Credentials(f.acc.secrets["prod"], "prod", "aaaa")
	img, err := f.pull(Reference(f.host(), "aaaa", f.digA), user, pass)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != f.digA {
		t.Fatalf("pulled %s, want %s", d, f.digA)
	}
}

func TestRefusals(t *testing.T) {
	f := setup(t)
	userA, passA := Credentials(f.acc.secrets["prod"], "prod", "aaaa")
	_, passDev := Credentials(f.acc.secrets["dev"], "dev", "aaaa")
	for name, c := range map[string]struct{ ref, user, pass string }{
		"no credentials":                      {Reference(f.host(), "aaaa", f.digA), "", ""},
		"a wrong password":                    {Reference(f.host(), "aaaa", f.digA), userA, passA + "x"},
		"another cluster's password":          {Reference(f.host(), "aaaa", f.digA), userA, passDev},
		"another app's image in its repo":     {Reference(f.host(), "bbbb", f.digB), userA, passA},
		"another app's image in my repo":      {Reference(f.host(), "aaaa", f.digB), userA, passA},
		"an unknown cluster":                  {Reference(f.host(), "aaaa", f.digA), "aaaa@gone", passA},
		"a user name that is not app@cluster": {Reference(f.host(), "aaaa", f.digA), "../../x", passA},
	} {
		if _, err := f.pull(c.ref, c.user, c.pass); err == nil {
			t.Errorf("%s: pulled", name)
		}
	}
	// A removed cluster's credentials stop working.
	delete(f.acc.secrets, "prod")
	if _, err := f.pull(Reference(f.host(), "aaaa", f.digA), userA, passA); err == nil {
		t.Error("a removed cluster's credentials still pull")
	}
}

func TestRawRequests(t *testing.T) {
	f := setup(t)
	user, pass := Credentials(f.acc.secrets["prod"], "prod", "aaaa")
	cfgB, _ := f.imgB.ConfigName()
	cfgA, _ := f.imgA.ConfigName()
	client := &http.Client{Transport: f.srv.Client().Transport.(*http.Transport).Clone()}
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a test server
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v2/", 200},
		{"GET", "/v2/aaaa/blobs/" + cfgA.String(), 200},
		{"HEAD", "/v2/aaaa/manifests/" + f.digA, 200},
		{"GET", "/v2/aaaa/blobs/" + cfgB.String(), 404}, // a blob of another app's image
		{"GET", "/v2/aaaa/manifests/latest", 404},       // tags are not served
		{"GET", "/v2/aaaa/tags/list", 404},
		{"GET", "/v2/_catalog", 404},
		{"GET", "/v2/aaaa/blobs/sha256:" + strings.Repeat("0", 64), 404},
		{"GET", "/v2/aaaa/blobs/sha256:../../../../etc/passwd", 404},
		{"PUT", "/v2/aaaa/manifests/" + f.digA, 405},
		{"POST", "/v2/aaaa/blobs/uploads/", 405},
		{"DELETE", "/v2/aaaa/manifests/" + f.digA, 405},
	} {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, nil)
		req.SetBasicAuth(user, pass)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
		if c.want == 200 && c.method == "HEAD" && resp.Header.Get("Docker-Content-Digest") != f.digA {
			t.Errorf("HEAD manifest: digest header %q", resp.Header.Get("Docker-Content-Digest"))
		}
	}
	// Without credentials the registry asks for Basic ones (containerd then
	// sends the pull secret's).
	resp, err := client.Get(f.srv.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/skiffhq/skiff"
)

// The other way for a cluster's nodes to get an app's image: skiff pushes
// it, by digest, to an external registry the admin names per cluster
// (clusters:set NAME registry), and the nodes pull it from there. The
// registry is the admin's choice, like the cluster's API, so pushes are
// not confined as the pulls made on a user's behalf are.

// External is an external registry skiff pushes to.
type External struct {
	// Registry is host[:port][/path] (skiff.ValidateRegistry); an app's
	// images are <Registry>/<app>@sha256:….
	Registry           string
	Username, Password string
	// Transport, when set, replaces the default (HTTPS with the system's
	// roots and bounded timeouts).
	Transport http.RoundTripper
}

// Host is the registry's host[:port], as a pull secret names it.
func (e *External) Host() string {
	h, _, _ := strings.Cut(e.Registry, "/")
	return h
}

// Ref is the reference of an app's image there, by digest.
func (e *External) Ref(app, digest string) string { return e.Registry + "/" + app + "@" + digest }

// transport is e's transport, HTTPS only: go-containerregistry falls back
// to plain HTTP for a registry on a private or loopback address, which
// would send the credentials in the clear.
func (e *External) transport() http.RoundTripper {
	t := e.Transport
	if t == nil {
		t = defaultTransport()
	}
	return httpsOnly{t}
}

type httpsOnly struct{ next http.RoundTripper }

// errPlainHTTP is what a request over plain HTTP gets.
var errPlainHTTP = errors.New("skiff talks to registries over HTTPS only")

func (h httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, errPlainHTTP
	}
	return h.next.RoundTrip(req)
}

func defaultTransport() http.RoundTripper {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

func (e *External) auth() authn.Authenticator {
	if e.Username == "" && e.Password == "" {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{Username: e.Username, Password: e.Password})
}

// keychain gives e's credentials for its registry.
type keychain struct{ e *External }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.e.auth(), nil }

// Check tells at once whether skiff may push to the registry with e's
// credentials (it starts an upload to app's repository and cancels it).
func (e *External) Check(ctx context.Context, app string) error {
	repo, err := name.NewRepository(e.Registry+"/"+app, name.StrictValidation)
	if err != nil {
		return skiff.Errorf(skiff.EINVALID, "invalid registry %s: %v", e.Registry, err)
	}
	done := make(chan error, 1)
	go func() { done <- remote.CheckPushPermission(repo.Tag("skiff-check"), keychain{e}, e.transport()) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return e.explain("check that skiff may push to", err)
	}
	return nil
}

// Push copies img to the registry as <Registry>/<app>@<its digest>,
// calling progress with what it does. Blobs the registry has already are
// not sent again; an image that is there whole costs a few requests.
func (e *External) Push(ctx context.Context, img v1.Image, app string, progress func(string)) (string, error) {
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	ref, err := name.NewDigest(e.Ref(app, digest.String()), name.StrictValidation)
	if err != nil {
		return "", skiff.Errorf(skiff.EINVALID, "invalid registry %s: %v", e.Registry, err)
	}
	if _, err := remote.Head(ref, remote.WithContext(ctx), remote.WithAuth(e.auth()), remote.WithTransport(e.transport())); err == nil {
		progress(fmt.Sprintf("%s is in %s already", short(digest.String()), e.Registry))
		return ref.String(), nil
	}
	var size int64
	if layers, err := img.Layers(); err == nil {
		for _, l := range layers {
			if n, err := l.Size(); err == nil {
				size += n
			}
		}
	}
	progress(fmt.Sprintf("Pushing %s (%s) to %s", short(digest.String()), mib(size), ref.Context().String()))
	updates := make(chan v1.Update, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Against the image's own size: go-containerregistry's total
		// grows as it plans each blob. Blobs the registry has count as
		// nothing sent.
		next := int64(25)
		for u := range updates {
			if size <= 0 {
				continue
			}
			pct := u.Complete * 100 / size
			if pct >= next && pct < 100 {
				progress(fmt.Sprintf("%d%% (%s of %s)", pct, mib(u.Complete), mib(size)))
				for next <= pct {
					next += 25
				}
			}
		}
	}()
	err = remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(e.auth()), remote.WithTransport(e.transport()),
		remote.WithProgress(updates), remote.WithJobs(2),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Steps: 2}))
	<-done // Write closes updates
	if err != nil {
		return "", e.explain("push the image to", err)
	}
	progress(fmt.Sprintf("Pushed %s", ref.String()))
	return ref.String(), nil
}

// explain turns a registry's refusal or a network failure into what the
// admin should do; a credential is never part of it.
func (e *External) explain(what string, err error) error {
	fix := fmt.Sprintf("check it with clusters:set CLUSTER registry %s --username USER < password", e.Registry)
	var te *transport.Error
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce *tls.CertificateVerificationError
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return skiff.Errorf(skiff.EUNAVAILABLE, "the registry %s refused skiff's credentials to %s it (HTTP %d%s): the user or password is wrong, or may not push there; %s",
			e.Host(), what, te.StatusCode, codes(te), fix)
	case errors.As(err, &te):
		return skiff.Errorf(skiff.EUNAVAILABLE, "the registry %s refused to %s it (HTTP %d%s)", e.Host(), what, te.StatusCode, codes(te))
	case errors.As(err, &ue), errors.As(err, &he), errors.As(err, &ce):
		return skiff.Errorf(skiff.EUNAVAILABLE, "skiff does not trust the certificate of the registry %s (%v): add its CA to this server's trust store, or use a registry with a certificate this server trusts",
			e.Host(), err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return skiff.Errorf(skiff.EUNAVAILABLE, "could not %s the registry %s in time: %v", what, e.Host(), err)
	case errors.As(err, &oe), errors.As(err, &ne):
		return skiff.Errorf(skiff.EUNAVAILABLE, "skiff cannot reach the registry %s (%v): check its address, and that this server reaches it", e.Host(), err)
	}
	return skiff.Errorf(skiff.EUNAVAILABLE, "could not %s the registry %s: %v", what, e.Host(), err)
}

// codes are the registry's error codes (UNAUTHORIZED, DENIED …), without
// their messages, which are the peer's words.
func codes(te *transport.Error) string {
	var out []string
	for _, d := range te.Errors {
		out = append(out, string(d.Code))
	}
	if len(out) == 0 {
		return ""
	}
	return ": " + strings.Join(out, ", ")
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

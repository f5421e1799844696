// Package fetch downloads what the buildpacks install (package metadata,
// Node.js and npm tarballs, Go toolchain zips) and unpacks archives safely:
// bounded sizes, retries of transient failures, integrity checks where the
// source publishes a digest, and extraction confined to its destination
// (no path, symlink or hard-link escapes; devices and the like dropped).
package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Client fetches over HTTP(S), honouring the proxy variables of its
// environment.
type Client struct {
	HTTP      *http.Client
	UserAgent string
	// Backoff is the wait before each retry; its length is the number of
	// retries.
	Backoff []time.Duration
}

// New returns a Client with timeouts suited to a build: connecting and
// waiting for headers are bounded, a long download is not (the build's
// context bounds it).
func New(userAgent string) *Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Client{HTTP: &http.Client{Transport: tr}, UserAgent: userAgent, Backoff: []time.Duration{time.Second, 3 * time.Second}}
}

// StatusError is a non-2xx answer.
type StatusError struct {
	URL    string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// IsNotFound reports whether err is a 404 or 410 answer.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusGone)
}

func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 500 || se.Status == http.StatusTooManyRequests
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errTooLarge) && !errors.Is(err, ErrIntegrity)
}

// do runs fn on the response body of GET url, retrying transient failures.
func (c *Client) do(ctx context.Context, url string, header http.Header, fn func(io.Reader) error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = c.once(ctx, url, header, fn)
		if err == nil || !transient(err) || attempt >= len(c.Backoff) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(c.Backoff[attempt]):
		}
	}
}

func (c *Client) once(ctx context.Context, url string, header http.Header, fn func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
		return &StatusError{URL: url, Status: resp.StatusCode}
	}
	return fn(resp.Body)
}

var errTooLarge = errors.New("response too large")

// limited fails instead of silently truncating at max bytes.
type limited struct {
	r   io.Reader
	n   int64
	url string
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("GET %s: %w", l.url, errTooLarge)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// JSON decodes the JSON document at url into v; accept is the Accept
// header ("" for application/json).
func (c *Client) JSON(ctx context.Context, url, accept string, max int64, v any) error {
	if accept == "" {
		accept = "application/json"
	}
	return c.do(ctx, url, http.Header{"Accept": {accept}}, func(r io.Reader) error {
		if err := json.NewDecoder(&limited{r: r, n: max, url: url}).Decode(v); err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		return nil
	})
}

// Text returns the body at url.
func (c *Client) Text(ctx context.Context, url string, max int64) (string, error) {
	var s string
	err := c.do(ctx, url, nil, func(r io.Reader) error {
		b, err := io.ReadAll(&limited{r: r, n: max, url: url})
		s = string(b)
		return err
	})
	return s, err
}

// ErrIntegrity is a download whose digest does not match the published one.
var ErrIntegrity = errors.New("integrity check failed")

// File downloads url into a new temporary file in dir and returns its path;
// the caller removes it. integrity, when not empty, is a Subresource
// Integrity string as npm publishes it ("sha512-<base64>", or "sha256-")
// that the content must match.
func (c *Client) File(ctx context.Context, url, dir string, max int64, integrity string) (string, error) {
	var want []byte
	var h hash.Hash
	if integrity != "" {
		algo, b64, _ := strings.Cut(integrity, "-")
		switch algo {
		case "sha512":
			h = sha512.New()
		case "sha256":
			h = sha256.New()
		default:
			return "", fmt.Errorf("GET %s: unsupported integrity %q", url, integrity)
		}
		d, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(d) != h.Size() {
			return "", fmt.Errorf("GET %s: bad integrity %q", url, integrity)
		}
		want = d
	}
	var path string
	err := c.do(ctx, url, nil, func(r io.Reader) error {
		f, err := os.CreateTemp(dir, ".download-*")
		if err != nil {
			return err
		}
		var w io.Writer = f
		if h != nil {
			h.Reset()
			w = io.MultiWriter(f, h)
		}
		_, err = io.Copy(w, &limited{r: r, n: max, url: url})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && h != nil && string(h.Sum(nil)) != string(want) {
			err = fmt.Errorf("GET %s: %w", url, ErrIntegrity)
		}
		if err != nil {
			os.Remove(f.Name())
			return err
		}
		path = f.Name()
		return nil
	})
	return path, err
}

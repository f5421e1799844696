package skifftest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
)

// Builder implements skiff.Builder in memory: it reads the pushed tree's
// Procfile (the one buildpack it has) and stores an image whose process
// types are the Procfile's, keyed by a digest of the tree, the build-time
// config and the builder. Like the real platform it refuses a second build
// of an app while one runs, stops when its context ends, and keeps each
// build's output for builds:output.
type Builder struct {
	images *Images

	mu      sync.Mutex
	next    []error // failures to return, in order, before building again
	gate    chan struct{}
	running map[string]context.CancelFunc
	logs    map[string][]byte // app id + "/" + build id → output
	builds  int
}

var _ skiff.Builder = (*Builder)(nil)

// NewBuilder returns a builder that stores its images in images.
func NewBuilder(images *Images) *Builder {
	return &Builder{images: images, running: map[string]context.CancelFunc{}, logs: map[string][]byte{}}
}

// FailNext makes the next build fail with err (after reading its source).
func (b *Builder) FailNext(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next = append(b.next, err)
}

// Hold makes builds wait, after reading their source, until the returned
// function is called (or their context ends): a build in progress, for
// tests that cancel or interrupt one.
func (b *Builder) Hold() (release func()) {
	gate := make(chan struct{})
	b.mu.Lock()
	b.gate = gate
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			if b.gate == gate {
				b.gate = nil
			}
			b.mu.Unlock()
			close(gate)
		})
	}
}

// Builds counts the builds that produced an image.
func (b *Builder) Builds() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.builds
}

// Build implements skiff.Builder.
func (b *Builder) Build(ctx context.Context, req *skiff.BuildRequest, out io.Writer) (*skiff.BuildResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.mu.Lock()
	if _, busy := b.running[req.App.ID]; busy {
		b.mu.Unlock()
		return nil, skiff.Errorf(skiff.ECONFLICT, "a build of %s is already running; wait for it or cancel it with builds:cancel %s", req.App.Name, req.App.Name)
	}
	b.running[req.App.ID] = cancel
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.running, req.App.ID)
		b.mu.Unlock()
	}()

	var log bytes.Buffer
	w := io.MultiWriter(out, &log)
	defer func() {
		b.mu.Lock()
		b.logs[req.App.ID+"/"+req.BuildID] = log.Bytes()
		b.mu.Unlock()
	}()
	builder := req.Builder
	if builder == "" {
		builder = "skifftest/builder"
	}
	fmt.Fprintf(w, "-----> Building %s (commit %s) with %s\n", req.App.Name, skiff.ShortID(req.Commit), builder)
	start := time.Now()
	src, procfile, err := readSource(req.Source)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	gate := b.gate
	var fail error
	if len(b.next) > 0 {
		fail, b.next = b.next[0], b.next[1:]
	}
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "build canceled (%v)", context.Cause(ctx))
	}
	if fail != nil {
		fmt.Fprintf(w, " !     %s\n", skiff.ErrorMessage(fail))
		return nil, fail
	}
	if procfile == nil {
		fmt.Fprintln(w, " !     No buildpack detected this app")
		return nil, skiff.Errorf(skiff.EINVALID, "no buildpack detected the app: add a Procfile (web: <command>)")
	}
	types, err := skiff.ParseProcfile(procfile)
	if err != nil {
		return nil, err
	}
	processTypes := map[string]string{}
	for _, t := range types {
		processTypes[t.Name] = t.Command
	}
	fmt.Fprintln(w, "       skifftest/procfile 0.0.0")
	h := sha256.New()
	h.Write(src)
	fmt.Fprintf(h, "\x00%s\x00%s", builder, strings.Join(req.Buildpacks, ","))
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		fmt.Fprintf(h, "\x00%s=%s", k, req.Env[k])
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	b.images.Add(&Image{Digest: digest, ProcessTypes: processTypes, Env: []string{"PATH=/cnb/bin"}})
	b.mu.Lock()
	b.builds++
	b.mu.Unlock()
	d := time.Since(start)
	fmt.Fprintf(w, "-----> Build finished in %.1fs\n", d.Seconds())
	return &skiff.BuildResult{Image: digest, ProcessTypes: processTypes, Buildpacks: []string{"skifftest/procfile@0.0.0"},
		Builder: builder, Phases: skiff.BuildPhases{Build: d}, Duration: d}, nil
}

// readSource reads the whole tar stream (so that git archive finishes)
// and returns it with the top-level Procfile, nil when there is none.
func readSource(r io.Reader) (src, procfile []byte, err error) {
	if r == nil {
		return nil, nil, errors.New("build: no source")
	}
	src, err = io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read source: %w", err)
	}
	tr := tar.NewReader(bytes.NewReader(src))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return src, procfile, nil
		}
		if err != nil {
			return nil, nil, skiff.Errorf(skiff.EINVALID, "the source is not a tar stream: %v", err)
		}
		if strings.TrimPrefix(hdr.Name, "./") == "Procfile" && hdr.Typeflag == tar.TypeReg {
			if procfile, err = io.ReadAll(io.LimitReader(tr, skiff.MaxProcfileSize+1)); err != nil {
				return nil, nil, err
			}
		}
	}
}

// Cancel implements skiff.Builder.
func (b *Builder) Cancel(appID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.running[appID]; ok {
		c()
		return true
	}
	return false
}

// PurgeCache implements skiff.Builder; the fake keeps no cache, but like
// the real one it refuses while the app builds.
func (b *Builder) PurgeCache(ctx context.Context, appID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, busy := b.running[appID]; busy {
		return skiff.Errorf(skiff.ECONFLICT, "the app is building; purge its cache when the build has finished (or cancel it)")
	}
	return nil
}

// BuildLog implements skiff.Builder.
func (b *Builder) BuildLog(appID, buildID string) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	log, ok := b.logs[appID+"/"+buildID]
	if !ok {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "no log for build %s", buildID)
	}
	return io.NopCloser(bytes.NewReader(log)), nil
}

// CollectGarbage implements skiff.Builder: images not in keep are gone,
// and the Scheduler can no longer start them.
func (b *Builder) CollectGarbage(ctx context.Context, keep []string) error {
	b.images.Retain(keep)
	return nil
}

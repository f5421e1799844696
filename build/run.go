package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/imagestore"
	"github.com/skiffhq/skiff/internal/layer"
)

// Capabilities the creator needs as root inside the build's user namespace:
// to chown the volumes to the build user and drop to it.
var creatorCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID"}

// Build builds req's source into an app image. See skiff.Builder.
func (p *Platform) Build(ctx context.Context, req *skiff.BuildRequest, out io.Writer) (*skiff.BuildResult, error) {
	if req.App == nil {
		return nil, fmt.Errorf("build: no app")
	}
	if err := validID(req.App.ID); err != nil {
		return nil, err
	}
	if err := validID(req.BuildID); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	if _, busy := p.running[req.App.ID]; busy {
		p.mu.Unlock()
		return nil, skiff.Errorf(skiff.ECONFLICT, "a build of %s is already running; wait for it or cancel it with builds:cancel %s", req.App.Name, req.App.Name)
	}
	p.running[req.App.ID] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.running, req.App.ID)
		p.mu.Unlock()
	}()
	// The app's previous build may still be keeping its cache.
	waitStart := time.Now()
	if err := p.waitSettled(ctx, req.App.ID); err != nil {
		return nil, err
	}
	waited := time.Since(waitStart)

	select {
	case p.sem <- struct{}{}:
	default:
		fmt.Fprintln(out, "-----> Waiting for other builds to finish")
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, canceled(ctx)
		}
	}
	defer func() { <-p.sem }()

	if err := p.checkDisk(); err != nil {
		return nil, err
	}
	builderRef := req.Builder
	if builderRef == "" {
		builderRef = DefaultBuilder
	}
	fmt.Fprintf(out, "-----> Building %s (commit %s) with %s\n", req.App.Name, skiff.ShortID(req.Commit), shortRef(builderRef))
	start := time.Now()

	log, err := openCappedLog(p.logPath(req.App.ID, req.BuildID), p.cfg.LogMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("build log: %w", err)
	}
	defer func() {
		if err := log.Close(); err != nil {
			p.log.Warn("build log", "app", req.App.Name, "err", err)
		}
	}()
	defer p.pruneLogs(req.App.ID)
	bo := newBuildOutput(out, log, p.cfg.LogMaxBytes)

	times := &stepTimes{last: time.Now()}
	if waited > time.Millisecond {
		times.steps = append(times.steps, fmt.Sprintf("settle %.3fs", waited.Seconds())) // the previous build's, before this one began
	}
	res, err := p.build(ctx, req, builderRef, bo, times)
	bo.finish()
	if err != nil {
		log.WriteLine("build failed: " + err.Error())
		return nil, err
	}
	res.Phases = bo.Phases()
	res.Duration = time.Since(start)
	ph := res.Phases
	log.WriteLine(fmt.Sprintf("platform: %s (the lifecycle's phases %.3fs)", times, (ph.Analyze + ph.Detect + ph.Restore + ph.Build + ph.Export).Seconds()))
	log.WriteLine(fmt.Sprintf("lifecycle: analyze %.3fs, detect %.3fs, restore %.3fs, build %.3fs, export %.3fs",
		ph.Analyze.Seconds(), ph.Detect.Seconds(), ph.Restore.Seconds(), ph.Build.Seconds(), ph.Export.Seconds()))
	fmt.Fprintf(out, "-----> Build finished in %.1fs (%s)\n", res.Duration.Seconds(), res.Phases)
	log.WriteLine(fmt.Sprintf("build finished in %.1fs (%s), image %s", res.Duration.Seconds(), res.Phases, res.Image))
	return res, nil
}

// job is one build's state between its steps.
type job struct {
	req        *skiff.BuildRequest
	builderRef string
	bi         *builderInfo
	work       string            // DATA/tmp/builds/<build-id>
	dirs       map[string]string // the build's directories under work
	cache      *layerCache       // DATA/cache/<app-id>, mounted at dirs["layers"]
	outRef     string            // the app image's name in the store
	args       []string          // the creator's command line
	pins       []string          // buildpacks pinned by the app or project.toml
	// What settle does: removeSandbox removes the build's container (nil
	// before it was made); keepCache, set once the image is imported,
	// makes the build's cached layers the app's cache.
	removeSandbox func()
	keepCache     bool
}

func (p *Platform) build(ctx context.Context, req *skiff.BuildRequest, builderRef string, bo *buildOutput, times *stepTimes) (*skiff.BuildResult, error) {
	bi, err := p.builder(ctx, builderRef)
	if err != nil {
		return nil, err
	}
	if err := p.checkRunImage(bi.RunImage, builderRef); err != nil {
		return nil, err
	}
	j := &job{req: req, builderRef: builderRef, bi: bi, dirs: map[string]string{},
		work:   filepath.Join(p.cfg.DataDir, "tmp", "builds", req.BuildID),
		outRef: imagestore.AppRef(req.App.ID, req.BuildID),
	}
	if err := os.RemoveAll(j.work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(j.work, 0o711); err != nil {
		return nil, err
	}
	// What is left once the image is in the store (or the build failed)
	// is not the push's to wait for: the release can start meanwhile.
	defer p.settle(j)
	for _, d := range []string{"workspace", "layers", "layers-upper", "layers-work", "platform", "layout", "tmp", "home", "bundle"} {
		j.dirs[d] = filepath.Join(j.work, d)
		if err := os.Mkdir(j.dirs[d], 0o755); err != nil {
			return nil, err
		}
	}
	if j.cache, err = openLayerCache(p.cacheDir(req.App.ID), p.cfg.UIDBase+bi.UID, p.cfg.UIDBase+bi.GID); err != nil {
		return nil, err
	}
	if err := j.cache.mount(j.dirs["layers-upper"], j.dirs["layers-work"], j.dirs["layers"]); err != nil {
		return nil, err
	}
	if err := p.prepareLayout(j); err != nil {
		return nil, err
	}
	mounts, err := p.prepareMounts(j)
	if err != nil {
		return nil, err
	}
	times.mark("prepare")

	diskCtx, diskCancel := context.WithCancelCause(ctx)
	defer diskCancel(nil)
	runCtx, cancelRun := context.WithTimeout(diskCtx, p.cfg.Limits.Timeout)
	defer cancelRun()
	// The source is unpacked (and project.toml applied, the build's
	// inputs written) while runc creates the container, which binds the
	// directories it fills: the creator starts once both are done.
	inputsDone := make(chan error, 1)
	go func() {
		err := p.prepareInputs(ctx, j)
		if err == nil {
			err = p.chownInputs(j)
		}
		inputsDone <- err
	}()
	inputs := sync.OnceValue(func() error { return <-inputsDone })
	defer func() { _ = inputs() }() // before settle removes what it fills
	code, removeSandbox, err := p.sandbox.run(runCtx, &sandboxSpec{
		ID: "build-" + req.BuildID, Bundle: j.dirs["bundle"], Rootfs: bi.Rootfs, Args: j.args, Cwd: "/workspace",
		Env: append(filterEnv(bi.Env),
			"CNB_PLATFORM_API=0.14", "CNB_EXPERIMENTAL_MODE=quiet", "CNB_NO_COLOR=true"),
		Mounts:   mounts,
		Caps:     creatorCaps,
		Limits:   p.cfg.Limits,
		Network:  p.cfg.Network != nil,
		NetGroup: buildGroup(req),
		Mark:     times.mark,
		BeforeStart: func() error {
			if err := inputs(); err != nil {
				return err
			}
			times.mark("inputs")
			usage := newDiskUsage(j.work, j.dirs["layers"]) // what is there before the build runs
			go p.watchDisk(runCtx, diskCancel, usage)
			return nil
		},
	}, bo)
	j.removeSandbox = removeSandbox
	// The lifecycle's last phase (export) ends here, not when the import
	// and the cache's merge are done.
	bo.finish()
	if ierr := inputs(); ierr != nil {
		return nil, ierr // the source or project.toml, not the lifecycle
	}
	if err != nil {
		if errors.Is(context.Cause(diskCtx), errDiskFloor) && ctx.Err() == nil {
			return nil, skiff.Errorf(skiff.EINVALID, "the build was stopped: it filled the disk (free space fell below %s); its files were removed", skiff.FormatSize(p.cfg.DiskFloorBytes))
		}
		if errors.Is(context.Cause(diskCtx), errDiskBudget) && ctx.Err() == nil {
			return nil, skiff.Errorf(skiff.EINVALID, "the build wrote more than %s, the most one build may write (an admin sets it with skiff serve --build-disk); its files were removed", skiff.FormatSize(p.cfg.Limits.Disk))
		}
		if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, skiff.Errorf(skiff.EINVALID, "build timed out after %s; its processes were stopped", p.cfg.Limits.Timeout)
		}
		if ctx.Err() != nil {
			return nil, canceled(ctx)
		}
		return nil, fmt.Errorf("run lifecycle: %w", err)
	}
	if code != 0 {
		return nil, lifecycleError(code, bo.lastError(), bo.lastOutput(), j.pins...)
	}

	outPath, _ := layoutPath(j.outRef)
	h, err := p.store.ImportLayout(ctx, j.outRef, filepath.Join(j.dirs["layout"], outPath))
	if err != nil {
		return nil, fmt.Errorf("import image: %w", err)
	}
	res := &skiff.BuildResult{Image: h.String(), Builder: builderRef}
	if err := p.readResult(res); err != nil {
		return nil, err
	}
	times.mark("import")
	j.keepCache = true
	return res, nil
}

// stepTimes times the platform's steps of a build, for its log.
type stepTimes struct {
	last  time.Time
	steps []string
}

func (s *stepTimes) mark(name string) {
	now := time.Now()
	s.steps = append(s.steps, fmt.Sprintf("%s %.3fs", name, now.Sub(s.last).Seconds()))
	s.last = now
}

func (s *stepTimes) String() string { return strings.Join(s.steps, ", ") }

// keepCache makes the layers the build marked cache=true the app's build
// cache. The image is built whatever happens here: on an error the cache
// is dropped (the next build starts cold) and the reason logged.
func (p *Platform) keepCache(j *job) {
	keep, err := cachedLayers(j.dirs["layers"])
	if err == nil {
		err = unmountUnder(j.dirs["layers"])
	}
	if err == nil {
		err = j.cache.commit(j.dirs["layers-upper"], keep)
	}
	if err != nil {
		p.log.Warn("build cache not kept; the next build starts without it", "app", j.req.App.ID, "build", j.req.BuildID, "err", err)
		if err := j.cache.reset(); err != nil {
			p.log.Error("drop build cache", "app", j.req.App.ID, "err", err)
		}
	}
}

// checkRunImage checks the builder's run image before anything runs: a
// missing one only fails at export, cryptically, and one without a non-root
// user (which the CNB platform spec requires) would run apps as root.
func (p *Platform) checkRunImage(ref, builderRef string) error {
	img, err := p.store.Image(ref)
	if err != nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "run image %s of builder %s is not in the image store; create or pull the builder again", ref, shortRef(builderRef))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("run image %s: %w", ref, err)
	}
	if u, _, _ := strings.Cut(cf.Config.User, ":"); u == "" || u == "0" || u == "root" {
		return skiff.Errorf(skiff.EINVALID, "run image %s of builder %s sets no non-root user; CNB run images must", ref, shortRef(builderRef))
	}
	return nil
}

// prepareInputs unpacks the source into the workspace, applies project.toml,
// and writes the platform's inputs: the pinned order and the build env.
func (p *Platform) prepareInputs(ctx context.Context, j *job) error {
	// No escapes, no devices (internal/layer); chowned to the build user
	// in prepareMounts.
	if j.req.Source != nil {
		if _, err := layer.Extract(ctx, j.req.Source, j.dirs["workspace"], layer.Options{Whiteouts: layer.NoWhiteouts, MaxBytes: maxSourceBytes}); err != nil {
			return skiff.Errorf(skiff.EINVALID, "unpack source: %v", err)
		}
	}
	proj, err := readProject(j.dirs["workspace"])
	if err != nil {
		return err
	}
	if err := applyProjectFilters(j.dirs["workspace"], proj); err != nil {
		return err
	}

	// Buildpacks pinned by the app (or project.toml) replace the order;
	// the lifecycle reads <layers>/order.toml before /cnb/order.toml.
	pins := j.req.Buildpacks
	if len(pins) == 0 {
		pins = proj.buildpacks()
	}
	j.pins = pins
	if len(pins) > 0 {
		order, err := pinnedOrder(j.bi.Rootfs, pins, shortRef(j.builderRef))
		if err != nil {
			return err
		}
		b, err := encodeTOML(order)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(j.dirs["layers"], "order.toml"), b, 0o644); err != nil {
			return err
		}
	}

	// Build-time config vars, over project.toml's build env.
	envDir := filepath.Join(j.dirs["platform"], "env")
	if err := os.Mkdir(envDir, 0o755); err != nil {
		return err
	}
	env := proj.env()
	for k, v := range j.req.Env {
		env[k] = v
	}
	for _, k := range sortedKeys(env) {
		if !envNameRE.MatchString(k) {
			return skiff.Errorf(skiff.EINVALID, "build-time variable name %q is not valid", k)
		}
		if err := os.WriteFile(filepath.Join(envDir, k), []byte(env[k]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// prepareLayout fills the layout directory: the run image and the previous
// image lent from the store, and the output seeded with their blobs, which
// the lifecycle then skips instead of copying. It sets the creator's
// command line.
func (p *Platform) prepareLayout(j *job) error {
	bi, layoutDir := j.bi, j.dirs["layout"]
	runPath, err := layoutPath(bi.RunImage)
	if err != nil {
		return err
	}
	// The lent images are sparse: their layers are in the output layout
	// (seed, below), where the export finds them and copies nothing.
	if _, err := p.store.LendSparse(bi.RunImage, filepath.Join(layoutDir, runPath)); err != nil {
		return err
	}
	seed, err := p.store.ImageBlobs(bi.RunImage)
	if err != nil {
		return err
	}
	j.args = []string{"/cnb/lifecycle/creator",
		"-app=/workspace", "-layers=/layers", "-platform=/platform",
		"-layout", "-layout-dir=/layout-repo", "-run-image=" + bi.RunImage,
		"-uid=" + strconv.Itoa(bi.UID), "-gid=" + strconv.Itoa(bi.GID), "-log-level=info",
		// No -cache-dir: the cache is skiff's own, mounted at /layers
		// (layercache.go).
	}
	if prev := j.req.PreviousImage; prev != "" {
		prevRef := imagestore.AppRepo + "/" + j.req.App.ID + ":previous"
		prevPath, _ := layoutPath(prevRef)
		var sbom []v1.Hash
		if img, err := p.store.Image(prev); err == nil {
			if h, ok := sbomLayer(img); ok {
				sbom = append(sbom, h)
			}
		}
		if _, err := p.store.LendSparse(prev, filepath.Join(layoutDir, prevPath), sbom...); err != nil {
			p.log.Warn("previous image unavailable; building without layer reuse", "app", j.req.App.ID, "image", prev, "err", err)
		} else {
			j.args = append(j.args, "-previous-image="+prevRef)
			if blobs, err := p.store.ImageBlobs(prev); err == nil {
				seed = append(seed, blobs...)
			}
		}
	}
	outPath, err := layoutPath(j.outRef)
	if err != nil {
		return err
	}
	if err := p.store.LinkBlobs(filepath.Join(layoutDir, outPath), seed...); err != nil {
		return err
	}
	j.args = append(j.args, j.outRef)
	return nil
}

// prepareMounts makes what the sandbox mounts besides the build's
// directories and returns the mounts; chownInputs hands the directories to
// the build user.
func (p *Platform) prepareMounts(j *job) ([]container.Mount, error) {
	if home := userHome(j.bi.Rootfs, j.bi.UID); strings.HasPrefix(home, "/home/") && !strings.Contains(home[6:], "/") {
		if err := os.Mkdir(filepath.Join(j.dirs["home"], home[6:]), 0o755); err != nil {
			return nil, err
		}
	}
	resolv := filepath.Join(j.work, "resolv.conf")
	if err := os.WriteFile(resolv, p.resolvConf(), 0o644); err != nil {
		return nil, err
	}
	// /tmp belongs to the namespace's root, open to all as usual.
	if err := os.Chown(j.dirs["tmp"], p.cfg.UIDBase, p.cfg.UIDBase); err != nil {
		return nil, err
	}
	if err := os.Chmod(j.dirs["tmp"], 0o1777); err != nil {
		return nil, err
	}
	// /tmp and home are on disk, not in memory: toolchains unpack there.
	return []container.Mount{
		{Source: j.dirs["workspace"], Destination: "/workspace"},
		{Source: j.dirs["layers"], Destination: "/layers"},
		{Source: j.dirs["platform"], Destination: "/platform", ReadOnly: true},
		{Source: j.dirs["layout"], Destination: "/layout-repo"},
		{Source: j.dirs["tmp"], Destination: "/tmp"},
		{Source: j.dirs["home"], Destination: "/home"},
		{Source: resolv, Destination: "/etc/resolv.conf", ReadOnly: true},
	}, nil
}

// chownInputs hands the workspace (the unpacked source), the layout and
// the home directory to the build user. Not /layers: its root is the build
// user's already (layerCache.mount), and chowning through the overlay
// would copy every cached file up.
func (p *Platform) chownInputs(j *job) error {
	hostUID, hostGID := p.cfg.UIDBase+j.bi.UID, p.cfg.UIDBase+j.bi.GID
	for _, d := range []string{j.dirs["workspace"], j.dirs["layout"], j.dirs["home"]} {
		if err := chownTree(d, hostUID, hostGID); err != nil {
			return err
		}
	}
	return nil
}

// maxSourceBytes caps the unpacked source tree.
const maxSourceBytes = 4 << 30

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// filterEnv keeps the builder image's environment minus what the platform sets.
func filterEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == "CNB_PLATFORM_API" || k == "HOME" {
			continue
		}
		out = append(out, e)
	}
	return out
}

func shortRef(ref string) string {
	if r, ok := strings.CutPrefix(ref, "skiff.local/"); ok {
		return "skiff/" + strings.TrimSuffix(r, ":latest")
	}
	return ref
}

// buildGroup is the network group of the app's builds ("" for none).
func buildGroup(req *skiff.BuildRequest) string {
	if req.App == nil || !container.ValidGroup(skiff.BuildNetGroup(req.App.ID)) {
		return ""
	}
	return skiff.BuildNetGroup(req.App.ID)
}

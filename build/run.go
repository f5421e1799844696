package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

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
	defer log.Close()
	defer p.pruneLogs(req.App.ID)
	bo := newBuildOutput(out, log)

	res, err := p.build(ctx, req, builderRef, bo)
	bo.finish()
	if err != nil {
		log.WriteLine("build failed: " + err.Error())
		return nil, err
	}
	res.Phases = bo.Phases()
	res.Duration = time.Since(start)
	fmt.Fprintf(out, "-----> Build finished in %.1fs (%s)\n", res.Duration.Seconds(), res.Phases)
	log.WriteLine(fmt.Sprintf("build finished in %.1fs (%s), image %s", res.Duration.Seconds(), res.Phases, res.Image))
	return res, nil
}

func (p *Platform) build(ctx context.Context, req *skiff.BuildRequest, builderRef string, bo *buildOutput) (*skiff.BuildResult, error) {
	bi, err := p.builder(ctx, builderRef)
	if err != nil {
		return nil, err
	}
	// A missing run image only fails at export, cryptically: check first.
	if _, err := p.store.Resolve(bi.RunImage); err != nil {
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "run image %s of builder %s is not in the image store; create or pull the builder again", bi.RunImage, shortRef(builderRef))
	}
	hostUID, hostGID := p.cfg.UIDBase+bi.UID, p.cfg.UIDBase+bi.GID

	work := filepath.Join(p.cfg.DataDir, "tmp", "builds", req.BuildID)
	if err := os.RemoveAll(work); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o711); err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	dirs := map[string]string{}
	for _, d := range []string{"workspace", "layers", "platform", "layout"} {
		dirs[d] = filepath.Join(work, d)
		if err := os.Mkdir(dirs[d], 0o755); err != nil {
			return nil, err
		}
	}
	cache := p.cacheDir(req.App.ID)
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return nil, err
	}

	// The source: no escapes, no devices (internal/layer); chowned to the
	// build user below.
	if req.Source != nil {
		if _, err := layer.Extract(ctx, req.Source, dirs["workspace"], layer.Options{Whiteouts: layer.ApplyWhiteouts, MaxBytes: maxSourceBytes}); err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "unpack source: %v", err)
		}
	}
	proj, err := readProject(dirs["workspace"])
	if err != nil {
		return nil, err
	}
	if err := applyProjectFilters(dirs["workspace"], proj); err != nil {
		return nil, err
	}

	// Buildpacks pinned by the app (or project.toml) replace the order.
	pins := req.Buildpacks
	if len(pins) == 0 {
		pins = proj.buildpacks()
	}
	if len(pins) > 0 {
		order, err := pinnedOrder(bi.Rootfs, pins, shortRef(builderRef))
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(order); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dirs["layers"], "order.toml"), b.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}

	// Build-time config vars, over project.toml's build env.
	envDir := filepath.Join(dirs["platform"], "env")
	if err := os.Mkdir(envDir, 0o755); err != nil {
		return nil, err
	}
	env := proj.env()
	for k, v := range req.Env {
		env[k] = v
	}
	for _, k := range sortedKeys(env) {
		if !envNameRE.MatchString(k) {
			return nil, skiff.Errorf(skiff.EINVALID, "build-time variable name %q is not valid", k)
		}
		if err := os.WriteFile(filepath.Join(envDir, k), []byte(env[k]), 0o644); err != nil {
			return nil, err
		}
	}

	// The layout directory: the run image and the previous image lent from
	// the store, and the output seeded with their blobs, which the
	// lifecycle then skips instead of copying.
	runPath, err := layoutPath(bi.RunImage)
	if err != nil {
		return nil, err
	}
	if _, err := p.store.Lend(bi.RunImage, filepath.Join(dirs["layout"], runPath)); err != nil {
		return nil, err
	}
	outRef := imagestore.AppRef(req.App.ID, req.BuildID)
	outPath, _ := layoutPath(outRef)
	seed, err := p.store.ImageBlobs(bi.RunImage)
	if err != nil {
		return nil, err
	}
	args := []string{"/cnb/lifecycle/creator",
		"-app=/workspace", "-layers=/layers", "-platform=/platform", "-cache-dir=/cache",
		"-layout", "-layout-dir=/layout-repo", "-run-image=" + bi.RunImage,
		"-uid=" + strconv.Itoa(bi.UID), "-gid=" + strconv.Itoa(bi.GID), "-log-level=info",
	}
	if req.PreviousImage != "" {
		prevRef := imagestore.AppRepo + "/" + req.App.ID + ":previous"
		prevPath, _ := layoutPath(prevRef)
		if _, err := p.store.Lend(req.PreviousImage, filepath.Join(dirs["layout"], prevPath)); err != nil {
			p.log.Warn("previous image unavailable; building without layer reuse", "app", req.App.ID, "image", req.PreviousImage, "err", err)
		} else {
			args = append(args, "-previous-image="+prevRef)
			if prev, err := p.store.ImageBlobs(req.PreviousImage); err == nil {
				seed = append(seed, prev...)
			}
		}
	}
	if err := p.store.LinkBlobs(filepath.Join(dirs["layout"], outPath), seed...); err != nil {
		return nil, err
	}
	args = append(args, outRef)

	// Writable /tmp and home on disk, not in memory: toolchains unpack there.
	for _, d := range []string{"tmp", "home", "bundle"} {
		dirs[d] = filepath.Join(work, d)
		if err := os.Mkdir(dirs[d], 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(dirs["tmp"], 0o1777); err != nil {
		return nil, err
	}
	mounts := []container.Mount{
		{Source: dirs["workspace"], Destination: "/workspace"},
		{Source: dirs["layers"], Destination: "/layers"},
		{Source: dirs["platform"], Destination: "/platform", ReadOnly: true},
		{Source: dirs["layout"], Destination: "/layout-repo"},
		{Source: cache, Destination: "/cache"},
		{Source: dirs["tmp"], Destination: "/tmp"},
		{Source: dirs["home"], Destination: "/home"},
	}
	if home := userHome(bi.Rootfs, bi.UID); strings.HasPrefix(home, "/home/") && !strings.Contains(home[6:], "/") {
		if err := os.Mkdir(filepath.Join(dirs["home"], home[6:]), 0o755); err != nil {
			return nil, err
		}
	}
	resolv := filepath.Join(work, "resolv.conf")
	if err := os.WriteFile(resolv, p.resolvConf(), 0o644); err != nil {
		return nil, err
	}
	mounts = append(mounts, container.Mount{Source: resolv, Destination: "/etc/resolv.conf", ReadOnly: true})

	for _, d := range []string{dirs["workspace"], dirs["layers"], dirs["layout"], dirs["home"], cache} {
		if err := chownTree(d, hostUID, hostGID); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(dirs["tmp"], p.cfg.UIDBase, p.cfg.UIDBase); err != nil {
		return nil, err
	}

	runCtx, cancelRun := context.WithTimeout(ctx, p.cfg.Limits.Timeout)
	defer cancelRun()
	code, err := p.sandbox.run(runCtx, &sandboxSpec{
		ID: "build-" + req.BuildID, Bundle: dirs["bundle"], Rootfs: bi.Rootfs, Args: args, Cwd: "/workspace",
		Env: append(filterEnv(bi.Env),
			"CNB_PLATFORM_API=0.14", "CNB_EXPERIMENTAL_MODE=quiet", "CNB_NO_COLOR=true"),
		Mounts:  mounts,
		Caps:    creatorCaps,
		Limits:  p.cfg.Limits,
		Network: p.cfg.Network != nil,
	}, bo)
	if err != nil {
		if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, skiff.Errorf(skiff.EINVALID, "build timed out after %s; its processes were stopped", p.cfg.Limits.Timeout)
		}
		if ctx.Err() != nil {
			return nil, canceled(ctx)
		}
		return nil, fmt.Errorf("run lifecycle: %w", err)
	}
	if code != 0 {
		return nil, lifecycleError(code, bo.lastError(), bo.lastOutput())
	}

	h, err := p.store.ImportLayout(ctx, outRef, filepath.Join(dirs["layout"], outPath))
	if err != nil {
		return nil, fmt.Errorf("import image: %w", err)
	}
	res := &skiff.BuildResult{Image: h.String(), Builder: builderRef}
	if err := p.readResult(res); err != nil {
		return nil, err
	}
	return res, nil
}

// maxSourceBytes caps the unpacked source tree.
const maxSourceBytes = 4 << 30

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// lifecycleError turns the creator's exit code (platform spec codes) into a
// message for the pusher.
func lifecycleError(code int, lastErr, lastOut string) error {
	var msg string
	switch {
	case code == 20 || code == 21:
		msg = "no buildpack detected this app; add a file the builder's buildpacks recognise (package.json, go.mod, requirements.txt, index.html, a Procfile) or pin one with buildpacks:set"
	case code == 22:
		msg = "detection failed"
	case code == 51:
		msg = "a buildpack failed"
		if lastOut != "" {
			msg += ": " + lastOut
		}
	case code >= 50 && code < 60:
		msg = "the build failed"
	case code >= 30 && code < 50:
		msg = "restoring the cache failed; builds:purge-cache may help"
	case code >= 60 && code < 70:
		msg = "exporting the image failed"
	case code == 137 || code == 128+9:
		msg = "the build was killed (out of memory?)"
	default:
		msg = fmt.Sprintf("the lifecycle exited with status %d", code)
	}
	if lastErr != "" && code != 51 {
		msg += ": " + lastErr
	}
	return skiff.Errorf(skiff.EINVALID, "%s", msg)
}

func canceled(ctx context.Context) error {
	return skiff.Errorf(skiff.EUNAVAILABLE, "build canceled (%v)", context.Cause(ctx))
}

// checkDisk refuses to start a build when the data directory is low on space.
func (p *Platform) checkDisk() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.cfg.DataDir, &st); err != nil {
		return fmt.Errorf("check free space: %w", err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < p.cfg.MinFreeBytes {
		return skiff.Errorf(skiff.EUNAVAILABLE, "not enough free disk space to build (%d MiB free, %d MiB needed); free some space or run the garbage collector", free>>20, p.cfg.MinFreeBytes>>20)
	}
	return nil
}

func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm()&0o222 == 0 {
			return nil // a blob lent from the store: stays root's, read-only
		}
		return os.Lchown(p, uid, gid)
	})
}

// keepLogs is how many build logs each app keeps.
const keepLogs = 50

// pruneLogs removes an app's oldest build logs beyond keepLogs.
func (p *Platform) pruneLogs(appID string) {
	dir := filepath.Dir(p.logPath(appID, "x"))
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) <= keepLogs {
		return
	}
	type logFile struct {
		name string
		mod  time.Time
	}
	var logs []logFile
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".log") {
			logs = append(logs, logFile{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(logs, func(a, b logFile) int { return a.mod.Compare(b.mod) })
	for _, l := range logs[:max(0, len(logs)-keepLogs)] {
		os.Remove(filepath.Join(dir, l.name))
	}
}

// userHome reads uid's home directory from the root file system's
// /etc/passwd ("" when it has none).
func userHome(rootfs string, uid int) string {
	b, err := os.ReadFile(filepath.Join(rootfs, "etc", "passwd"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 6 && f[2] == strconv.Itoa(uid) {
			return path.Clean(f[5])
		}
	}
	return ""
}

// resolvConf is what builds get as /etc/resolv.conf: the configured file,
// or the host's resolvers without loopback ones (a build cannot reach the
// host), read from systemd-resolved's upstream list when it runs.
func (p *Platform) resolvConf() []byte {
	files := []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"}
	if p.cfg.ResolvConf != "" {
		files = []string{p.cfg.ResolvConf}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == "nameserver" {
				if ip, err := netip.ParseAddr(fields[1]); err != nil || ip.IsLoopback() {
					continue
				}
			}
			out = append(out, line)
		}
		return []byte(strings.Join(out, "\n"))
	}
	return nil
}

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

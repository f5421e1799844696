package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
	"golang.org/x/sys/unix"
)

// instance is one supervised instance; its supervisor goroutine owns the
// container, the other fields are guarded by mu.
type instance struct {
	id      string
	dir     string
	rec     record
	fifo    *os.File // the daemon's end of stdio.fifo
	stopReq chan time.Duration
	done    chan struct{} // closed when the supervisor has returned

	mu      sync.Mutex
	info    skiff.Instance
	c       *container.Container
	changed chan struct{} // closed and replaced at each state change
}

func (r *Runtime) newInstance(rec record) *instance {
	state := skiff.InstanceStarting
	if rec.Exited {
		state = skiff.InstanceExited
	}
	return &instance{
		id: rec.ID, dir: filepath.Join(r.instancesDir(), rec.ID), rec: rec,
		stopReq: make(chan time.Duration), done: make(chan struct{}), changed: make(chan struct{}),
		info: skiff.Instance{ID: rec.ID, Spec: rec.Spec, State: state, CreatedAt: rec.CreatedAt,
			Restarts: rec.Restarts, LastExit: rec.LastExit, LastExitAt: rec.LastExitAt, ExitCode: rec.ExitCode},
	}
}

// save records the instance's restarts and last exit in instance.json.
// Only its supervisor (or adoption, before there is one) calls it.
func (in *instance) save() error {
	in.mu.Lock()
	rec := in.rec
	rec.Restarts, rec.LastExit, rec.LastExitAt = in.info.Restarts, in.info.LastExit, in.info.LastExitAt
	rec.Exited, rec.ExitCode = in.info.State == skiff.InstanceExited, in.info.ExitCode
	in.mu.Unlock()
	return writeRecord(in.dir, rec)
}

// openFIFO opens (making it if needed) the FIFO that carries the
// instance's output. Both ends are opened read-write: the container never
// gets EPIPE when the daemon is gone (its writes wait in the pipe, then
// block), and the daemon never sees EOF between two runs.
func (in *instance) openFIFO() error {
	p := filepath.Join(in.dir, "stdio.fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil && err != unix.EEXIST {
		return fmt.Errorf("mkfifo: %w", err)
	}
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open fifo: %w", err)
	}
	// A larger pipe lets a chatty app run on while the daemon restarts.
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20) // above the limit: the default size still works
	in.fifo = os.NewFile(uintptr(fd), p)                        // non-blocking: read through the poller
	return nil
}

func (in *instance) closeFIFO() {
	if in.fifo != nil {
		in.fifo.Close()
	}
}

func (in *instance) containerStdio() (*os.File, error) {
	return os.OpenFile(filepath.Join(in.dir, "stdio.fifo"), os.O_RDWR, 0)
}

func (in *instance) update(f func(*skiff.Instance)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	f(&in.info)
	close(in.changed)
	in.changed = make(chan struct{})
}

func (in *instance) snapshot() *skiff.Instance {
	in.mu.Lock()
	info := in.info
	c := in.c
	in.mu.Unlock()
	if c != nil {
		if st, err := c.Stats(); err == nil {
			info.CPU, info.MemoryBytes, info.MemoryLimit = st.CPU, st.MemoryBytes, st.MemoryLimit
		}
	}
	return &info
}

// env is the instance's environment: the image's, then the release's
// config vars, then what the platform sets (which config cannot override).
// Each name appears once, since C's getenv and Go's os.Getenv take the
// first of duplicates.
func env(img *image, spec *skiff.InstanceSpec) []string {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range img.env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, spec.Env[k])
	}
	set("PORT", strconv.Itoa(skiff.DefaultPort))
	set("SKIFF_PROCESS", spec.Name())
	set("DYNO", spec.Name()) // what Heroku apps look for
	set("SKIFF_RELEASE", "v"+strconv.Itoa(spec.Release))
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = k + "=" + vals[k]
	}
	return out
}

func (r *Runtime) containerSpec(ctx context.Context, id, dir string, spec *skiff.InstanceSpec, command []string) (*container.Spec, error) {
	img, err := r.loadImage(ctx, spec.Image)
	if err != nil {
		return nil, err
	}
	args, err := img.args(spec.ProcessType, command)
	if err != nil {
		return nil, err
	}
	lim := spec.Limits
	if lim == (skiff.Limits{}) {
		lim = skiff.DefaultLimits
	}
	hostname := strings.ReplaceAll(spec.Name(), ".", "-")
	resolv, hosts, err := writeNetFiles(r.netDir(id), hostname, r.nameservers)
	if err != nil {
		return nil, err
	}
	mounts := []container.Mount{
		{Source: resolv, Destination: "/etc/resolv.conf", ReadOnly: true},
		{Source: hosts, Destination: "/etc/hosts", ReadOnly: true},
	}
	for _, m := range spec.Mounts {
		if r.cfg.VolumePath == nil {
			return nil, skiff.Errorf(skiff.EINVALID, "this server has no storage to mount at %s", m.Path)
		}
		src, err := r.cfg.VolumePath(m.Volume)
		if err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "cannot mount %s: %v", m.Path, err)
		}
		if _, err := os.Lstat(src); err != nil {
			return nil, skiff.Errorf(skiff.EINVALID, "the storage mounted at %s is missing on this server; storage:unmount it, or an admin restores %s", m.Path, src)
		}
		mounts = append(mounts, container.Mount{Source: src, Destination: m.Path, ReadOnly: m.ReadOnly, Owned: true})
	}
	var links map[string]string
	if img.cnb && img.workdir != "" && img.workdir != "/app" {
		// Heroku's apps live in /app; a CNB image's in /workspace.
		links = map[string]string{"/app": img.workdir}
	}
	var addr netip.Addr
	group := skiff.AppNetGroup(spec.AppID) // app ids are hex: always a valid group
	if !container.ValidGroup(group) {
		group = ""
	}
	if spec.Address != "" {
		if addr, err = netip.ParseAddr(spec.Address); err != nil {
			return nil, fmt.Errorf("instance address: %w", err)
		}
		group = ""
	}
	exitDir := ""
	if spec.OneOff {
		exitDir = r.exitDir(id)
	}
	return &container.Spec{
		ID: id, Bundle: dir,
		Mounts: mounts, Address: addr, NetGroup: group,
		Links:   links,
		ExitDir: exitDir,
		Rootfs:  container.Rootfs{Layers: img.layers, UpperSize: r.cfg.UpperSize},
		Init:    r.initPath,
		Args:    args, Env: env(img, spec), Cwd: img.workdir,
		UID: img.uid, GID: img.gid, User: img.user,
		Hostname: hostname,
		UserNS:   true, Network: true,
		Limits: container.Limits{MemoryBytes: lim.MemoryBytes, CPU: lim.CPU, Pids: lim.Pids},
	}, nil
}

// startContainer creates and starts the instance's container, its output
// going to the FIFO.
func (r *Runtime) startContainer(ctx context.Context, in *instance) (*container.Container, error) {
	spec, err := r.containerSpec(ctx, in.id, in.dir, &in.rec.Spec, in.rec.Spec.Command)
	if err != nil {
		return nil, err
	}
	out, err := in.containerStdio()
	if err != nil {
		return nil, err
	}
	defer out.Close() // the container holds its own copy
	c, err := r.runc.Create(ctx, spec, container.Stdio{Stdout: out, Stderr: out})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", in.rec.Spec.Name(), userError(err))
	}
	if err := c.Start(ctx); err != nil {
		if derr := c.Delete(context.WithoutCancel(ctx)); derr != nil {
			r.log.Warn("delete a container that did not start", "id", in.id, "err", derr)
		}
		return nil, fmt.Errorf("start %s: %w", in.rec.Spec.Name(), err)
	}
	return c, nil
}

// userError makes an image user the image does not have the user's to
// fix.
func userError(err error) error {
	if errors.Is(err, container.ErrUnknownUser) || errors.Is(err, container.ErrUnknownGroup) {
		return skiff.Errorf(skiff.EINVALID, "%v: set the image's user to one it has, or to numeric ids (uid:gid)", err)
	}
	return err
}

func (r *Runtime) platform(in *instance, format string, args ...any) {
	r.AppLog(in.rec.Spec.AppID, in.rec.Spec.Name(), fmt.Sprintf(format, args...))
}

// supervise runs the instance until Stop (which removes it) or Close
// (which leaves its container running): it restarts the container each
// time it exits, after a backoff.
func (r *Runtime) supervise(in *instance, c *container.Container) {
	defer close(in.done)
	backoff := r.cfg.MinBackoff
	bg := context.Background()
	if in.rec.Exited { // a one-off that ended before this daemon started
		r.awaitRemoval(in)
		return
	}
	for {
		if c == nil {
			if cmd := in.rec.Spec.Command; len(cmd) > 0 {
				r.platform(in, "Starting process with command `%s`", strings.Join(cmd, " "))
			} else {
				r.platform(in, "Starting process")
			}
			var err error
			if c, err = r.startContainer(bg, in); err != nil {
				r.log.Warn("instance start failed", "id", in.id, "err", err)
				in.update(func(i *skiff.Instance) {
					i.State, i.LastExit, i.LastExitAt = skiff.InstanceCrashed, "failed to start: "+err.Error(), time.Now()
				})
				r.platform(in, "Process failed to start: %s", skiff.ErrorMessage(err))
				if !r.pause(in, &backoff) {
					return
				}
				continue
			}
		}
		addr := ""
		if c.Addr.IsValid() {
			addr = netip.AddrPortFrom(c.Addr, skiff.DefaultPort).String()
		}
		// A re-adopted container has run since it was created, not since
		// this daemon found it.
		started := c.Created
		if started.IsZero() {
			started = time.Now()
		}
		in.mu.Lock()
		in.c = c
		in.mu.Unlock()
		in.update(func(i *skiff.Instance) {
			if i.State != skiff.InstanceUp {
				r.platform(in, "State changed from %s to up", i.State)
			}
			i.State, i.Addr, i.StartedAt = skiff.InstanceUp, addr, started
		})
		select {
		case <-c.Exited():
			st, _ := c.Wait(bg)
			stats, _ := c.Stats()
			if err := c.Delete(bg); err != nil { // the file system goes with it: ephemeral, like a dyno
				r.log.Warn("delete", "id", in.id, "err", err)
			}
			in.mu.Lock()
			in.c = nil
			in.mu.Unlock()
			c = nil
			if r.ended(in, st, stats) {
				r.awaitRemoval(in)
				return
			}
			if time.Since(started) >= r.cfg.ResetAfter {
				backoff = r.cfg.MinBackoff
			}
			if !r.pause(in, &backoff) {
				return
			}
		case grace := <-in.stopReq:
			r.stop(in, c, grace)
			return
		case <-r.closing:
			// The container keeps running for the next daemon, which
			// reopens the FIFO and reads what waited in the pipe.
			in.closeFIFO()
			return
		}
	}
}

// ended records that the instance's process ended on its own: in the log,
// in ps, and in instance.json. A long-running instance has crashed (and
// restarts); a one-off has exited for good, and ended reports true.
func (r *Runtime) ended(in *instance, st container.ExitStatus, stats container.Stats) (final bool) {
	how := st.String()
	if stats.OOMKills > 0 {
		how = "killed: out of memory (" + how + ")"
	}
	r.platform(in, "Process %s", how)
	oneOff := in.rec.Spec.OneOff
	if oneOff {
		r.platform(in, "State changed from up to exited")
	} else {
		r.platform(in, "State changed from up to crashed")
	}
	in.update(func(i *skiff.Instance) {
		i.LastExit, i.LastExitAt, i.Addr = how, time.Now(), ""
		if oneOff {
			i.State, i.ExitCode = skiff.InstanceExited, st.Code
		} else {
			i.State = skiff.InstanceCrashed
			i.Restarts++
		}
	})
	if oneOff {
		in.mu.Lock()
		in.rec.Exited, in.rec.ExitCode = true, st.Code
		in.mu.Unlock()
	}
	if err := in.save(); err != nil {
		r.log.Warn("save instance record", "id", in.id, "err", err)
	}
	return oneOff
}

// awaitRemoval keeps an exited one-off listed until Stop removes it or
// the runtime closes.
func (r *Runtime) awaitRemoval(in *instance) {
	select {
	case grace := <-in.stopReq:
		r.stop(in, nil, grace)
	case <-r.closing:
		in.closeFIFO()
	}
}

// pause waits out the backoff (doubling it for next time). It returns
// false when the supervisor must end: the instance was stopped (and is
// removed) or the runtime is closing.
func (r *Runtime) pause(in *instance, backoff *time.Duration) bool {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	*backoff = min(*backoff*2, r.cfg.MaxBackoff)
	select {
	case <-t.C:
		return true
	case grace := <-in.stopReq:
		r.stop(in, nil, grace)
		return false
	case <-r.closing:
		in.closeFIFO()
		return false
	}
}

func (r *Runtime) stop(in *instance, c *container.Container, grace time.Duration) {
	bg := context.Background()
	in.update(func(i *skiff.Instance) { i.State = skiff.InstanceStopping })
	if c != nil {
		r.platform(in, "Stopping process with SIGTERM")
		st, err := c.Stop(bg, grace)
		if err != nil {
			r.log.Warn("stop", "id", in.id, "err", err)
		}
		r.platform(in, "Process %s", st)
		if err := c.Delete(bg); err != nil {
			r.log.Warn("delete", "id", in.id, "err", err)
		}
	}
	// The pump drains what is left in the pipe before the FIFO goes.
	_ = in.fifo.SetReadDeadline(time.Now().Add(200 * time.Millisecond)) // a FIFO without a poller: the sleep drains it
	time.Sleep(50 * time.Millisecond)
	in.closeFIFO()
	r.removeInstance(in.id, in.dir)
	r.mu.Lock()
	delete(r.inst, in.id)
	r.mu.Unlock()
}

// waitReady polls the instance's port until it accepts a connection.
func (in *instance) waitReady(ctx context.Context) error {
	in.mu.Lock()
	restarts := in.info.Restarts
	in.mu.Unlock()
	d := net.Dialer{Timeout: 250 * time.Millisecond}
	for {
		in.mu.Lock()
		info, changed, c := in.info, in.changed, in.c
		in.mu.Unlock()
		if info.Restarts > restarts || (info.State == skiff.InstanceCrashed && info.Restarts == restarts && info.LastExit != "") || info.State == skiff.InstanceExited {
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s did not become ready: %s", info.Spec.Name(), info.LastExit)
		}
		if info.State == skiff.InstanceUp && info.Addr != "" && c != nil {
			// Through the container's own veth: its state says up for a
			// while after it exited (until its Delete is done), and by
			// then its address may be another container's.
			conn, err := c.Dial(ctx, skiff.DefaultPort, d)
			if err == nil {
				conn.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", info.Spec.Name(), ctx.Err())
		case <-in.done:
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s was stopped", info.Spec.Name())
		case <-changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func splitLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	return lines
}

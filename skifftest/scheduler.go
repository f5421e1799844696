package skifftest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// Host is the machine the fake scheduler's processes run on. Like runc
// containers, which outlive the daemon that started them, a Host's
// instances and logs outlive any Scheduler over it: close one (the daemon
// stops, or is killed) and a new one adopts what runs.
type Host struct {
	images *Images
	logs   *applog.Store // the schedulers' own store of apps' logs, in a directory of the Host's

	mu      sync.Mutex
	procs   map[string]*proc
	views   []*Scheduler
	runSeq  map[string]int
	volumes map[string]bool
}

// NewHost returns an empty host whose processes run images from images
// and whose apps' logs are kept in logDir (a test's temporary directory),
// by the store the real schedulers use (internal/applog).
func NewHost(images *Images, logDir string) *Host {
	logs, err := applog.New(logDir, logCap)
	if err != nil {
		panic(fmt.Sprintf("skifftest: the host's logs: %v", err)) // a test's own directory
	}
	return &Host{images: images, logs: logs, procs: map[string]*proc{}, runSeq: map[string]int{}, volumes: map[string]bool{}}
}

// AddVolume makes a volume the host can mount (by its id, as
// skiff.Mount.Volume names it). The fake's programs see no files, but a
// spec that mounts a volume the host has runs, as runtime's does.
func (h *Host) AddVolume(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.volumes[id] = true
}

// Config tunes a Scheduler; zero values take runtime's defaults.
type Config struct {
	Grace time.Duration // Stop's default; 30 s
	// Restart backoff: MinBackoff doubling to MaxBackoff, back to
	// MinBackoff after ResetAfter up. Defaults 1 s, 5 min, 10 min.
	MinBackoff, MaxBackoff, ResetAfter time.Duration
}

// Scheduler implements skiff.Scheduler over a Host, as one daemon's
// runtime does over the machine.
type Scheduler struct {
	host    *Host
	cfg     Config
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

var _ skiff.Scheduler = (*Scheduler)(nil)

// proc is one instance on the host. Its fields are guarded by Host.mu;
// the supervisor of the Scheduler that owns it runs its processes.
type proc struct {
	info    skiff.Instance
	run     *process // the current process; nil between runs
	stopReq chan time.Duration
	gone    chan struct{} // closed when the instance is removed
}

// errClosed is what a Scheduler answers once its daemon is gone.
var errClosed = errors.New("skifftest: the scheduler is closed")

// Scheduler returns a new Scheduler over the host (a daemon starting): it
// adopts every instance the host has, restarting those whose process
// ended meanwhile.
func (h *Host) Scheduler(cfg Config) *Scheduler {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Grace, 30*time.Second)
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 5*time.Minute)
	def(&cfg.ResetAfter, 10*time.Minute)
	s := &Scheduler{host: h, cfg: cfg, closing: make(chan struct{})}
	h.mu.Lock()
	procs := slices.Collect(maps.Values(h.procs))
	h.views = append(h.views, s)
	h.mu.Unlock()
	for _, p := range procs {
		// A process that ended while no scheduler watched is a crash (or
		// a one-off's exit) before anyone can list it, as runtime's
		// adoption records it.
		h.mu.Lock()
		r := p.run
		h.mu.Unlock()
		if r != nil && r.ended() {
			s.ended(p, r)
		}
		s.wg.Add(1)
		go s.supervise(p)
	}
	return s
}

// Close stops supervising, as a daemon that exits (or is killed): the
// instances keep running for the next Scheduler, and every method of
// this one fails from now on.
func (s *Scheduler) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.wg.Wait()
	return nil
}

func (s *Scheduler) closed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// Close closes every Scheduler over the host and kills every process:
// the end of a test.
func (h *Host) Close() {
	h.mu.Lock()
	views := slices.Clone(h.views)
	h.mu.Unlock()
	for _, v := range views {
		_ = v.Close() // never fails
	}
	h.mu.Lock()
	var runs []*process
	for id, p := range h.procs {
		if p.run != nil {
			runs = append(runs, p.run)
		}
		delete(h.procs, id)
		close(p.gone)
	}
	h.mu.Unlock()
	for _, r := range runs {
		r.sigkill()
		<-r.done
	}
}

// Kill ends the instance's current process as SIGKILL (or the OOM
// killer) would; its supervisor, if any, counts a crash and restarts it.
func (h *Host) Kill(id string) bool {
	h.mu.Lock()
	p := h.procs[id]
	var r *process
	if p != nil {
		r = p.run
	}
	h.mu.Unlock()
	if r == nil {
		return false
	}
	r.sigkill()
	<-r.done
	return true
}

var processTypeRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// refuseMounts fails a spec that mounts a volume the host does not have:
// a process never runs without the storage it was given.
func (h *Host) refuseMounts(spec *skiff.InstanceSpec) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range spec.Mounts {
		if !h.volumes[m.Volume] {
			return skiff.Errorf(skiff.EINVALID, "the storage mounted at %s is missing on this server", m.Path)
		}
	}
	return nil
}

func newID(spec *skiff.InstanceSpec) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s.%s.%d.%s", spec.AppName, spec.ProcessType, spec.Index, hex.EncodeToString(b))
}

// command is the program an instance runs: the spec's, or its image's
// command for the process type.
func (h *Host) command(spec *skiff.InstanceSpec, args []string) ([]string, []string, error) {
	img, err := h.images.Get(spec.Image)
	if err != nil {
		return nil, nil, err
	}
	if len(args) == 0 {
		args = strings.Fields(img.ProcessTypes[spec.ProcessType])
	} else if len(args) == 1 {
		// One argument is a command line for the app's shell (what `run`
		// and cron pass); the fake's shell splits it into words.
		args = strings.Fields(args[0])
	}
	if len(args) == 0 {
		return nil, nil, skiff.Errorf(skiff.EINVALID, "the image has no command for process type %s", spec.ProcessType)
	}
	return args, environ(img, spec), nil
}

// environ is runtime's order: the image's, the spec's, then the
// platform's variables, each name once.
func environ(img *Image, spec *skiff.InstanceSpec) []string {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range img.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		set(k, spec.Env[k])
	}
	set("PORT", strconv.Itoa(skiff.DefaultPort))
	set("SKIFF_PROCESS", spec.Name())
	set("DYNO", spec.Name())
	set("SKIFF_RELEASE", "v"+strconv.Itoa(spec.Release))
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = k + "=" + vals[k]
	}
	return out
}

// Start implements skiff.Scheduler.
func (s *Scheduler) Start(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error) {
	if s.closed() {
		return nil, errClosed
	}
	if !processTypeRE.MatchString(spec.ProcessType) || spec.Index < 1 {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid process %s", spec.Name())
	}
	if err := s.host.refuseMounts(spec); err != nil {
		return nil, err
	}
	if _, _, err := s.host.command(spec, spec.Command); err != nil {
		return nil, err
	}
	p := &proc{stopReq: make(chan time.Duration), gone: make(chan struct{}),
		info: skiff.Instance{ID: newID(spec), Spec: *spec, State: skiff.InstanceStarting, CreatedAt: time.Now().UTC()}}
	p.info.Spec.Env = maps.Clone(spec.Env)
	p.info.Spec.Command = slices.Clone(spec.Command)
	h := s.host
	h.mu.Lock()
	h.procs[p.info.ID] = p
	h.mu.Unlock()
	if err := s.launch(p, false); err != nil {
		h.mu.Lock()
		delete(h.procs, p.info.ID)
		h.mu.Unlock()
		return nil, err
	}
	s.wg.Add(1)
	go s.supervise(p)
	return s.snapshot(p), nil
}

// launch starts the instance's process and marks it up.
func (s *Scheduler) launch(p *proc, restart bool) error {
	h := s.host
	h.mu.Lock()
	spec := p.info.Spec
	from := p.info.State
	h.mu.Unlock()
	if restart {
		if len(spec.Command) > 0 {
			h.platform(spec.AppID, spec.Name(), fmt.Sprintf("Starting process with command `%s`", strings.Join(spec.Command, " ")))
		} else {
			h.platform(spec.AppID, spec.Name(), "Starting process")
		}
	}
	args, env, err := h.command(&spec, spec.Command)
	if err != nil {
		return err
	}
	out := &lineWriter{logs: h.logs, appID: spec.AppID, process: spec.Name()}
	r := start(args, env, spec.Name(), stdio{out: out, errOut: out})
	h.mu.Lock()
	p.run = r
	p.info.State, p.info.StartedAt = skiff.InstanceUp, time.Now()
	h.mu.Unlock()
	if from != skiff.InstanceUp {
		h.platform(spec.AppID, spec.Name(), fmt.Sprintf("State changed from %s to up", from))
	}
	return nil
}

// supervise runs the instance until Stop (which removes it) or Close
// (which leaves its process running), restarting it after each exit.
func (s *Scheduler) supervise(p *proc) {
	defer s.wg.Done()
	h := s.host
	backoff := s.cfg.MinBackoff
	for {
		h.mu.Lock()
		r, state, oneOff := p.run, p.info.State, p.info.Spec.OneOff
		h.mu.Unlock()
		if state == skiff.InstanceExited {
			s.awaitRemoval(p)
			return
		}
		if r == nil {
			if err := s.launch(p, true); err != nil {
				h.mu.Lock()
				p.info.State, p.info.LastExit, p.info.LastExitAt = skiff.InstanceCrashed, "failed to start: "+err.Error(), time.Now()
				h.mu.Unlock()
				if !s.pause(p, &backoff) {
					return
				}
				continue
			}
			h.mu.Lock()
			r = p.run
			h.mu.Unlock()
		}
		started := time.Now()
		select {
		case <-r.done:
			s.ended(p, r)
			if oneOff {
				s.awaitRemoval(p)
				return
			}
			if time.Since(started) >= s.cfg.ResetAfter {
				backoff = s.cfg.MinBackoff
			}
			if !s.pause(p, &backoff) {
				return
			}
		case grace := <-p.stopReq:
			s.stop(p, r, grace)
			return
		case <-s.closing:
			return
		}
	}
}

// ended records that the process ended on its own: a crash, or a
// one-off's exit.
func (s *Scheduler) ended(p *proc, r *process) {
	h := s.host
	h.mu.Lock()
	spec := p.info.Spec
	p.run = nil
	p.info.LastExit, p.info.LastExitAt = r.status.String(), time.Now()
	to := skiff.InstanceCrashed
	if spec.OneOff {
		to, p.info.ExitCode = skiff.InstanceExited, r.status.code
	} else {
		p.info.Restarts++
	}
	p.info.State = to
	h.mu.Unlock()
	h.platform(spec.AppID, spec.Name(), "Process "+r.status.String())
	h.platform(spec.AppID, spec.Name(), fmt.Sprintf("State changed from up to %s", to))
}

func (s *Scheduler) pause(p *proc, backoff *time.Duration) bool {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	*backoff = min(*backoff*2, s.cfg.MaxBackoff)
	select {
	case <-t.C:
		return true
	case grace := <-p.stopReq:
		s.stop(p, nil, grace)
		return false
	case <-s.closing:
		return false
	}
}

func (s *Scheduler) awaitRemoval(p *proc) {
	select {
	case grace := <-p.stopReq:
		s.stop(p, nil, grace)
	case <-s.closing:
	}
}

// stop ends the process (SIGTERM, SIGKILL after grace) and removes the
// instance.
func (s *Scheduler) stop(p *proc, r *process, grace time.Duration) {
	h := s.host
	h.mu.Lock()
	p.info.State = skiff.InstanceStopping
	spec := p.info.Spec
	h.mu.Unlock()
	if r != nil {
		h.platform(spec.AppID, spec.Name(), "Stopping process with SIGTERM")
		r.sigterm()
		t := time.NewTimer(grace)
		select {
		case <-r.done:
		case <-t.C:
			r.sigkill()
			<-r.done
		}
		t.Stop()
		h.platform(spec.AppID, spec.Name(), "Process "+r.status.String())
	}
	h.mu.Lock()
	if h.procs[p.info.ID] == p {
		delete(h.procs, p.info.ID)
		close(p.gone)
	}
	h.mu.Unlock()
}

func (s *Scheduler) snapshot(p *proc) *skiff.Instance {
	h := s.host
	h.mu.Lock()
	in := p.info
	r := p.run
	h.mu.Unlock()
	in.Spec.Env = maps.Clone(in.Spec.Env)
	if r != nil && in.State == skiff.InstanceUp {
		in.Addr = r.listening()
	}
	if in.State != skiff.InstanceExited && r != nil {
		in.MemoryBytes, in.MemoryLimit = 1<<20, in.Spec.Limits.MemoryBytes
	}
	return &in
}

// Stop implements skiff.Scheduler.
func (s *Scheduler) Stop(ctx context.Context, id string, grace time.Duration) error {
	if s.closed() {
		return errClosed
	}
	h := s.host
	h.mu.Lock()
	p := h.procs[id]
	h.mu.Unlock()
	if p == nil {
		return nil
	}
	if grace <= 0 {
		grace = s.cfg.Grace
	}
	select {
	case p.stopReq <- grace:
	case <-p.gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errClosed
	}
	select {
	case <-p.gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Instances implements skiff.Scheduler.
func (s *Scheduler) Instances(ctx context.Context, appID string) ([]*skiff.Instance, error) {
	if s.closed() {
		return nil, errClosed
	}
	h := s.host
	h.mu.Lock()
	var list []*proc
	for _, p := range h.procs {
		if appID == "" || p.info.Spec.AppID == appID {
			list = append(list, p)
		}
	}
	h.mu.Unlock()
	out := make([]*skiff.Instance, 0, len(list))
	for _, p := range list {
		out = append(out, s.snapshot(p))
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Spec, out[j].Spec
		if a.AppID != b.AppID {
			return a.AppID < b.AppID
		}
		if a.ProcessType != b.ProcessType {
			return a.ProcessType < b.ProcessType
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// WaitReady implements skiff.Scheduler: like runtime, it polls the port
// until a connection succeeds.
func (s *Scheduler) WaitReady(ctx context.Context, id string) error {
	h := s.host
	h.mu.Lock()
	p := h.procs[id]
	var restarts int
	if p != nil {
		restarts = p.info.Restarts
	}
	h.mu.Unlock()
	if p == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "no instance %s", id)
	}
	d := net.Dialer{Timeout: 250 * time.Millisecond}
	for {
		if s.closed() {
			return errClosed
		}
		in := s.snapshot(p)
		if in.Restarts > restarts || in.State == skiff.InstanceExited || (in.State == skiff.InstanceCrashed && in.LastExit != "") {
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s did not become ready: %s", in.Spec.Name(), in.LastExit)
		}
		if in.State == skiff.InstanceUp && in.Addr != "" {
			if c, err := d.DialContext(ctx, "tcp", in.Addr); err == nil {
				c.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", in.Spec.Name(), ctx.Err())
		case <-p.gone:
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s was stopped", in.Spec.Name())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Run implements skiff.Scheduler.
func (s *Scheduler) Run(ctx context.Context, req *skiff.RunRequest) (int, error) {
	if s.closed() {
		return 0, errClosed
	}
	if len(req.Args) == 0 {
		return 0, skiff.Errorf(skiff.EINVALID, "run needs a command")
	}
	spec := req.Spec
	named := skiff.NamedOneOff(&spec)
	if !named {
		spec.ProcessType = "run"
	}
	if err := s.host.refuseMounts(&spec); err != nil {
		return 0, err
	}
	h := s.host
	if !named {
		h.mu.Lock()
		h.runSeq[spec.AppID]++
		spec.Index = h.runSeq[spec.AppID]
		h.mu.Unlock()
	}
	args, env, err := h.command(&spec, req.Args)
	if err != nil {
		return 0, err
	}
	h.platform(spec.AppID, spec.Name(), fmt.Sprintf("Starting process with command `%s`", strings.Join(req.Args, " ")))
	std := stdio{in: req.Stdin, out: orDiscard(req.Stdout), errOut: orDiscard(req.Stderr)}
	if req.TTY != nil {
		std.errOut = std.out // a terminal merges the streams
	}
	r := start(args, env, spec.Name(), std)
	stop := r.killOn(ctx)
	<-r.done
	stop()
	h.platform(spec.AppID, spec.Name(), "Process "+r.status.String())
	return r.status.code, nil
}

// Logs implements skiff.Scheduler.
func (s *Scheduler) Logs(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	return s.host.logs.Query(ctx, q, fn)
}

// AppLog implements skiff.Scheduler.
func (s *Scheduler) AppLog(appID, process, text string) { s.host.platform(appID, process, text) }

// RemoveApp implements skiff.Scheduler.
func (s *Scheduler) RemoveApp(ctx context.Context, appID string) error {
	list, err := s.Instances(ctx, appID)
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range list {
		errs = append(errs, s.Stop(ctx, in.ID, 0))
	}
	errs = append(errs, s.host.logs.Remove(appID))
	return errors.Join(errs...)
}

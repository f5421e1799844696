package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/layer"
)

// Config configures a Runtime.
type Config struct {
	DataDir  string          // instances/ and logs/apps/ live below it
	ImageDir string          // the OCI image layout (DATA/images)
	Layers   *layer.Store    // unpacked layers, shifted by Runc's id map (layer.Options.IDShift)
	Runc     *container.Runc // with a Network, and its own state dir and cgroup parent
	Log      *slog.Logger
	// Init is the init program (cmd/skiff-init) that runs as the first
	// process of every instance and one-off run, in front of the app: it
	// forwards SIGTERM and the like to the app and reaps orphans. It is
	// copied to DATA/runtime/.
	Init string

	// VolumePath is the host directory of a volume (skiff.Volumes.Path),
	// for the mounts of instances and one-off runs; nil: mounts fail.
	VolumePath func(id string) (string, error)

	// Nameservers go into instances' /etc/resolv.conf; default: the
	// host's, without loopback ones (instances cannot reach the host).
	Nameservers []string

	LogCap    int64         // bytes of log kept per app; default 16 MiB
	UpperSize int64         // an instance's writable layer (tmpfs, counted in its memory); default 256 MiB
	Grace     time.Duration // Stop's default; 30 s
	// Restart backoff: MinBackoff doubling to MaxBackoff, back to
	// MinBackoff after ResetAfter up. Defaults 1 s, 5 min, 10 min.
	MinBackoff, MaxBackoff, ResetAfter time.Duration
}

// Runtime implements skiff.Scheduler with runc containers.
type Runtime struct {
	cfg         Config
	log         *slog.Logger
	runc        *container.Runc
	layers      *layer.Store
	logs        *applog.Store
	nameservers []string
	initPath    string // the installed copy of Config.Init

	// gcMu is held by PruneLayers, and briefly by pin, so that an image
	// is either pinned before a prune looks or unpacked after it is done.
	gcMu    sync.RWMutex
	mu      sync.Mutex
	inst    map[string]*instance
	pinned  map[string]int // images in use by instances not (yet) in inst
	runSeq  map[string]int
	closing chan struct{}
	wg      sync.WaitGroup // supervisors and log pumps
}

var _ skiff.Scheduler = (*Runtime)(nil)

// New returns a Runtime and re-adopts the instances a previous one left
// running (or restarts those that had exited); containers of this Runc that
// no instance owns are removed.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Runc == nil || cfg.Layers == nil || cfg.DataDir == "" || cfg.ImageDir == "" || cfg.Init == "" {
		return nil, errors.New("runtime: DataDir, ImageDir, Layers, Runc and Init are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Grace, 30*time.Second)
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 5*time.Minute)
	def(&cfg.ResetAfter, 10*time.Minute)
	if cfg.LogCap == 0 {
		cfg.LogCap = 16 << 20
	}
	if cfg.UpperSize == 0 {
		cfg.UpperSize = 256 << 20
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "instances"), 0o711); err != nil {
		return nil, err
	}
	if _, err := mountShare(cfg.DataDir); err != nil {
		cfg.Log.Warn("no tmpfs for the files instances mount: their mountinfo names the data directory", "err", err)
	}
	initPath, err := installInit(cfg.Init, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	logs, err := applog.New(filepath.Join(cfg.DataDir, "logs", "apps"), cfg.LogCap)
	if err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, log: cfg.Log, runc: cfg.Runc, layers: cfg.Layers, logs: logs,
		inst: map[string]*instance{}, pinned: map[string]int{}, runSeq: map[string]int{}, closing: make(chan struct{}),
		nameservers: cfg.Nameservers, initPath: initPath}
	if r.nameservers == nil {
		r.nameservers = hostNameservers()
	}
	if err := r.adoptAll(ctx); err != nil {
		_ = r.Close() // Close reports nothing: supervision just stops
		return nil, err
	}
	return r, nil
}

// LogStore is the apps' log store, for another scheduler of the same apps
// (a cluster's) to keep their logs in the same place: an app's log goes on
// across a move. It is closed with the Runtime.
func (r *Runtime) LogStore() *applog.Store { return r.logs }

// Close stops supervising; instances keep running for the next Runtime.
func (r *Runtime) Close() error {
	r.mu.Lock()
	select {
	case <-r.closing:
	default:
		close(r.closing)
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.logs.Close()
	return nil
}

func (r *Runtime) instancesDir() string { return filepath.Join(r.cfg.DataDir, "instances") }

// record is what instance.json holds.
type record struct {
	ID        string             `json:"id"`
	Spec      skiff.InstanceSpec `json:"spec"`
	CreatedAt time.Time          `json:"created_at"`
	// What ps shows of past runs, kept across daemon restarts (the
	// current run's start is the container's, from runc's state).
	Restarts   int       `json:"restarts,omitempty"`
	LastExit   string    `json:"last_exit,omitempty"`
	LastExitAt time.Time `json:"last_exit_at,omitzero"`
	// Exited is set when a one-off instance's process has ended, with
	// its ExitCode: it stays until Stop.
	Exited   bool `json:"exited,omitempty"`
	ExitCode int  `json:"exit_code,omitempty"`
}

// writeRecord replaces dir/instance.json atomically: a torn record would
// lose the instance at the next adoption.
func writeRecord(dir string, rec record) error {
	b, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "instance.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "instance.json"))
}

func (r *Runtime) adoptAll(ctx context.Context) error {
	ents, err := os.ReadDir(r.instancesDir())
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(r.instancesDir(), e.Name(), "instance.json"))
		var rec record
		if err != nil || json.Unmarshal(b, &rec) != nil || rec.ID != e.Name() {
			continue // a one-off run or an interrupted start: cleaned below
		}
		keep[rec.ID] = true
		in := r.newInstance(rec)
		c, err := r.runc.Adopt(ctx, rec.ID)
		if err != nil {
			c = nil // gone (host reboot, or it exited and was deleted): start again
			if rec.Spec.OneOff && !rec.Exited {
				// A one-off never runs twice: it ended, as its init
				// recorded, or it was lost with its container.
				st, _ := container.ReadExitFile(r.exitDir(rec.ID))
				r.ended(in, st, container.Stats{})
			}
		} else if c.Status == "stopped" {
			// It ended while no daemon watched: a crash like any other,
			// or a one-off's end (whose status its init recorded).
			st, _ := c.Wait(ctx)
			if fst, ok := container.ReadExitFile(r.exitDir(rec.ID)); ok && !st.Known {
				st = fst
			}
			stats, _ := c.Stats()
			if err := c.Delete(ctx); err != nil {
				r.log.Warn("delete", "id", rec.ID, "err", err)
			}
			c = nil
			r.ended(in, st, stats)
		} else if c.Status != "running" {
			// Created but never started, or paused: start it afresh.
			if err := c.Delete(ctx); err != nil {
				r.log.Warn("delete", "id", rec.ID, "err", err)
			}
			c = nil
		}
		if err := in.openFIFO(); err != nil {
			return err
		}
		r.log.Info("re-adopting instance", "id", rec.ID, "running", c != nil)
		r.launch(in, c)
	}
	if err := r.runc.Cleanup(ctx, r.instancesDir(), func(id string) bool { return keep[id] }); err != nil {
		r.log.Warn("cleanup of leftover containers", "err", err)
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			r.removeInstance(e.Name(), filepath.Join(r.instancesDir(), e.Name()))
		}
	}
	nets, _ := os.ReadDir(filepath.Join(shareDir(r.cfg.DataDir), "net"))
	for _, e := range nets {
		if !keep[e.Name()] {
			os.RemoveAll(r.netDir(e.Name()))
		}
	}
	return nil
}

var safeRE = regexp.MustCompile(`[^a-z0-9-]`)

func newID(spec *skiff.InstanceSpec) string {
	b := make([]byte, 4)
	rand.Read(b)
	app := safeRE.ReplaceAllString(spec.AppName, "")
	if app == "" {
		app = safeRE.ReplaceAllString(spec.AppID, "")
	}
	if len(app) > 30 {
		app = app[:30]
	}
	pt := safeRE.ReplaceAllString(spec.ProcessType, "")
	if len(pt) > 16 {
		pt = pt[:16]
	}
	return fmt.Sprintf("%s.%s.%d.%s", app, pt, spec.Index, hex.EncodeToString(b))
}

var processTypeRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Start implements skiff.Scheduler.
func (r *Runtime) Start(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error) {
	if !processTypeRE.MatchString(spec.ProcessType) || spec.Index < 1 {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid process %s", spec.Name())
	}
	defer r.pin(spec.Image)()
	// Fail early on an image that cannot run, before anything is made.
	if _, err := r.loadImage(ctx, spec.Image); err != nil {
		return nil, err
	}
	rec := record{ID: newID(spec), Spec: *spec, CreatedAt: time.Now().UTC()}
	in := r.newInstance(rec)
	if err := os.MkdirAll(in.dir, 0o711); err != nil {
		return nil, err
	}
	if err := in.openFIFO(); err != nil {
		r.removeInstance(in.id, in.dir)
		return nil, err
	}
	c, err := r.startContainer(ctx, in)
	if err != nil {
		in.closeFIFO()
		r.removeInstance(in.id, in.dir)
		return nil, err
	}
	if err := writeRecord(in.dir, rec); err != nil {
		_ = c.Delete(context.WithoutCancel(ctx)) // the record's error is the one to report; Cleanup removes what is left at the next start
		in.closeFIFO()
		r.removeInstance(in.id, in.dir)
		return nil, err
	}
	r.launch(in, c)
	return in.snapshot(), nil
}

// pin keeps PruneLayers off image's layers until the returned func runs.
func (r *Runtime) pin(image string) (unpin func()) {
	r.gcMu.RLock()
	r.mu.Lock()
	r.pinned[image]++
	r.mu.Unlock()
	r.gcMu.RUnlock()
	return func() {
		r.mu.Lock()
		if r.pinned[image]--; r.pinned[image] <= 0 {
			delete(r.pinned, image)
		}
		r.mu.Unlock()
	}
}

func (r *Runtime) launch(in *instance, c *container.Container) {
	r.mu.Lock()
	r.inst[in.id] = in
	r.mu.Unlock()
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		_ = r.logs.Pump(in.fifo, in.rec.Spec.AppID, in.rec.Spec.Name()) // it ends when the FIFO is closed
	}()
	go func() {
		defer r.wg.Done()
		r.supervise(in, c)
	}()
}

func (r *Runtime) get(id string) *instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inst[id]
}

// Stop implements skiff.Scheduler.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	in := r.get(id)
	if in == nil {
		return nil
	}
	if grace <= 0 {
		grace = r.cfg.Grace
	}
	select {
	case in.stopReq <- grace:
	case <-in.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Instances implements skiff.Scheduler.
func (r *Runtime) Instances(ctx context.Context, appID string) ([]*skiff.Instance, error) {
	r.mu.Lock()
	var list []*instance
	for _, in := range r.inst {
		if appID == "" || in.rec.Spec.AppID == appID {
			list = append(list, in)
		}
	}
	r.mu.Unlock()
	out := make([]*skiff.Instance, 0, len(list))
	for _, in := range list {
		out = append(out, in.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Spec, out[j].Spec
		if a.AppID != b.AppID {
			return a.AppID < b.AppID
		}
		if a.ProcessType != b.ProcessType {
			return a.ProcessType < b.ProcessType
		}
		return a.Index < b.Index
	})
	return out, nil
}

// WaitReady implements skiff.Scheduler.
func (r *Runtime) WaitReady(ctx context.Context, id string) error {
	in := r.get(id)
	if in == nil {
		return skiff.Errorf(skiff.ENOTFOUND, "no instance %s", id)
	}
	return in.waitReady(ctx)
}

// Logs implements skiff.Scheduler.
func (r *Runtime) Logs(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	return r.logs.Query(ctx, q, fn)
}

// AppLog implements skiff.Scheduler.
func (r *Runtime) AppLog(appID, process, text string) {
	for _, line := range splitLines(text) {
		r.logs.Write(appID, skiff.LogLine{Time: time.Now(), Source: "skiff", Process: process, Text: applog.CleanText([]byte(line))})
	}
}

// RemoveApp implements skiff.Scheduler. Once the instances are stopped,
// the app's network groups (its instances' and its builds') go with the
// links to services they had: the app is gone, and what stayed would be
// dead rules and sets in the firewall table until a teardown.
func (r *Runtime) RemoveApp(ctx context.Context, appID string) error {
	list, _ := r.Instances(ctx, appID)
	var errs []error
	for _, in := range list {
		if err := r.Stop(ctx, in.ID, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if err := r.logs.Remove(appID); err != nil {
		errs = append(errs, err)
	}
	if nw := r.runc.Network(); nw != nil && len(errs) == 0 {
		for _, g := range []string{skiff.AppNetGroup(appID), skiff.BuildNetGroup(appID)} {
			if container.ValidGroup(g) {
				errs = append(errs, nw.RemoveGroup(g))
			}
		}
	}
	return errors.Join(errs...)
}

package services

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
)

// Scheduler runs the services' containers: a runtime of their own (its own
// runc state and cgroups), so that the apps' reconciler never sees them.
type Scheduler interface {
	Start(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error)
	Stop(ctx context.Context, id string, grace time.Duration) error
	Instances(ctx context.Context, appID string) ([]*skiff.Instance, error)
	Logs(ctx context.Context, q skiff.LogQuery, fn func(skiff.LogLine) error) error
	AppLog(appID, process, text string)
	Run(ctx context.Context, req *skiff.RunRequest) (int, error)
	Exec(ctx context.Context, id string, req *skiff.RunRequest) (int, error)
	RemoveApp(ctx context.Context, appID string) error
}

// Network opens and closes the paths from apps to services.
type Network interface {
	ServicePool() netip.Prefix
	Link(container.LinkRule) error
	Unlink(container.LinkRule) error
	Links() ([]container.LinkRule, error)
}

// Config configures a Manager.
type Config struct {
	// DataDir holds the services' backups: backups/<id>/.
	DataDir  string
	Store    skiff.ServiceStore
	Apps     skiff.AppService
	Config   skiff.ConfigService
	Deployer skiff.Deployer // sets and unsets the links' config vars
	Runtime  Scheduler
	Network  Network
	Images   skiff.DebianImager
	// Volumes hold the services' data; VolumeStore records them (with
	// Volume.Service set, so that storage:* leaves them alone).
	Volumes     skiff.Volumes
	VolumeStore skiff.VolumeService
	// IDShift is the host id of the containers' id 0: volumes are owned
	// by the server's user as the host sees it.
	IDShift uint32
	Log     *slog.Logger
	// ReadyTimeout bounds a server's start; default 2 minutes.
	ReadyTimeout time.Duration
	// Grace is how long a server gets to shut down cleanly; default 60 s.
	Grace time.Duration
	// MinFreeBytes is the free space below which creates, restores and
	// scheduled backups are refused; default 512 MiB.
	MinFreeBytes int64
}

// Manager runs backing services: it creates them (the image once, the
// data volume, the server's first start and its users), starts them again
// after a reboot, links them to apps (the network path and the config var,
// through a release), and backs them up and restores them. It implements
// skiff.ServiceManager. Operations on one service are serialized.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	locks  map[string]*sync.Mutex // by service id
	images sync.Mutex             // one image made at a time
	addrMu sync.Mutex             // address allocation

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ skiff.ServiceManager = (*Manager)(nil)

// New returns a Manager and converges to the store: services a killed
// daemon left half-made are removed, services that do not run (after a
// reboot) are started, and the network paths are made to match the links.
// It then runs scheduled backups until Close.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Runtime == nil || cfg.Network == nil || cfg.Images == nil || cfg.DataDir == "" || cfg.Volumes == nil || cfg.VolumeStore == nil {
		return nil, errors.New("services: DataDir, Store, Runtime, Network, Images and the volumes are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	if cfg.Grace == 0 {
		cfg.Grace = 60 * time.Second
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 512 << 20
	}
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "backups"), 0o700); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Log, locks: map[string]*sync.Mutex{}, stop: make(chan struct{})}
	if err := m.removeAllPartials(); err != nil {
		m.log.Error("remove partial backups", "err", err)
	}
	if err := m.reconcile(ctx); err != nil {
		// One service that does not start must not keep the daemon (and
		// the others) down.
		m.log.Error("services at start", "err", err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.runSchedules()
	}()
	return m, nil
}

// Close stops the backup scheduler. Services keep running.
func (m *Manager) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	m.wg.Wait()
	return nil
}

// lock serializes the operations on one service.
func (m *Manager) lock(id string) func() {
	m.mu.Lock()
	l := m.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[id] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Versions implements skiff.ServiceManager.
func (m *Manager) Versions(kind string) []string { return Versions(kind) }

// volume is the host directory of the service's data.
func (m *Manager) volume(svc *skiff.Service) string {
	p, err := m.cfg.Volumes.Path(svc.Volume)
	if err != nil {
		// Every service has a volume from its first moment; a path
		// that does not resolve is never written to.
		return filepath.Join(m.cfg.DataDir, "no-volume")
	}
	return p
}

// volumeName names a service's volume as storage:report shows it.
func volumeName(serviceName string) string { return "service-" + serviceName }

func (m *Manager) backupDir(svc *skiff.Service) string {
	return filepath.Join(m.cfg.DataDir, "backups", svc.ID)
}

// hostIDs are the host's uid and gid of the service's server.
func (m *Manager) hostIDs(svc *skiff.Service) (int, int, error) {
	var uid, gid int
	if _, err := fmt.Sscanf(svc.RunAs, "%d:%d", &uid, &gid); err != nil {
		return 0, 0, fmt.Errorf("service %s runs as %q: %w", svc.Name, svc.RunAs, err)
	}
	return uid + int(m.cfg.IDShift), gid + int(m.cfg.IDShift), nil
}

// password is 32 hex digits from the system's random source.
func password() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freeAddress returns the lowest container address of the service pool
// that no service has. Callers hold addrMu until the service is stored.
func (m *Manager) freeAddress(ctx context.Context) (string, error) {
	all, err := m.cfg.Store.ListServices(ctx)
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	for _, s := range all {
		used[s.Address] = true
	}
	pool := m.cfg.Network.ServicePool()
	b := pool.Addr().As4()
	start := binary.BigEndian.Uint32(b[:])
	for i := uint32(0); i < uint32(1)<<(32-pool.Bits())/4; i++ {
		binary.BigEndian.PutUint32(b[:], start+4*i+2)
		if a := netip.AddrFrom4(b).String(); !used[a] {
			return a, nil
		}
	}
	return "", skiff.Errorf(skiff.EUNAVAILABLE, "every address of the service pool %s is taken: destroy a service, or give skiff a larger --network-pool", pool)
}

// instance returns the service's instance (nil if none runs).
func (m *Manager) instance(ctx context.Context, svc *skiff.Service) (*skiff.Instance, error) {
	ins, err := m.cfg.Runtime.Instances(ctx, svc.ID)
	if err != nil || len(ins) == 0 {
		return nil, err
	}
	return ins[0], nil
}

// spec is the service's instance.
func (m *Manager) spec(svc *skiff.Service) *skiff.InstanceSpec {
	return &skiff.InstanceSpec{
		AppID: svc.ID, AppName: svc.Name, Release: 1, Image: svc.Image, ProcessType: svc.Kind, Index: 1,
		Command: command(svc), Limits: svc.Limits, Address: svc.Address,
		Mounts: []skiff.Mount{{Volume: svc.Volume, Path: dataDir}},
	}
}

// start mounts the service's disk, writes what the server reads at start,
// and starts its instance.
func (m *Manager) start(ctx context.Context, svc *skiff.Service) error {
	if err := m.mountDisk(ctx, svc); err != nil {
		return err
	}
	if svc.Kind == skiff.ServiceRedis {
		if err := m.writeOwned(svc, "redis.conf", []byte(redisConfig(svc))); err != nil {
			return err
		}
	}
	_, err := m.cfg.Runtime.Start(ctx, m.spec(svc))
	return err
}

// stopServer stops the service's instances, giving the server the grace
// to shut down cleanly.
func (m *Manager) stopServer(ctx context.Context, svc *skiff.Service) error {
	ins, err := m.cfg.Runtime.Instances(ctx, svc.ID)
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range ins {
		errs = append(errs, m.cfg.Runtime.Stop(ctx, in.ID, m.cfg.Grace))
	}
	return errors.Join(errs...)
}

// writeOwned writes a file of the volume, 0600, owned by the server.
func (m *Manager) writeOwned(svc *skiff.Service, rel string, data []byte) error {
	uid, gid, err := m.hostIDs(svc)
	if err != nil {
		return err
	}
	p := filepath.Join(m.volume(svc), rel)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

// exec runs args in the service's running server container.
func (m *Manager) exec(ctx context.Context, svc *skiff.Service, req *skiff.RunRequest) (int, error) {
	in, err := m.instance(ctx, svc)
	if err != nil {
		return 0, err
	}
	if in == nil || in.State != skiff.InstanceUp {
		return 0, skiff.Errorf(skiff.EUNAVAILABLE, "%s is not running; `%s:info %s` says why, `%s:restart %s` starts it", svc.Name, svc.Kind, svc.Name, svc.Kind, svc.Name)
	}
	return m.cfg.Runtime.Exec(ctx, in.ID, req)
}

// output runs args in the server's container and returns its output.
func (m *Manager) output(ctx context.Context, svc *skiff.Service, env map[string]string, stdin io.Reader, args ...string) (string, error) {
	var out, errb limitedBuffer
	code, err := m.exec(ctx, svc, &skiff.RunRequest{Spec: skiff.InstanceSpec{Env: env}, Args: args, Stdin: stdin, Stdout: &out, Stderr: &errb})
	if err != nil {
		return "", err
	}
	if code != 0 {
		return out.String(), fmt.Errorf("%s exited with status %d: %s", args[0], code, errb.String())
	}
	return out.String(), nil
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 64<<10 - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Logs implements skiff.ServiceManager.
func (m *Manager) Logs(ctx context.Context, svc *skiff.Service, q skiff.LogQuery, fn func(skiff.LogLine) error) error {
	q.AppID, q.Process = svc.ID, ""
	return m.cfg.Runtime.Logs(ctx, q, fn)
}

package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/skiffhq/skiff"
)

// Default limits of a service; --memory at create changes the memory.
var defaultLimits = skiff.Limits{MemoryBytes: 512 << 20, CPU: 1, Pids: 512}

// Create implements skiff.ServiceManager.
func (m *Manager) Create(ctx context.Context, req *skiff.ServiceRequest, out io.Writer) (*skiff.Service, error) {
	if err := validKind(req.Kind); err != nil {
		return nil, err
	}
	if err := skiff.ValidateServiceName(req.Name); err != nil {
		return nil, err
	}
	s, err := suiteFor(req.Kind, req.Version)
	if err != nil {
		return nil, err
	}
	if _, err := m.cfg.Store.FindService(ctx, req.Name); err == nil {
		return nil, skiff.Errorf(skiff.ECONFLICT, "a service called %s exists already; choose another name", req.Name)
	}
	if err := m.checkFree(); err != nil {
		return nil, err
	}
	lim := req.Limits
	if lim.MemoryBytes == 0 {
		lim.MemoryBytes = defaultLimits.MemoryBytes
	}
	if lim.CPU == 0 {
		lim.CPU = defaultLimits.CPU
	}
	if lim.Pids == 0 {
		lim.Pids = defaultLimits.Pids
	}
	if lim.MemoryBytes < 64<<20 {
		return nil, skiff.Errorf(skiff.EINVALID, "a service needs at least 64m of memory")
	}
	disk := req.DiskBytes
	if disk == 0 {
		disk = DefaultDisk
	}
	if disk < MinDisk || disk > 16<<40 {
		return nil, skiff.Errorf(skiff.EINVALID, "--disk takes a size from %dm to 16t", MinDisk>>20)
	}
	// The volume's record first, with the size of the service's disks,
	// within the server's storage budget, before anything is made (a
	// refused create leaves nothing). A daemon killed before the
	// service's record is stored finds a volume of no service at its
	// next start, and removes it (see reconcile).
	vol := &skiff.Volume{Name: volumeName(req.Name), Service: req.Name, SizeBytes: disksSize(req.Kind, disk)}
	if err := m.reserveVolume(ctx, req, vol, disk); err != nil {
		return nil, err
	}
	undoVolume := func() {
		if derr := m.cfg.VolumeStore.DeleteVolume(context.WithoutCancel(ctx), vol.Name); derr != nil {
			m.log.Error("undo a service's volume", "volume", vol.Name, "err", derr)
		}
	}
	imgs, err := m.makeImages(ctx, s, out)
	if err != nil {
		undoVolume()
		return nil, err
	}
	ref := imageRef(req.Kind, s.version(req.Kind))
	svc := &skiff.Service{Name: req.Name, Kind: req.Kind, Version: s.version(req.Kind), Packages: imgs.Packages,
		Image: imgs.Digests[ref], RunAs: imgs.Users[ref], Port: ports[req.Kind], Limits: lim, DiskBytes: disk, Password: password()}
	if svc.Image == "" || svc.RunAs == "" {
		undoVolume()
		return nil, fmt.Errorf("service image %s: no digest or user", ref)
	}
	svc.Volume = vol.ID
	m.addrMu.Lock()
	svc.Address, err = m.freeAddress(ctx)
	if err == nil {
		err = m.cfg.Store.CreateService(ctx, svc)
	}
	m.addrMu.Unlock()
	if err != nil {
		undoVolume()
		return nil, err
	}
	unlock := m.lock(svc.ID)
	defer unlock()
	fmt.Fprintf(out, "-----> Creating %s %s (%s %s) at %s\n", req.Kind, svc.Name, req.Kind, serverVersion(svc), svc.Address)
	if err := m.initialize(ctx, svc, out); err != nil {
		m.log.Warn("service create failed; removing it", "service", svc.Name, "err", err)
		if rerr := m.remove(context.WithoutCancel(ctx), svc); rerr != nil {
			m.log.Error("remove a half-made service", "service", svc.Name, "err", rerr)
		}
		if ctx.Err() != nil {
			return nil, skiff.Errorf(skiff.EUNAVAILABLE, "creating %s was interrupted; nothing of it is left", svc.Name)
		}
		return nil, err
	}
	svc.State = skiff.ServiceReady
	if err := m.cfg.Store.UpdateService(ctx, svc); err != nil {
		if rerr := m.remove(context.WithoutCancel(ctx), svc); rerr != nil {
			m.log.Error("undo a service's creation", "service", svc.Name, "err", rerr)
		}
		return nil, err
	}
	fmt.Fprintf(out, "-----> %s is ready; link it to an app with %s:link %s <app>\n", svc.Name, svc.Kind, svc.Name)
	return svc, nil
}

// reserveVolume records the service's volume, of its disks' size, within
// the storage budget.
func (m *Manager) reserveVolume(ctx context.Context, req *skiff.ServiceRequest, vol *skiff.Volume, disk int64) error {
	if m.cfg.Deployer == nil {
		return skiff.Errorf(skiff.EUNAVAILABLE, "this server does not run apps")
	}
	what := fmt.Sprintf("%s %s (--disk %s)", req.Kind, req.Name, skiff.FormatSize(disk))
	if req.Kind == skiff.ServicePostgres {
		what = fmt.Sprintf("%s %s (--disk %s, and %s besides for its write-ahead log)", req.Kind, req.Name, skiff.FormatSize(disk), skiff.FormatSize(walDisk(disk)))
	}
	err := m.cfg.Deployer.ReserveServiceVolume(ctx, vol, what)
	if skiff.ErrorCode(err) == skiff.ECONFLICT {
		return skiff.Errorf(skiff.ECONFLICT, "the storage %s exists already, and a service %s keeps its data there; choose another name", vol.Name, req.Name)
	}
	return err
}

// makeImages returns the suite's images, making them the first time.
func (m *Manager) makeImages(ctx context.Context, s suite, out io.Writer) (*skiff.DebianImages, error) {
	m.images.Lock()
	defer m.images.Unlock()
	return m.cfg.Images.CreateDebianImages(ctx, s.request(), out)
}

// initialize makes the volume and the server's first data, and starts it.
func (m *Manager) initialize(ctx context.Context, svc *skiff.Service, out io.Writer) error {
	uid, gid, err := m.hostIDs(svc)
	if err != nil {
		return err
	}
	// Size 0: a directory, on which the service's own disk is mounted.
	if err := m.cfg.Volumes.Ensure(ctx, svc.Volume, 0); err != nil {
		return err
	}
	if err := m.makeDisk(ctx, svc); err != nil {
		return err
	}
	// mountDisk hands the file system to the server's user (the runtime
	// does again at each start; initdb, the first, needs it before).
	if err := m.mountDisk(ctx, svc); err != nil {
		return err
	}
	vol := m.volume(svc)
	switch svc.Kind {
	case skiff.ServicePostgres:
		fmt.Fprintf(out, "       initdb\n")
		if err := m.initdb(ctx, svc); err != nil {
			return err
		}
	case skiff.ServiceRedis:
		if err := os.Mkdir(filepath.Join(vol, "data"), 0o700); err != nil {
			return err
		}
		if err := os.Chown(filepath.Join(vol, "data"), uid, gid); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "       starting the server\n")
	if err := m.start(ctx, svc); err != nil {
		return err
	}
	if err := m.waitReady(ctx, svc); err != nil {
		return err
	}
	if svc.Kind == skiff.ServicePostgres {
		// The app's role owns the database and is no superuser; the
		// password goes in on stdin, never on a command line.
		sql := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s';\nCREATE DATABASE %q OWNER %s;\n", svc.User(), svc.Password, svc.Database(), svc.User())
		if _, err := m.output(ctx, svc, nil, strings.NewReader(sql), "psql", "-v", "ON_ERROR_STOP=1", "-q", "-U", "postgres", "-d", "postgres"); err != nil {
			return fmt.Errorf("create the database: %w", err)
		}
	}
	return nil
}

// initdb makes a PostgreSQL cluster in the volume, in a one-off container
// of the service's image that has the service's address (and so no other
// path: the server is not running yet).
func (m *Manager) initdb(ctx context.Context, svc *skiff.Service) error {
	s, _ := suiteFor(svc.Kind, svc.Version)
	spec := *m.spec(svc)
	var errb limitedBuffer
	args := []string{s.pgBin() + "/initdb", "-D", dataDir + "/pgdata", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
		"--auth-local=trust", "--auth-host=scram-sha-256", "--data-checksums"}
	if mounted(m.walDir(svc)) {
		args = append(args, "--waldir="+walPath)
	}
	code, err := m.cfg.Runtime.Run(ctx, &skiff.RunRequest{Spec: spec, Stdout: &errb, Stderr: &errb, Args: args})
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("initdb exited with status %d: %s", code, errb.String())
	}
	return m.writeOwned(svc, "pgdata/pg_hba.conf", []byte(pgHBA))
}

// readyCommand answers 0 once the server takes connections.
func readyCommand(svc *skiff.Service) (args []string, env map[string]string) {
	if svc.Kind == skiff.ServiceRedis {
		return []string{"redis-cli", "-p", fmt.Sprint(svc.Port), "ping"}, map[string]string{"REDISCLI_AUTH": svc.Password}
	}
	return []string{"pg_isready", "-q", "-h", "/tmp", "-p", fmt.Sprint(svc.Port)}, nil
}

// waitReady polls the server until it answers, its instance crashes, or
// ReadyTimeout passes.
func (m *Manager) waitReady(ctx context.Context, svc *skiff.Service) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ReadyTimeout)
	defer cancel()
	args, env := readyCommand(svc)
	for {
		in, err := m.instance(ctx, svc)
		if err != nil {
			return err
		}
		if in != nil && in.Restarts > 0 {
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s did not start (%s); `%s:logs %s` has its output", svc.Name, in.LastExit, svc.Kind, svc.Name)
		}
		if in != nil && in.State == skiff.InstanceUp && m.ready(ctx, svc, args, env) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return skiff.Errorf(skiff.EUNAVAILABLE, "%s did not answer within %s; `%s:logs %s` has its output", svc.Name, m.cfg.ReadyTimeout, svc.Kind, svc.Name)
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ready runs the server's ready check once.
func (m *Manager) ready(ctx context.Context, svc *skiff.Service, args []string, env map[string]string) bool {
	out, err := m.output(ctx, svc, env, nil, args...)
	return err == nil && (svc.Kind != skiff.ServiceRedis || strings.Contains(out, "PONG"))
}

// answers reports whether the server is up and answers its ready check.
func (m *Manager) answers(ctx context.Context, svc *skiff.Service) bool {
	in, err := m.instance(ctx, svc)
	if err != nil || in == nil || in.State != skiff.InstanceUp {
		return false
	}
	args, env := readyCommand(svc)
	return m.ready(ctx, svc, args, env)
}

// remove stops a service and deletes its data, backups and record.
func (m *Manager) remove(ctx context.Context, svc *skiff.Service) error {
	var errs []error
	if err := m.cfg.Runtime.RemoveApp(ctx, svc.ID); err != nil {
		errs = append(errs, err)
	}
	if svc.Volume != "" {
		if err := m.unmountDisk(svc); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, m.cfg.Volumes.Remove(ctx, svc.Volume))
		}
	}
	for _, img := range []string{m.diskImage(svc), m.walImage(svc)} {
		if err := os.Remove(img); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, os.RemoveAll(m.backupDir(svc)))
	if err := errors.Join(errs...); err != nil {
		return err // the record stays, so that a later start tries again
	}
	if err := m.cfg.Store.DeleteService(ctx, svc.ID); err != nil {
		return err
	}
	if err := m.cfg.VolumeStore.DeleteVolume(ctx, volumeName(svc.Name)); err != nil && skiff.ErrorCode(err) != skiff.ENOTFOUND {
		return err
	}
	return nil
}

// Destroy implements skiff.ServiceManager.
func (m *Manager) Destroy(ctx context.Context, svc *skiff.Service, out io.Writer) error {
	unlock := m.lock(svc.ID)
	defer unlock()
	links, err := m.cfg.Store.Links(ctx, svc.ID)
	if err != nil {
		return err
	}
	if len(links) > 0 {
		var apps []string
		for _, l := range links {
			apps = append(apps, l.AppName)
		}
		return skiff.Errorf(skiff.ECONFLICT, "%s is linked to %s; unlink it first (%s:unlink %s %s)", svc.Name, strings.Join(apps, ", "), svc.Kind, svc.Name, apps[0])
	}
	fmt.Fprintf(out, "-----> Destroying %s %s and its data\n", svc.Kind, svc.Name)
	return m.remove(ctx, svc)
}

// Restart implements skiff.ServiceManager: a clean stop and a start; the
// address, and so the linked apps' URL, stays.
func (m *Manager) Restart(ctx context.Context, svc *skiff.Service, out io.Writer) error {
	unlock := m.lock(svc.ID)
	defer unlock()
	fmt.Fprintf(out, "-----> Restarting %s\n", svc.Name)
	if err := m.stopServer(ctx, svc); err != nil {
		return err
	}
	if err := m.start(ctx, svc); err != nil {
		return err
	}
	return m.waitReady(ctx, svc)
}

// Status implements skiff.ServiceManager.
func (m *Manager) Status(ctx context.Context, svc *skiff.Service) (*skiff.ServiceStatus, error) {
	st := &skiff.ServiceStatus{State: "stopped"}
	in, err := m.instance(ctx, svc)
	if err != nil {
		return nil, err
	}
	if in != nil {
		st.State, st.StartedAt, st.Restarts, st.LastExit, st.MemoryBytes = string(in.State), in.StartedAt, in.Restarts, in.LastExit, in.MemoryBytes
	}
	if n, err := m.dataUsage(ctx, svc); err == nil {
		st.DiskBytes = n
	}
	st.DiskLimit = svc.DiskBytes
	if in != nil && in.State == skiff.InstanceUp {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st.Connections = m.connections(qctx, svc)
	}
	return st, nil
}

// dataUsage is what the service's data disk holds (of its --disk; the
// WAL disk, which the volume's usage counts too, is not in it).
func (m *Manager) dataUsage(ctx context.Context, svc *skiff.Service) (int64, error) {
	if dir := m.volume(svc); mounted(dir) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return int64(st.Blocks-st.Bfree) * st.Bsize, nil //nolint:gosec // a disk's block counts are far below 2^63
	}
	u, err := m.cfg.Volumes.Usage(ctx, svc.Volume) // a service made before disks: a directory
	return u.UsedBytes, err
}

// connections counts the clients connected now (-1: unknown).
func (m *Manager) connections(ctx context.Context, svc *skiff.Service) int {
	var n int
	if svc.Kind == skiff.ServiceRedis {
		out, err := m.output(ctx, svc, map[string]string{"REDISCLI_AUTH": svc.Password}, nil, "redis-cli", "-p", fmt.Sprint(svc.Port), "info", "clients")
		if err != nil {
			return -1
		}
		for line := range strings.SplitSeq(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
				_, _ = fmt.Sscan(v, &n) // not a number: 0
				return max(n-1, 0)      // not counting redis-cli itself
			}
		}
		return -1
	}
	out, err := m.output(ctx, svc, nil, nil, "psql", "-U", "postgres", "-d", "postgres", "-tAc",
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
	if err != nil {
		return -1
	}
	if _, err := fmt.Sscan(strings.TrimSpace(out), &n); err != nil {
		return -1
	}
	return n
}

// checkFree refuses work that writes much when the data directory's disk
// is nearly full.
func (m *Manager) checkFree() error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(m.cfg.DataDir, &st); err != nil {
		return err
	}
	if free := int64(st.Bavail) * st.Bsize; free < m.cfg.MinFreeBytes { //nolint:gosec // a disk's free bytes are far below 2^63
		return skiff.Errorf(skiff.EUNAVAILABLE, "the server's disk has %d MiB free, under the %d MiB a service needs to work safely; free space first", free>>20, m.cfg.MinFreeBytes>>20)
	}
	return nil
}

package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiffhq/skiff"
)

// Connect implements skiff.ServiceManager: psql as the app's role on its
// database, or redis-cli, inside the server's container.
func (m *Manager) Connect(ctx context.Context, svc *skiff.Service, req *skiff.RunRequest) (int, error) {
	r := *req
	if svc.Kind == skiff.ServiceRedis {
		r.Args = []string{"redis-cli", "-p", fmt.Sprint(svc.Port)}
		r.Spec.Env = map[string]string{"REDISCLI_AUTH": svc.Password}
	} else {
		r.Args = []string{"psql", "-U", svc.User(), "-d", svc.Database()}
	}
	if req.TTY != nil {
		r.Spec.Env = withEnv(r.Spec.Env, "TERM", req.TTY.Term)
	}
	return m.exec(ctx, svc, &r)
}

func withEnv(env map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for a, b := range env {
		out[a] = b
	}
	if v != "" {
		out[k] = v
	}
	return out
}

// Backup implements skiff.ServiceManager. PostgreSQL's is pg_dump's custom
// format, taken in one snapshot (every row committed before it began, and
// none after); Redis's is an RDB snapshot from the server itself.
func (m *Manager) Backup(ctx context.Context, svc *skiff.Service, w io.Writer, out io.Writer) error {
	fmt.Fprintf(out, "-----> Backing up %s %s\n", svc.Kind, svc.Name)
	p := newProgress(out)
	defer p.stop()
	var errb limitedBuffer
	req := &skiff.RunRequest{Stdout: io.MultiWriter(w, p), Stderr: &errb}
	if svc.Kind == skiff.ServiceRedis {
		// redis-cli fetches the snapshot over the replication protocol
		// into the volume (a dump can be larger than the memory that
		// /tmp takes from), and it is streamed from there.
		tmp := dataDir + "/.skiff-backup.rdb"
		req.Args = []string{"sh", "-c", `redis-cli -p "$1" --rdb "$2" >&2 && cat "$2"; s=$?; rm -f "$2"; exit $s`, "sh", fmt.Sprint(svc.Port), tmp}
		req.Spec.Env = map[string]string{"REDISCLI_AUTH": svc.Password}
	} else {
		req.Args = []string{"pg_dump", "-U", "postgres", "-Fc", "--no-owner", "--no-acl", svc.Database()}
	}
	code, err := m.exec(ctx, svc, req)
	p.stop()
	if err != nil {
		return err
	}
	if code != 0 {
		return skiff.Errorf(skiff.EUNAVAILABLE, "the backup of %s failed: %s", svc.Name, lastLine(errb.String()))
	}
	fmt.Fprintf(out, "-----> Backup of %s done: %s\n", svc.Name, p.String())
	return nil
}

// Restore implements skiff.ServiceManager. PostgreSQL's happens in one
// transaction (pg_restore --single-transaction): a dump that does not
// restore leaves the database as it was. Redis's replaces the data while
// the server is stopped, keeping the old data until the new one loads.
func (m *Manager) Restore(ctx context.Context, svc *skiff.Service, r io.Reader, out io.Writer) error {
	if err := m.checkFree(); err != nil {
		return err
	}
	unlock := m.lock(svc.ID)
	defer unlock()
	fmt.Fprintf(out, "-----> Restoring %s %s\n", svc.Kind, svc.Name)
	p := newProgress(out)
	defer p.stop()
	in := io.TeeReader(r, p)
	if svc.Kind == skiff.ServiceRedis {
		return m.restoreRedis(ctx, svc, in, p, out)
	}
	var errb limitedBuffer
	code, err := m.exec(ctx, svc, &skiff.RunRequest{Stdin: in, Stdout: &errb, Stderr: &errb,
		Args: []string{"pg_restore", "-U", "postgres", "-d", svc.Database(), "--role=" + svc.User(), "--no-owner", "--no-acl",
			"--clean", "--if-exists", "--single-transaction", "--exit-on-error"}})
	p.stop()
	if err != nil {
		return err
	}
	if code != 0 {
		return skiff.Errorf(skiff.EINVALID, "the restore of %s failed and changed nothing: %s", svc.Name, lastLine(errb.String()))
	}
	fmt.Fprintf(out, "-----> Restored %s: %s\n", svc.Name, p.String())
	return nil
}

func (m *Manager) restoreRedis(ctx context.Context, svc *skiff.Service, in io.Reader, p *progress, out io.Writer) error {
	uid, gid, err := m.hostIDs(svc)
	if err != nil {
		return err
	}
	vol := m.volume(svc)
	upload := filepath.Join(vol, "upload.rdb")
	f, err := os.OpenFile(upload, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(upload)
	_, err = io.Copy(f, in)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	p.stop()
	if err != nil {
		return fmt.Errorf("receive the dump: %w", err)
	}
	if err := os.Chown(upload, uid, gid); err != nil {
		return err
	}
	// Checked by the running server's image, in its container.
	if out, err := m.output(ctx, svc, nil, nil, "redis-check-rdb", dataDir+"/upload.rdb"); err != nil {
		if skiff.ErrorCode(err) != skiff.EINTERNAL {
			return err
		}
		return skiff.Errorf(skiff.EINVALID, "that is not a Redis dump (%s); %s is unchanged", lastLine(out), svc.Name)
	}
	fmt.Fprintf(out, "       stopping %s to swap its data\n", svc.Name)
	if err := m.stopServer(ctx, svc); err != nil {
		return err
	}
	data, old := filepath.Join(vol, "data"), filepath.Join(vol, "data.old")
	os.RemoveAll(old)
	if err := os.Rename(data, old); err != nil {
		return err
	}
	put := func() error {
		if err := os.Mkdir(data, 0o700); err != nil {
			return err
		}
		if err := os.Chown(data, uid, gid); err != nil {
			return err
		}
		return os.Rename(upload, filepath.Join(data, "dump.rdb"))
	}
	err = put()
	if err == nil {
		err = m.loadDump(ctx, svc)
	}
	if err != nil {
		bg := context.WithoutCancel(ctx)
		if serr := m.stopServer(bg, svc); serr != nil {
			m.log.Error("stop after a failed restore", "service", svc.Name, "err", serr)
		}
		os.RemoveAll(data)
		if rerr := os.Rename(old, data); rerr != nil {
			m.log.Error("put the old data back after a failed restore", "service", svc.Name, "old", old, "err", rerr)
			return fmt.Errorf("%w; the old data could not be put back: it is in %s", err, old)
		}
		if serr := m.start(bg, svc); serr != nil {
			m.log.Error("start after a failed restore", "service", svc.Name, "err", serr)
			return fmt.Errorf("%w (the old data is back, but the server did not start again: %s restart it)", err, svc.Name)
		}
		return fmt.Errorf("%w (the old data is back)", err)
	}
	os.RemoveAll(old)
	fmt.Fprintf(out, "-----> Restored %s: %s\n", svc.Name, p.String())
	return nil
}

// loadDump starts Redis on the dump.rdb that a restore put in place of its
// data. A Redis with appendonly on loads its append-only file at start and
// never dump.rdb (with no such file, it starts empty), so it starts with
// appendonly off, loads the dump, then turns appendonly on, which writes
// the append-only file from the loaded data; the restore is done when that
// is written, and the next start reads it.
func (m *Manager) loadDump(ctx context.Context, svc *skiff.Service) error {
	if err := m.mountDisk(ctx, svc); err != nil {
		return err
	}
	conf := strings.Replace(redisConfig(svc), "\nappendonly yes\n", "\nappendonly no\n", 1)
	if err := m.writeOwned(svc, "redis.conf", []byte(conf)); err != nil {
		return err
	}
	if _, err := m.cfg.Runtime.Start(ctx, m.spec(svc)); err != nil {
		return err
	}
	if err := m.waitReady(ctx, svc); err != nil {
		return err
	}
	auth := map[string]string{"REDISCLI_AUTH": svc.Password}
	cli := func(args ...string) (string, error) {
		return m.output(ctx, svc, auth, nil, append([]string{"redis-cli", "-p", fmt.Sprint(svc.Port)}, args...)...)
	}
	if out, err := cli("CONFIG", "SET", "appendonly", "yes"); err != nil || !strings.Contains(out, "OK") {
		return fmt.Errorf("turn appendonly on after loading the dump: %v %s", err, lastLine(out))
	}
	deadline := time.Now().Add(m.cfg.ReadyTimeout)
	for {
		info, err := cli("INFO", "persistence")
		if err == nil && strings.Contains(info, "aof_enabled:1") && strings.Contains(info, "aof_rewrite_in_progress:0") &&
			strings.Contains(info, "aof_rewrite_scheduled:0") && strings.Contains(info, "aof_last_bgrewrite_status:ok") {
			break
		}
		if time.Now().After(deadline) {
			return skiff.Errorf(skiff.EUNAVAILABLE, "%s loaded the dump but did not write its append-only file within %s; `%s:logs %s` has its output", svc.Name, m.cfg.ReadyTimeout, svc.Kind, svc.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The next start reads the append-only file.
	return m.writeOwned(svc, "redis.conf", []byte(redisConfig(svc)))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// progress counts the bytes of a stream and reports them on out about
// once a second, in the push output's detail style.
type progress struct {
	out   io.Writer
	n     atomic.Int64
	start time.Time
	once  sync.Once
	done  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(out io.Writer) *progress {
	p := &progress{out: out, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				if n := p.n.Load(); n != last {
					last = n
					fmt.Fprintf(p.out, "       %s\n", p)
				}
			}
		}
	}()
	return p
}

func (p *progress) Write(b []byte) (int, error) {
	p.n.Add(int64(len(b)))
	return len(b), nil
}

func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

func (p *progress) String() string {
	return fmt.Sprintf("%s in %.1fs", formatBytes(p.n.Load()), time.Since(p.start).Seconds())
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Stored backups are DATA/services/backups/<id>/<time>.<ext>, 0600.
var backupNameRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z\.(dump|rdb)$`)

func backupExt(svc *skiff.Service) string {
	if svc.Kind == skiff.ServiceRedis {
		return ".rdb"
	}
	return ".dump"
}

// Backups implements skiff.ServiceManager, newest first.
func (m *Manager) Backups(ctx context.Context, svc *skiff.Service) ([]*skiff.Backup, error) {
	ents, err := os.ReadDir(m.backupDir(svc))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var out []*skiff.Backup
	for _, e := range ents {
		if !backupNameRE.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		t, _ := time.Parse("20060102T150405Z", strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".dump"), ".rdb"))
		out = append(out, &skiff.Backup{Name: e.Name(), Size: fi.Size(), CreatedAt: t})
	}
	slices.SortFunc(out, func(a, b *skiff.Backup) int { return strings.Compare(b.Name, a.Name) })
	return out, nil
}

// OpenBackup implements skiff.ServiceManager.
func (m *Manager) OpenBackup(ctx context.Context, svc *skiff.Service, name string) (io.ReadCloser, error) {
	if !backupNameRE.MatchString(name) {
		return nil, skiff.Errorf(skiff.EINVALID, "%q is not a backup name; %s:backups %s lists them", name, svc.Kind, svc.Name)
	}
	f, err := os.Open(filepath.Join(m.backupDir(svc), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "%s has no backup %s; %s:backups %s lists them", svc.Name, name, svc.Kind, svc.Name)
	}
	return f, err
}

// SetBackupSchedule implements skiff.ServiceManager.
func (m *Manager) SetBackupSchedule(ctx context.Context, svc *skiff.Service, schedule string, keep int) error {
	if schedule == "" {
		return m.cfg.Store.SetBackupSchedule(ctx, svc.ID, nil)
	}
	if _, err := skiff.ParseSchedule(schedule); err != nil {
		return err
	}
	if keep < 1 || keep > 1000 {
		return skiff.Errorf(skiff.EINVALID, "--keep takes a number of backups from 1 to 1000")
	}
	// The schedule starts from now: nothing is due at once.
	return m.cfg.Store.SetBackupSchedule(ctx, svc.ID, &skiff.BackupSchedule{ServiceID: svc.ID, Schedule: schedule, Keep: keep, LastRun: time.Now().UTC()})
}

// runSchedules takes the scheduled backups until Close. A backup missed
// while no daemon ran is taken once at the next start (LastRun is stored,
// so a restart neither loses nor doubles one).
func (m *Manager) runSchedules() {
	t := time.NewTicker(20 * time.Second)
	defer t.Stop()
	for {
		m.scheduledBackups(context.Background(), time.Now().UTC())
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// scheduledBackups takes each backup that is due at now.
func (m *Manager) scheduledBackups(ctx context.Context, now time.Time) {
	schedules, err := m.cfg.Store.BackupSchedules(ctx)
	if err != nil {
		m.log.Error("backup schedules", "err", err)
		return
	}
	for _, sch := range schedules {
		c, err := skiff.ParseSchedule(sch.Schedule)
		if err != nil {
			continue
		}
		if next := c.Next(sch.LastRun, time.UTC); next.IsZero() || next.After(now) {
			continue
		}
		svc, err := m.cfg.Store.FindServiceByID(ctx, sch.ServiceID)
		if err != nil {
			continue
		}
		// A server that does not answer yet (the host rebooted and it is
		// starting, or it crashed and waits for its restart) is backed up
		// once it does: the due backup waits, and is not lost.
		if !m.answers(ctx, svc) {
			continue
		}
		sch.LastRun = now
		if err := m.cfg.Store.SetBackupSchedule(ctx, svc.ID, sch); err != nil {
			m.log.Error("record a scheduled backup", "service", svc.Name, "err", err)
			continue
		}
		if err := m.storeBackup(ctx, svc, now, sch.Keep); err != nil {
			m.log.Error("scheduled backup", "service", svc.Name, "err", err)
			m.cfg.Runtime.AppLog(svc.ID, "backup", "Scheduled backup failed: "+skiff.ErrorMessage(err))
		}
	}
}

// storeBackup takes a backup into the service's backup directory, then
// removes the oldest beyond keep.
func (m *Manager) storeBackup(ctx context.Context, svc *skiff.Service, now time.Time, keep int) error {
	if err := m.checkFree(); err != nil {
		return err
	}
	dir := m.backupDir(svc)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Backups are taken one at a time (runSchedules): a partial file
	// here is what a daemon killed mid-backup left.
	if err := removePartials(dir); err != nil {
		return err
	}
	name := now.UTC().Format("20060102T150405Z") + backupExt(svc)
	tmp, err := os.CreateTemp(dir, partialPrefix)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	var log limitedBuffer
	err = m.Backup(ctx, svc, tmp, &log)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	m.cfg.Runtime.AppLog(svc.ID, "backup", "Stored backup "+name)
	list, err := m.Backups(ctx, svc)
	if err != nil {
		return err
	}
	for i, b := range list {
		if i >= keep {
			os.Remove(filepath.Join(dir, b.Name))
		}
	}
	return nil
}

// partialPrefix starts the name of a backup being written; it is renamed
// to the backup's name once whole.
const partialPrefix = ".partial-"

// removePartials removes the partial backups in dir: what backups a daemon
// killed mid-write left (the deferred removal never ran). Only call it
// where no backup is being written to dir.
func removePartials(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), partialPrefix) && e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeAllPartials removes the partial backups of every service, at
// start, before any backup runs.
func (m *Manager) removeAllPartials() error {
	root := filepath.Join(m.cfg.DataDir, "backups")
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removePartials(filepath.Join(root, e.Name())))
		}
	}
	return errors.Join(errs...)
}

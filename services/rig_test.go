package services

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/deploy"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
	"github.com/skiffhq/skiff/volume"
)

// These tests run the manager over a real store, a real deploy pipeline
// (the owner of the storage budget) and real directory volumes. What a
// create past the budget must never reach (the image maker, the network)
// fails the test if it is reached, or stops a create that got past the
// budget there; the servers themselves run in e2e's TestServices.

// rig is a manager, its pipeline and their store.
type rig struct {
	ctx    context.Context
	db     *store.DB
	p      *deploy.Pipeline
	vols   *volume.Store
	sched  *skifftest.Scheduler
	images *noImages
	cfg    Config
	dir    string // the volumes' directory
}

func newRig(t *testing.T, budget int64) *rig {
	t.Helper()
	ctx := skiff.WithActor(context.Background(), &skiff.Actor{Name: "alice"})
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := filepath.Join(t.TempDir(), "volumes")
	vols, err := volume.New(volume.Config{Dir: dir, Directories: true})
	if err != nil {
		t.Fatal(err)
	}
	images := skifftest.NewImages()
	images.Add(&skifftest.Image{Digest: "sha256:svc", ProcessTypes: map[string]string{skiff.ServicePostgres: "sleep 600", skiff.ServiceRedis: "sleep 600"}})
	sched := skifftest.NewHost(images, t.TempDir()).Scheduler(skifftest.Config{Grace: time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	t.Cleanup(func() {
		ins, _ := sched.Instances(context.Background(), "")
		for _, in := range ins {
			sched.Stop(context.Background(), in.ID, time.Second)
		}
		sched.Close()
	})
	p := deploy.New(deploy.Config{Store: db, Scheduler: sched, Volumes: vols, BaseDomain: "skiff.test",
		StorageBudget: budget, VolumeSize: 1 << 30, ReadyTimeout: 10 * time.Second, StopGrace: time.Second})
	r := &rig{ctx: ctx, db: db, p: p, vols: vols, sched: sched, images: &noImages{}, dir: dir}
	r.cfg = Config{DataDir: filepath.Join(t.TempDir(), "services"), Store: db, Apps: db, Config: db, Deployer: p,
		Runtime: schedulerOnly{sched}, Network: noNetwork{}, Images: r.images, Volumes: vols, VolumeStore: db, MinFreeBytes: 1}
	return r
}

func (r *rig) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(r.ctx, r.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// noImages makes no service image: a create that gets past the budget
// stops here, as one whose image cannot be made does.
type noImages struct{ calls int }

func (n *noImages) CreateDebianImages(context.Context, *skiff.DebianImageRequest, io.Writer) (*skiff.DebianImages, error) {
	n.calls++
	return nil, skiff.Errorf(skiff.EUNAVAILABLE, "this test makes no service images")
}

// schedulerOnly is the fake scheduler, without exec (nothing here runs a
// server).
type schedulerOnly struct{ *skifftest.Scheduler }

func (schedulerOnly) Exec(context.Context, string, *skiff.RunRequest) (int, error) {
	return 0, errors.New("exec: no server runs in this test")
}

// noNetwork has no links, and refuses to make any.
type noNetwork struct{}

func (noNetwork) ServicePool() netip.Prefix { return netip.MustParsePrefix("10.239.240.0/24") }
func (noNetwork) Link(container.LinkRule) error {
	return errors.New("link: no network in this test")
}
func (noNetwork) Unlink(container.LinkRule) error      { return nil }
func (noNetwork) Links() ([]container.LinkRule, error) { return nil, nil }

// leftovers lists what a create left: volume records, service records,
// files of the services' data directory and volumes.
func (r *rig) leftovers(t *testing.T, name string) []string {
	t.Helper()
	var left []string
	if _, err := r.db.FindVolume(r.ctx, volumeName(name)); err == nil {
		left = append(left, "volume record "+volumeName(name))
	}
	if _, err := r.db.FindService(r.ctx, name); err == nil {
		left = append(left, "service record "+name)
	}
	for _, d := range []string{filepath.Join(r.cfg.DataDir, "disks"), r.dir} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			left = append(left, filepath.Join(d, e.Name()))
		}
	}
	return left
}

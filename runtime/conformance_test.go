package runtime_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/skifftest"
)

// TestSchedulerConformance runs the scheduler suite that the in-memory
// fake passes too, against runc containers (as root).
func TestSchedulerConformance(t *testing.T) {
	skifftest.TestScheduler(t, func(t *testing.T) *skifftest.SchedulerFixture {
		f := newFixture(t)
		vols := filepath.Join(f.cfg.DataDir, "volumes")
		f.cfg.VolumePath = func(id string) (string, error) { return filepath.Join(vols, id), nil }
		rt := f.open(t)
		current := rt
		t.Cleanup(func() { stopAll(t, current) })
		fx := &skifftest.SchedulerFixture{Scheduler: rt, Image: f.image}
		fx.Volume = func() string {
			os.MkdirAll(filepath.Join(vols, "vol-0123456789abcdef"), 0o700)
			return "vol-0123456789abcdef"
		}
		fx.Restart = func(down time.Duration) skiff.Scheduler {
			current.Close()
			time.Sleep(down)
			current = f.open(t)
			fx.Scheduler = current
			return current
		}
		return fx
	})
}

var _ skiff.Scheduler = (*runtime.Runtime)(nil)

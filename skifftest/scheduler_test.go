package skifftest_test

import (
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/skifftest"
)

func TestSchedulerConformance(t *testing.T) {
	skifftest.TestScheduler(t, func(t *testing.T) *skifftest.SchedulerFixture {
		images := skifftest.NewImages()
		images.Add(&skifftest.Image{Digest: "sha256:probe", ProcessTypes: map[string]string{"web": "serve", "worker": "serve", "run": "serve"}})
		host := skifftest.NewHost(images, t.TempDir())
		t.Cleanup(host.Close)
		cfg := skifftest.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 800 * time.Millisecond, Grace: 2 * time.Second}
		fx := &skifftest.SchedulerFixture{Scheduler: host.Scheduler(cfg), Image: "sha256:probe"}
		fx.Volume = func() string {
			host.AddVolume("vol-0123456789abcdef")
			return "vol-0123456789abcdef"
		}
		fx.Restart = func(down time.Duration) skiff.Scheduler {
			fx.Scheduler.(*skifftest.Scheduler).Close()
			time.Sleep(down)
			fx.Scheduler = host.Scheduler(cfg)
			return fx.Scheduler
		}
		return fx
	})
}

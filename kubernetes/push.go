package kubernetes

import (
	"context"
	"sync"

	"github.com/skiffhq/skiff"
)

// A cluster whose nodes pull from an external registry gets each image
// pushed there first (SchedulerConfig.Push): by deploy before a release
// (with the push's progress), and by the Scheduler itself before it runs
// an image it has not seen pushed (a rollback to an older release, a run
// of one). A push that fails fails what needed it.

// pushes remembers the images pushed by this Scheduler (it is reopened
// when the cluster's registry changes).
type pushes struct {
	mu   sync.Mutex
	done map[string]bool // app name + "@" + digest
}

// PushImage implements skiff.ImagePusher.
func (s *Scheduler) PushImage(ctx context.Context, spec *skiff.InstanceSpec, progress func(string)) error {
	if s.cfg.Push == nil {
		return nil
	}
	key := spec.AppName + "@" + spec.Image
	s.pushed.mu.Lock()
	done := s.pushed.done[key]
	s.pushed.mu.Unlock()
	if done {
		return nil
	}
	if err := s.cfg.Push(ctx, spec, progress); err != nil {
		return err
	}
	s.pushed.mu.Lock()
	if s.pushed.done == nil {
		s.pushed.done = map[string]bool{}
	}
	s.pushed.done[key] = true
	s.pushed.mu.Unlock()
	return nil
}

var _ skiff.ImagePusher = (*Scheduler)(nil)

package kubernetes

import (
	"bufio"
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// watch follows the instance pods until ctx ends: it logs each process's
// exit and state change, and copies each container's output into the log
// once.
func (s *Scheduler) watch(ctx context.Context) {
	defer close(s.done)
	for {
		if pods, err := s.list(ctx, ""); err == nil {
			live := map[string]bool{}
			for i := range pods {
				id := pods[i].Namespace + "/" + pods[i].Name
				live[id] = true
				s.observe(ctx, &pods[i])
			}
			s.mu.Lock()
			for id, p := range s.seen {
				if !live[id] {
					if p.follow != nil {
						p.follow()
					}
					delete(s.seen, id)
				}
			}
			s.mu.Unlock()
		} else if ctx.Err() == nil {
			s.cfg.Log.Warn("kubernetes: list pods", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Poll):
		}
	}
}

// observe compares a pod with what was seen of it before.
func (s *Scheduler) observe(ctx context.Context, p *corev1.Pod) {
	s.observing.Lock()
	defer s.observing.Unlock()
	in := instance(p)
	id := in.ID
	s.mu.Lock()
	seen := s.seen[id]
	first := seen == nil
	if first {
		seen = &podSeen{state: in.State, restarts: -1}
		s.seen[id] = seen
	}
	s.mu.Unlock()
	if len(p.Status.ContainerStatuses) == 0 {
		return
	}
	cs := p.Status.ContainerStatuses[0]
	name := in.Spec.Name()
	app := in.Spec.AppID
	// A restart count that grew, or a container that ended: the process
	// exited (seen late after a daemon restart, it still counts).
	ended := cs.State.Terminated != nil
	if !first && (cs.RestartCount > seen.restarts && seen.restarts >= 0 || ended && seen.state != in.State) {
		t := cs.LastTerminationState.Terminated
		if ended {
			t = cs.State.Terminated
		}
		if t != nil {
			s.AppLog(app, name, "Process "+exitText(t))
			to := skiff.InstanceCrashed
			if in.Spec.OneOff {
				to = skiff.InstanceExited
			}
			s.AppLog(app, name, "State changed from up to "+string(to))
		}
	}
	// A process that came up: after a start, or after a crash. One that
	// was up before this Scheduler began is no news.
	if in.State == skiff.InstanceUp && seen.state != skiff.InstanceUp || first && in.State == skiff.InstanceUp && in.StartedAt.After(s.started.Add(-2*time.Second)) {
		from := seen.state
		if first {
			from = skiff.InstanceStarting
		}
		s.AppLog(app, name, "State changed from "+string(from)+" to up")
	}
	seen.restarts, seen.state = cs.RestartCount, in.State

	// Copy the current container's output, once per container.
	if cs.ContainerID != "" && cs.ContainerID != seen.container && (cs.State.Running != nil || cs.State.Terminated != nil) {
		if seen.follow != nil {
			seen.follow()
		}
		fctx, cancel := context.WithCancel(ctx)
		seen.container, seen.follow = cs.ContainerID, cancel
		go s.copyOutput(fctx, p.Namespace, p.Name, app, name)
	}
}

// copyOutput follows a pod's current container's output into the log,
// skipping what the log already has (a Scheduler that restarted).
func (s *Scheduler) copyOutput(ctx context.Context, ns, pod, appID, process string) {
	var last time.Time
	_ = s.cfg.Logs.Query(ctx, skiff.LogQuery{AppID: appID, Process: process, Lines: 1}, func(l skiff.LogLine) error {
		if l.Source == "app" {
			last = l.Time
		}
		return nil
	})
	req := s.cfg.Client.Typed.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Follow: true, Timestamps: true})
	rc, err := req.Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.cfg.Log.Debug("kubernetes: follow logs", "pod", pod, "err", err)
		}
		return
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ts, text, _ := strings.Cut(sc.Text(), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t, text = time.Now(), sc.Text()
		}
		if !t.After(last) {
			continue
		}
		s.cfg.Logs.Write(appID, skiff.LogLine{Time: t, Source: "app", Process: process, Text: applog.CleanText([]byte(text))})
	}
}

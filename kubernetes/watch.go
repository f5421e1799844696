package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
)

// watch follows the instance pods until ctx ends: it logs each process's
// exit and state change, and copies each container's output into the log
// once.
func (s *Scheduler) watch(ctx context.Context) {
	defer s.wg.Done()
	for {
		if pods, err := s.list(ctx, ""); err == nil {
			s.number(ctx, pods)
			live := map[string]bool{}
			for i := range pods {
				id := s.id(pods[i].Namespace, pods[i].Name)
				live[id] = true
				s.observe(ctx, &pods[i])
				s.cronEnded(ctx, &pods[i])
			}
			s.mu.Lock()
			uids := liveUIDs(pods)
			for uid := range s.reported {
				if !uids[uid] {
					delete(s.reported, uid)
				}
			}
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
	if p.Labels[LabelAttached] == "true" {
		return // a run's output and end go to its caller (Run)
	}
	s.observing.Lock()
	defer s.observing.Unlock()
	in := s.instance(p)
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
// skipping what the log already has (a Scheduler that restarted): lines up
// to the process's last app line, compared at the log's precision (a
// microsecond; the cluster's timestamps have nanoseconds), looked for among
// its recent lines (the very last may be a platform line, such as a state
// change).
func (s *Scheduler) copyOutput(ctx context.Context, ns, pod, appID, process string) {
	var last time.Time
	_ = s.cfg.Logs.Query(ctx, skiff.LogQuery{AppID: appID, Process: process, Lines: 500}, func(l skiff.LogLine) error {
		if l.Source == "app" && l.Time.After(last) {
			last = l.Time
		}
		return nil
	})
	last = last.Truncate(time.Microsecond)
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
		if !t.Truncate(time.Microsecond).After(last) {
			continue
		}
		s.cfg.Logs.Write(appID, skiff.LogLine{Time: t, Source: "app", Process: process, Text: applog.CleanText([]byte(text))})
	}
}

// number gives each pod of a Deployment or a CronJob that has none the
// lowest index its process type has free (web.1, web.2 …), kept in an
// annotation so that ps and the log name it alike, across restarts of
// skiff too. A pod that is stopping frees its index, as a dyno's does on
// Heroku: its replacement is web.1 again.
func (s *Scheduler) number(ctx context.Context, pods []corev1.Pod) {
	used := map[string]map[int]bool{} // by app and process type
	key := func(p *corev1.Pod) string { return p.Labels[LabelAppID] + "/" + p.Labels[LabelProcess] }
	for i := range pods {
		p := &pods[i]
		if _, started := p.Labels[LabelIndex]; started || p.DeletionTimestamp != nil {
			continue
		}
		if n, err := strconv.Atoi(p.Annotations[AnnotationIndex]); err == nil {
			if used[key(p)] == nil {
				used[key(p)] = map[int]bool{}
			}
			used[key(p)][n] = true
		}
	}
	for i := range pods {
		p := &pods[i]
		if _, started := p.Labels[LabelIndex]; started || p.Annotations[AnnotationIndex] != "" {
			continue
		}
		if used[key(p)] == nil {
			used[key(p)] = map[int]bool{}
		}
		n := 1
		for used[key(p)][n] {
			n++
		}
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, AnnotationIndex, strconv.Itoa(n))
		if _, err := s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager}); err != nil {
			if ctx.Err() == nil && !IsNotFound(err) {
				s.cfg.Log.Warn("kubernetes: number a pod", "pod", p.Name, "err", err)
			}
			continue
		}
		used[key(p)][n] = true
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[AnnotationIndex] = strconv.Itoa(n)
	}
}

func liveUIDs(pods []corev1.Pod) map[types.UID]bool {
	out := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		out[p.UID] = true
	}
	return out
}

// watchEndpoints tells OnBackends of every change to the EndpointSlices
// of skiff's web Services (a pod became ready, or is going), and of every
// app that has some after each (re)list.
func (s *Scheduler) watchEndpoints(ctx context.Context) {
	defer s.wg.Done()
	sel := LabelManagedBy + "=" + ManagedBy + "," + LabelProcess + "=web"
	slices := s.cfg.Client.Typed.DiscoveryV1().EndpointSlices(s.cfg.Where.Namespace)
	for ctx.Err() == nil {
		list, err := slices.List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			if ctx.Err() == nil {
				s.cfg.Log.Warn("kubernetes: list endpoint slices", "err", err)
			}
			sleep(ctx, 2*time.Second)
			continue
		}
		apps := map[string]bool{}
		for _, sl := range list.Items {
			apps[sl.Labels[LabelAppID]] = true
		}
		for a := range apps {
			s.cfg.OnBackends(a)
		}
		w, err := slices.Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			sleep(ctx, 2*time.Second)
			continue
		}
		for ev := range w.ResultChan() {
			if sl, ok := ev.Object.(*discoveryv1.EndpointSlice); ok && sl.Labels[LabelAppID] != "" {
				s.cfg.OnBackends(sl.Labels[LabelAppID])
			}
		}
		w.Stop()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// CronRun is a run of one of an app's CronJobs that ended.
type CronRun struct {
	AppID       string
	JobID       string // skiff's cron job id
	Release     int
	Job         string // the Job's name on the cluster
	ScheduledAt time.Time
	StartedAt   time.Time
	FinishedAt  time.Time
	ExitCode    int    // -1 when the process did not end by itself
	Reason      string // how it ended otherwise (DeadlineExceeded …)
	Output      []byte // its last 64 KiB
}

// cronEnded tells OnCronRun, once, of a CronJob's pod whose process ended.
func (s *Scheduler) cronEnded(ctx context.Context, p *corev1.Pod) {
	jobID := p.Labels[LabelCronJob]
	if s.cfg.OnCronRun == nil || jobID == "" || (p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed) {
		return
	}
	s.mu.Lock()
	done := s.reported[p.UID]
	if s.reported == nil {
		s.reported = map[types.UID]bool{}
	}
	s.reported[p.UID] = true
	s.mu.Unlock()
	if done {
		return
	}
	run := &CronRun{AppID: p.Labels[LabelAppID], JobID: jobID, ExitCode: -1, Reason: p.Status.Reason, StartedAt: p.CreationTimestamp.Time}
	run.Release, _ = strconv.Atoi(p.Labels[LabelRelease])
	for _, o := range p.OwnerReferences {
		if o.Kind == "Job" {
			run.Job = o.Name
			if job, err := s.cfg.Client.Typed.BatchV1().Jobs(p.Namespace).Get(ctx, o.Name, metav1.GetOptions{}); err == nil {
				if t, err := time.Parse(time.RFC3339, job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]); err == nil {
					run.ScheduledAt = t
				}
			}
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			run.ExitCode, run.StartedAt, run.FinishedAt = int(t.ExitCode), t.StartedAt.Time, t.FinishedAt.Time
			if t.Reason != "" && t.Reason != "Completed" && t.Reason != "Error" {
				run.Reason = t.Reason
			}
		}
	}
	if run.FinishedAt.IsZero() {
		run.FinishedAt = time.Now()
	}
	tail := int64(2000)
	if rc, err := s.cfg.Client.Typed.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: containerName, TailLines: &tail}).Stream(ctx); err == nil {
		out, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if len(out) > 64<<10 {
			out = out[len(out)-64<<10:]
		}
		run.Output = out
	}
	s.cfg.OnCronRun(run)
}

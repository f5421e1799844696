package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffhq/skiff"
)

// Waiting reasons that do not go away by waiting: a rollout that meets one
// fails at once, with the pod's own words.
var hopeless = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CrashLoopBackOff": true, "CreateContainerConfigError": true, "CreateContainerError": true,
	"ErrImageNeverPull": true, "RunContainerError": true,
}

// pullPatience is how long a pod may fail to pull its image before the
// wait gives up. A first failure can pass: the kubelet waits only a second
// for its cache of the pull secret just applied and, on a loaded node,
// pulls without it (401); a registry blips. The kubelet retries after 10 s
// and again 20 s later, so this sees at least one retry.
const pullPatience = 25 * time.Second

// pulling are the waiting reasons of an image pull that failed.
var pulling = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true}

// cacheNotSynced reports a container the kubelet could not configure
// because its cache of the pod's secrets had not caught up yet ("failed to
// sync secret cache: timed out waiting for the condition", seen on a
// loaded node): it passes like a first failed pull, and gets the same
// patience. A secret that is missing is hopeless at once.
func cacheNotSynced(w *corev1.ContainerStateWaiting) bool {
	return w.Reason == "CreateContainerConfigError" && strings.Contains(w.Message, "failed to sync")
}

// pullFailures are when each container (pod/container) began to fail to
// pull its image.
type pullFailures map[string]time.Time

// hopeless reports whether a container waiting with w ends the wait now:
// a reason that waiting does not cure, or an image pull that failed for
// pullPatience. A nil w (the container runs or ended) is not.
func (f pullFailures) hopeless(key string, w *corev1.ContainerStateWaiting) bool {
	if w == nil || !pulling[w.Reason] && !cacheNotSynced(w) {
		delete(f, key)
		return w != nil && hopeless[w.Reason]
	}
	first, ok := f[key]
	if !ok {
		f[key] = time.Now()
		return false
	}
	return time.Since(first) >= pullPatience
}

// unschedulableFor is how long pods may stay unschedulable before the
// rollout gives up (a cluster autoscaler may add a node meanwhile).
const unschedulableFor = 90 * time.Second

// RolloutError is a rollout that failed: the reason a user can act on, and
// the pod it comes from.
type RolloutError struct {
	Process string
	Pod     string
	Reason  string // ErrImagePull, CrashLoopBackOff, Unschedulable, ProgressDeadlineExceeded …
	Message string
}

func (e *RolloutError) Error() string {
	where := e.Process
	if e.Pod != "" {
		where += " (pod " + e.Pod + ")"
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Reason, e.Message)
}

// WaitRollout follows the rollout of m until every Deployment's new pods are
// all ready and no old one is left, or it fails: a pod meets a reason that
// waiting does not cure, pods stay unschedulable, a Deployment passes its
// progress deadline, or ctx ends. It calls progress with one line for each
// step it sees (pods scheduled, pulling, started, ready; the events'
// reasons). The error is a *RolloutError where the cluster said why.
func (c *Client) WaitRollout(ctx context.Context, r *Release, m *Manifest, progress func(string)) error {
	seen := map[string]bool{}
	say := func(key, line string) {
		if !seen[key] {
			seen[key] = true
			progress(line)
		}
	}
	since := time.Now().Add(-2 * time.Second)
	unschedulable := map[string]time.Time{}
	pulls := pullFailures{}
	ns := r.Namespace
	version := strconv.Itoa(r.Version)
	for {
		done := true
		for _, want := range m.Deployments {
			d, err := c.Typed.AppsV1().Deployments(ns).Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("rollout of %s: %w", want.Name, err)
			}
			process := want.Labels[LabelProcess]
			if cond := condition(d, appsv1.DeploymentProgressing); cond != nil && cond.Reason == "ProgressDeadlineExceeded" {
				return &RolloutError{Process: process, Reason: "ProgressDeadlineExceeded", Message: cond.Message}
			}
			if cond := condition(d, appsv1.DeploymentReplicaFailure); cond != nil && cond.Status == corev1.ConditionTrue {
				return &RolloutError{Process: process, Reason: cond.Reason, Message: cond.Message}
			}
			wantN := *want.Spec.Replicas
			st := d.Status
			if !rolledOut(d, wantN) {
				done = false
			}
			say(fmt.Sprintf("%s %d %d %d", process, st.UpdatedReplicas, st.ReadyReplicas, st.Replicas),
				fmt.Sprintf("%s: %d of %d new pods ready (%d pods in all)", process, min(st.UpdatedReplicas, st.ReadyReplicas), wantN, st.Replicas))
		}
		// The new pods, and what happens to them.
		sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelAppID: r.AppID, LabelRelease: version}).String()
		pods, err := c.Typed.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return fmt.Errorf("rollout: list pods: %w", err)
		}
		names := map[string]string{}
		for _, p := range pods.Items {
			process := p.Labels[LabelProcess]
			names[p.Name] = process
			if p.Spec.NodeName != "" {
				say("sched "+p.Name, fmt.Sprintf("%s: pod %s scheduled on %s", process, p.Name, p.Spec.NodeName))
				delete(unschedulable, p.Name)
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
					say("unsched "+p.Name+cond.Message, fmt.Sprintf("%s: pod %s cannot be scheduled: %s", process, p.Name, cond.Message))
					first, ok := unschedulable[p.Name]
					if !ok {
						unschedulable[p.Name] = time.Now()
					} else if time.Since(first) > unschedulableFor {
						return &RolloutError{Process: process, Pod: p.Name, Reason: "Unschedulable", Message: cond.Message}
					}
				}
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					say("ready "+p.Name, fmt.Sprintf("%s: pod %s ready", process, p.Name))
				}
			}
			for _, cs := range p.Status.ContainerStatuses {
				// Restarting again and again is a crash loop, whether or not
				// the kubelet is backing off at this moment.
				if t := cs.LastTerminationState.Terminated; t != nil && cs.RestartCount >= 2 && (cs.State.Waiting == nil || !hopeless[cs.State.Waiting.Reason]) {
					msg := fmt.Sprintf("exited with status %d (%s) after %d restarts", t.ExitCode, t.Reason, cs.RestartCount)
					if t.Message != "" {
						msg += ": " + lastLines(t.Message, 5)
					}
					return &RolloutError{Process: process, Pod: p.Name, Reason: "CrashLoopBackOff", Message: msg}
				}
				w := cs.State.Waiting
				if w != nil && pulling[w.Reason] {
					say("pull "+p.Name+"/"+cs.Name+w.Message, fmt.Sprintf("%s: pod %s: %s: %s (the kubelet retries; the rollout gives up after %s)", process, p.Name, w.Reason, w.Message, pullPatience))
				}
				if pulls.hopeless(p.Name+"/"+cs.Name, w) {
					msg := w.Message
					if t := cs.LastTerminationState.Terminated; t != nil && w.Reason == "CrashLoopBackOff" {
						msg = fmt.Sprintf("exited with status %d (%s) after %d restarts", t.ExitCode, t.Reason, cs.RestartCount)
						if t.Message != "" {
							msg += ": " + lastLines(t.Message, 5)
						}
					}
					return &RolloutError{Process: process, Pod: p.Name, Reason: w.Reason, Message: msg}
				}
			}
		}
		// Events name what the pods wait for (Pulling, Pulled, Started,
		// FailedScheduling, Unhealthy: the probes).
		events, err := c.Typed.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod"})
		if err == nil {
			items := events.Items
			sort.Slice(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
			for _, e := range items {
				process, ours := names[e.InvolvedObject.Name]
				if !ours || eventTime(e).Before(since) {
					continue
				}
				say("event "+string(e.UID)+strconv.Itoa(int(e.Count)), fmt.Sprintf("%s: pod %s: %s: %s", process, e.InvolvedObject.Name, e.Reason, strings.TrimSpace(e.Message)))
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return skiff.Errorf(skiff.EUNAVAILABLE, "the rollout did not finish in time: %v", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// rolledOut reports whether d runs want pods of its current template, all
// of them available, and no other: its rollout is done.
func rolledOut(d *appsv1.Deployment, want int32) bool {
	st := d.Status
	return d.Generation <= st.ObservedGeneration && st.UpdatedReplicas == want &&
		st.Replicas == want && st.AvailableReplicas == want && st.UnavailableReplicas == 0
}

// RolledOut reports whether the rollout of the app's release version is
// done on the cluster: every one of its process types has its Deployment
// at that release, rolled out as WaitRollout waits for (the new pods all
// ready, none of the old left). A daemon that died in the middle of a
// rollout asks it at its restart: the cluster went on with the rollout
// meanwhile, and its state, unlike a check through skiff's router (which
// carries no traffic of an Ingress), tells in every traffic mode whether
// the release took over.
func (s *Scheduler) RolledOut(ctx context.Context, appID string, version int, processTypes []string) (bool, error) {
	if len(processTypes) == 0 {
		return false, nil // nothing to tell it by
	}
	list, err := s.cfg.Client.Typed.AppsV1().Deployments(s.Namespace(appID)).List(ctx, metav1.ListOptions{LabelSelector: AppSelector(appID)})
	if err != nil {
		return false, fmt.Errorf("the rollout of v%d on cluster %s: %w", version, s.cfg.Name, err)
	}
	byType := map[string]*appsv1.Deployment{}
	for i := range list.Items {
		byType[list.Items[i].Labels[LabelProcess]] = &list.Items[i]
	}
	for _, t := range processTypes {
		d := byType[t]
		if d == nil || d.Spec.Replicas == nil || d.Spec.Template.Labels[LabelRelease] != strconv.Itoa(version) || !rolledOut(d, *d.Spec.Replicas) {
			return false, nil
		}
	}
	return true, nil
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

package kubernetes

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"

	"github.com/skiffhq/skiff"
)

// LabelAttached marks the pod of an attached run: its output goes to the
// caller, not into the app's log.
const LabelAttached = "skiff.dev/attached"

// Run runs a one-off process and returns its exit code; nothing of it
// remains afterwards. With a terminal or an input it is a pod attached to
// the request's streams; without (a release command), a Job whose pod's
// output is read from its log. Output that a process writes before the
// attach is established is read from the pod's log too: on stdout and
// stderr apart where the cluster serves the streams apart (the
// PodLogsQuerySplitStreams feature), else both on stdout.
func (s *Scheduler) Run(ctx context.Context, req *skiff.RunRequest) (int, error) {
	if len(req.Args) == 0 {
		return -1, skiff.Errorf(skiff.EINVALID, "run needs a command")
	}
	spec := req.Spec
	spec.Command, spec.OneOff = req.Args, true
	if !skiff.NamedOneOff(&spec) { // a release task keeps release.<version>
		spec.ProcessType = "run"
		spec.Index = int(time.Now().UnixNano()/1e6%9000) + 1000
	}
	r, img, err := s.release(ctx, &spec)
	if err != nil {
		return -1, err
	}
	if req.TTY == nil && req.Stdin == nil {
		return s.runJob(ctx, req, r, img, &spec)
	}
	tty := req.TTY != nil
	if tty {
		sizeTerminal(img, req.TTY)
	}
	pod, err := s.podWith(ctx, r, img, &spec, fmt.Sprintf("%s-%d-%s", spec.ProcessType, spec.Index, suffix()), func(ps *corev1.PodSpec) {
		c := &ps.Containers[0]
		c.Stdin, c.StdinOnce, c.TTY = true, true, tty
		c.ReadinessProbe, c.Ports = nil, nil
	}, attachedLabel)
	if err != nil {
		return -1, err
	}
	id := s.id(pod.Namespace, pod.Name)
	name := spec.Name()
	s.AppLog(spec.AppID, name, "Starting process"+commandNote(spec.Command))
	defer func() {
		bg := context.WithoutCancel(ctx)
		zero := int64(0)
		_ = s.cfg.Client.Typed.CoreV1().Pods(pod.Namespace).Delete(bg, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		s.waitGone(bg, pod.Namespace, metav1.ListOptions{FieldSelector: "metadata.name=" + pod.Name})
		s.forget(id)
	}()
	if err := s.waitStarted(ctx, pod.Namespace, pod.Name); err != nil {
		return -1, err
	}
	out := &counter{w: req.Stdout}
	errOut := &counter{w: req.Stderr}
	streams := *req
	streams.Stdout, streams.Stderr = out, errOut
	if req.Stdout == nil {
		streams.Stdout = nil
	}
	if req.Stderr == nil {
		streams.Stderr = nil
	}
	attached := s.attach(ctx, &streams, pod) == nil
	code, err := s.exitCode(ctx, id)
	if err != nil {
		return -1, err
	}
	if !attached || out.n+errOut.n == 0 {
		// It ended before the attach: its output is in the log.
		stderr := req.Stderr
		if tty {
			stderr = nil
		}
		_ = s.podOutput(ctx, pod.Namespace, pod.Name, false, req.Stdout, stderr)
	}
	s.AppLog(spec.AppID, name, fmt.Sprintf("Process exited with status %d", code))
	return code, nil
}

func attachedLabel(lbl map[string]string) { lbl[LabelAttached] = "true" }

// sizeTerminal puts `stty rows H cols W` before a command the CNB
// launcher runs with its shell, H and W the size of the user's terminal
// when the run began. A pod starts its process before skiff's attach
// reaches it, and the attach's resizes did not reach the terminal of the
// process here (containerd 1.6 on the test bed): without this, the
// command would see a terminal of 0×0. Other commands (an image without
// the launcher) start as they are; without stty in the image it does
// nothing.
func sizeTerminal(img *PodImage, tty *skiff.TTY) {
	if tty.Width <= 0 || tty.Height <= 0 {
		return
	}
	if len(img.Command) == 1 && img.Command[0] == "/cnb/lifecycle/launcher" && len(img.Args) == 1 {
		img.Args = []string{fmt.Sprintf("stty rows %d cols %d 2>/dev/null; ", termDim(tty.Height), termDim(tty.Width)) + img.Args[0]}
	}
}

// runJob runs the one-off as a Job of one pod that is never retried, its
// output followed from the pod's log until it ends. Ending ctx deletes
// it (a release phase that timed out).
func (s *Scheduler) runJob(ctx context.Context, req *skiff.RunRequest, r *Release, img *PodImage, spec *skiff.InstanceSpec) (int, error) {
	name := fmt.Sprintf("%s-%d-%s", spec.ProcessType, spec.Index, suffix())
	tmpl, err := s.template(ctx, r, img, spec, name, func(ps *corev1.PodSpec) {
		ps.Containers[0].ReadinessProbe, ps.Containers[0].Ports = nil, nil
	}, attachedLabel)
	if err != nil {
		return -1, err
	}
	zero, ttl := int32(0), int32(600)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace, Labels: tmpl.Labels},
		Spec:       batchv1.JobSpec{BackoffLimit: &zero, TTLSecondsAfterFinished: &ttl, Template: *tmpl},
	}
	if dl, ok := ctx.Deadline(); ok {
		secs := int64(time.Until(dl).Seconds()) + 1
		job.Spec.ActiveDeadlineSeconds = &secs
	}
	jobs := s.cfg.Client.Typed.BatchV1().Jobs(r.Namespace)
	created, err := jobs.Create(ctx, job, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", spec.Name(), err)
	}
	s.AppLog(spec.AppID, spec.Name(), "Starting process"+commandNote(spec.Command))
	defer func() {
		bg := context.WithoutCancel(ctx)
		// Foreground: the Job stays (and makes no pod) until its pods
		// are gone, so that a pod it was making as the run ended is not
		// missed.
		policy := metav1.DeletePropagationForeground
		_ = jobs.Delete(bg, name, metav1.DeleteOptions{PropagationPolicy: &policy})
		zero := int64(0)
		ofJob := metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name}
		_ = s.cfg.Client.Typed.CoreV1().Pods(r.Namespace).DeleteCollection(bg, metav1.DeleteOptions{GracePeriodSeconds: &zero}, ofJob)
		wctx, cancel := context.WithTimeout(bg, 30*time.Second)
		defer cancel()
		for {
			s.waitGone(wctx, r.Namespace, ofJob)
			if _, err := jobs.Get(wctx, name, metav1.GetOptions{}); err != nil {
				return // gone (or the cluster does not answer: the watcher's sweep is next)
			}
			select {
			case <-wctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	owner := metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID}
	if err := s.envSecret(ctx, r, spec, name, tmpl.Labels, owner); err != nil {
		return -1, err
	}
	var pod string
	for pod == "" {
		pods, err := s.cfg.Client.Typed.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
		if err != nil {
			return -1, fmt.Errorf("%s: %w", spec.Name(), err)
		}
		if len(pods.Items) > 0 {
			pod = pods.Items[0].Name
			break
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := s.waitStarted(ctx, r.Namespace, pod); err != nil {
		return -1, err
	}
	if err := s.podOutput(ctx, r.Namespace, pod, true, req.Stdout, req.Stderr); err != nil && ctx.Err() != nil {
		return -1, ctx.Err()
	}
	code, err := s.exitCode(ctx, s.id(r.Namespace, pod))
	if err != nil {
		return -1, err
	}
	s.AppLog(spec.AppID, spec.Name(), fmt.Sprintf("Process exited with status %d", code))
	return code, nil
}

// waitGone waits (30 s at most) until no pod matches opts, deleting again
// those that appear meanwhile (a Job's pod made while the Job was being
// deleted): a run leaves nothing behind once Run returns.
func (s *Scheduler) waitGone(ctx context.Context, ns string, opts metav1.ListOptions) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pods := s.cfg.Client.Typed.CoreV1().Pods(ns)
	zero := int64(0)
	for {
		list, err := pods.List(ctx, opts)
		if err != nil || len(list.Items) == 0 {
			return
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				_ = pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}
		}
		select {
		case <-ctx.Done():
			s.cfg.Log.Warn("kubernetes: a run's pod is still there", "namespace", ns, "selector", opts.LabelSelector+opts.FieldSelector)
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitStarted waits until the pod's container runs (or already ended); a
// pod that cannot start (its image cannot be pulled, it cannot be
// scheduled) fails with the cluster's reason.
func (s *Scheduler) waitStarted(ctx context.Context, ns, name string) error {
	var unschedulable time.Time
	pulls := pullFailures{}
	for {
		p, err := s.cfg.Client.Typed.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the run's pod: %w", err)
		}
		if in := s.instance(p); in.State == skiff.InstanceUp || in.State == skiff.InstanceExited {
			return nil
		}
		if w := waiting(p); pulls.hopeless(name, w) {
			return skiff.Errorf(skiff.EUNAVAILABLE, "the run could not start: %s: %s", w.Reason, w.Message)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				if unschedulable.IsZero() {
					unschedulable = time.Now()
				} else if time.Since(unschedulable) > unschedulableFor {
					return skiff.Errorf(skiff.EUNAVAILABLE, "the run could not start: Unschedulable: %s", c.Message)
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waiting(p *corev1.Pod) *corev1.ContainerStateWaiting {
	for _, cs := range p.Status.ContainerStatuses {
		return cs.State.Waiting
	}
	return nil
}

// podOutput copies the pod's log to stdout and stderr (following it while
// the container runs, with follow): each stream to its writer where the
// cluster serves them apart, else both to stdout. A nil stderr takes both
// streams on stdout.
func (s *Scheduler) podOutput(ctx context.Context, ns, pod string, follow bool, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	pods := s.cfg.Client.Typed.CoreV1().Pods(ns)
	open := func(stream string) (io.ReadCloser, error) {
		opts := &corev1.PodLogOptions{Container: containerName, Follow: follow}
		if stream != "" {
			opts.Stream = &stream
		}
		return pods.GetLogs(pod, opts).Stream(ctx)
	}
	if stderr != nil {
		outR, err := open(corev1.LogStreamStdout)
		if err == nil {
			errR, err := open(corev1.LogStreamStderr)
			if err != nil {
				outR.Close()
				return err
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = io.Copy(stderr, errR); errR.Close() }()
			_, err = io.Copy(stdout, outR)
			outR.Close()
			wg.Wait()
			return err
		}
		if !SplitStreamsRefused(err) {
			return err
		}
	}
	rc, err := open("")
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(stdout, rc)
	return err
}

// SplitStreamsRefused reports whether a log request failed because the
// cluster does not serve stdout and stderr apart: the API server refuses
// the stream option while the PodLogsQuerySplitStreams feature is off.
func SplitStreamsRefused(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)
}

// attach streams the request to the pod's container until it ends.
func (s *Scheduler) attach(ctx context.Context, req *skiff.RunRequest, pod *corev1.Pod) error {
	tty := req.TTY != nil
	u := s.cfg.Client.Typed.CoreV1().RESTClient().Post().Namespace(pod.Namespace).Resource("pods").Name(pod.Name).
		SubResource("attach").VersionedParams(&corev1.PodAttachOptions{Container: containerName,
		Stdin: req.Stdin != nil, Stdout: req.Stdout != nil, Stderr: !tty && req.Stderr != nil, TTY: tty}, scheme.ParameterCodec).URL()
	ws, err := remotecommand.NewWebSocketExecutor(s.cfg.Client.config, "GET", u.String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(s.cfg.Client.config, "POST", u)
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, httpstream.IsUpgradeFailure)
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Stdin: req.Stdin, Stdout: req.Stdout, Tty: tty}
	if !tty {
		opts.Stderr = req.Stderr
	}
	if tty {
		opts.TerminalSizeQueue = terminalSizes(ctx, req.TTY)
	}
	return exec.StreamWithContext(ctx, opts)
}

// exitCode waits for the one-off's container to end and returns its code.
func (s *Scheduler) exitCode(ctx context.Context, id string) (int, error) {
	for {
		p, err := s.get(ctx, id)
		if err != nil {
			return -1, err
		}
		if in := s.instance(p); in.State == skiff.InstanceExited {
			return in.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// counter counts what passes to w.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// termDim is a terminal's width or height as the attach protocol carries
// it, kept within its 16 bits.
func termDim(n int) uint16 {
	return uint16(min(max(n, 0), 0xffff)) //nolint:gosec // clamped just before
}

// terminalSizes feeds the terminal's size, then each resize, to an attach.
func terminalSizes(ctx context.Context, tty *skiff.TTY) remotecommand.TerminalSizeQueue {
	q := &sizeQueue{ch: make(chan remotecommand.TerminalSize, 1)}
	q.ch <- remotecommand.TerminalSize{Width: termDim(tty.Width), Height: termDim(tty.Height)}
	go func() {
		for {
			select {
			case <-ctx.Done():
				close(q.ch)
				return
			case ws, ok := <-tty.Resize:
				if !ok {
					close(q.ch)
					return
				}
				select {
				case q.ch <- remotecommand.TerminalSize{Width: termDim(ws.Width), Height: termDim(ws.Height)}:
				case <-ctx.Done():
				}
			}
		}
	}()
	return q
}

type sizeQueue struct {
	ch chan remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q.ch
	if !ok {
		return nil
	}
	return &s
}

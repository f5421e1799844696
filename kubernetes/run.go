package kubernetes

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/skiffhq/skiff"
)

// Run runs a one-off pod attached to the request's streams (or terminal)
// and returns its exit code; the pod is deleted afterwards. Output the
// process writes before the attach is established is read from the pod's
// log (on stdout: Kubernetes' log merges the two streams).
func (s *Scheduler) Run(ctx context.Context, req *skiff.RunRequest) (int, error) {
	if len(req.Args) == 0 {
		return -1, skiff.Errorf(skiff.EINVALID, "run needs a command")
	}
	spec := req.Spec
	spec.ProcessType, spec.Command, spec.OneOff = "run", req.Args, true
	spec.Index = int(time.Now().UnixNano()/1e6%9000) + 1000
	r, img, err := s.release(ctx, &spec)
	if err != nil {
		return -1, err
	}
	tty := req.TTY != nil
	pod, err := s.podWith(ctx, r, img, &spec, fmt.Sprintf("run-%d-%s", spec.Index, suffix()), func(ps *corev1.PodSpec) {
		c := &ps.Containers[0]
		c.Stdin, c.StdinOnce, c.TTY = true, true, tty
		c.ReadinessProbe, c.Ports = nil, nil
	})
	if err != nil {
		return -1, err
	}
	id := pod.Namespace + "/" + pod.Name
	name := spec.Name()
	s.AppLog(spec.AppID, name, "Starting process"+commandNote(spec.Command))
	defer func() {
		zero := int64(0)
		_ = s.cfg.Client.Typed.CoreV1().Pods(pod.Namespace).Delete(context.WithoutCancel(ctx), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		s.forget(id)
	}()

	// Wait until the container runs (or already ended).
	for {
		p, err := s.get(ctx, id)
		if err != nil {
			return -1, err
		}
		if in := instance(p); in.State == skiff.InstanceUp || in.State == skiff.InstanceExited {
			break
		}
		if w := waiting(p); w != nil && hopeless[w.Reason] {
			return -1, skiff.Errorf(skiff.EUNAVAILABLE, "the run could not start: %s: %s", w.Reason, w.Message)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
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
	if (!attached || out.n+errOut.n == 0) && req.Stdout != nil {
		// It ended before the attach: its output is in the log.
		if rc, err := s.cfg.Client.Typed.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).Stream(ctx); err == nil {
			_, _ = io.Copy(req.Stdout, rc)
			rc.Close()
		}
	}
	s.AppLog(spec.AppID, name, fmt.Sprintf("Process exited with status %d", code))
	return code, nil
}

func waiting(p *corev1.Pod) *corev1.ContainerStateWaiting {
	for _, cs := range p.Status.ContainerStatuses {
		return cs.State.Waiting
	}
	return nil
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
	return exec.StreamWithContext(ctx, opts)
}

// exitCode waits for the one-off's container to end and returns its code.
func (s *Scheduler) exitCode(ctx context.Context, id string) (int, error) {
	for {
		p, err := s.get(ctx, id)
		if err != nil {
			return -1, err
		}
		if in := instance(p); in.State == skiff.InstanceExited {
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

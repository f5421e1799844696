package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffhq/skiff"
)

// AnnotationInstantiate marks a Job made from a CronJob by hand, as
// `kubectl create job --from=cronjob/…` marks it.
const AnnotationInstantiate = "cronjob.kubernetes.io/instantiate"

// startCronRun runs one of the app's cron jobs now (cron:run): a Job made
// from the job's CronJob's template, as `kubectl create job --from` makes
// one, owned by the CronJob (so its history limits clean it up), so that
// it runs exactly as the scheduled runs do (the release's image and config,
// the job's limits and timeout). Its pod is the instance: numbered with the
// run's index, so that its lines in the log are cron.<index>. A run of the
// job that has not ended (scheduled or by hand) is ECONFLICT: runs never
// overlap. The cluster's scheduled runs are told to OnCronRun as before;
// this one, which has no scheduled time, is the caller's to record.
func (s *Scheduler) startCronRun(ctx context.Context, spec *skiff.InstanceSpec) (*skiff.Instance, error) {
	if !skiff.ValidCronID(spec.CronJob) {
		return nil, skiff.Errorf(skiff.EINVALID, "invalid cron job id %q", spec.CronJob)
	}
	ns := s.Namespace(spec.AppID)
	of := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy, LabelAppID: spec.AppID, LabelCronJob: spec.CronJob}).String()
	batch := s.cfg.Client.Typed.BatchV1()
	cjs, err := batch.CronJobs(ns).List(ctx, metav1.ListOptions{LabelSelector: of})
	if err != nil {
		return nil, fmt.Errorf("find the CronJob of %s: %w", spec.CronJob, err)
	}
	if len(cjs.Items) != 1 {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "cluster %s has no CronJob of %s's cron job %s: deploy the app (its current release makes its CronJobs)", s.cfg.Name, spec.AppName, spec.CronJob)
	}
	cj := &cjs.Items[0]
	jobs, err := batch.Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: of})
	if err != nil {
		return nil, fmt.Errorf("list the runs of %s: %w", spec.CronJob, err)
	}
	for _, j := range jobs.Items {
		if !jobFinished(&j) && j.DeletionTimestamp == nil {
			return nil, skiff.Errorf(skiff.ECONFLICT, "%s is running on cluster %s (Job %s, started %s); runs of a job never overlap: wait for it, or see cron:history",
				spec.CronJob, s.cfg.Name, j.Name, j.CreationTimestamp.UTC().Format(time.RFC3339))
		}
	}
	tmpl := cj.Spec.JobTemplate.DeepCopy()
	if tmpl.Spec.Template.Annotations == nil {
		tmpl.Spec.Template.Annotations = map[string]string{}
	}
	tmpl.Spec.Template.Annotations[AnnotationIndex] = strconv.Itoa(spec.Index)
	// Listed, once ended, until the caller removes it (a OneOff's end).
	tmpl.Spec.Template.Annotations[AnnotationInstantiate] = "manual"
	annotations := map[string]string{AnnotationInstantiate: "manual"}
	for k, v := range tmpl.Annotations {
		annotations[k] = v
	}
	yes := true
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: cj.Name + "-m" + suffix(), Namespace: ns, Labels: tmpl.Labels, Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: &yes}},
		},
		Spec: tmpl.Spec,
	}
	created, err := batch.Jobs(ns).Create(ctx, job, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsTooManyRequests(err) {
		// A quota, an admission policy: the cluster's words say which.
		return nil, skiff.Errorf(skiff.EUNAVAILABLE, "cluster %s refused a run of %s: %v", s.cfg.Name, spec.CronJob, err)
	} else if err != nil {
		return nil, fmt.Errorf("start a run of %s: %w", spec.CronJob, err)
	}
	s.AppLog(spec.AppID, spec.Name(), fmt.Sprintf("Starting a run of cron job %s now (Job %s)", spec.CronJob, created.Name))
	for {
		pods, err := s.cfg.Client.Typed.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + created.Name})
		if err != nil {
			return nil, fmt.Errorf("the run of %s: %w", spec.CronJob, err)
		}
		if len(pods.Items) > 0 {
			p := &pods.Items[0]
			in := s.instance(p)
			in.Spec.AppName, in.Spec.Index = spec.AppName, spec.Index
			return in, nil
		}
		select {
		case <-ctx.Done():
			policy := metav1.DeletePropagationBackground
			_ = batch.Jobs(ns).Delete(context.WithoutCancel(ctx), created.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// jobFinished reports whether a Job has completed or failed.
func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

package k8s

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/kubernetes"
)

// localStorage gives the cluster a default StorageClass with no
// provisioner that binds when a pod first uses a claim
// (WaitForFirstConsumer), and one local PersistentVolume of it on
// tb-node1, a directory of the host that root owns (0755): the app's user
// can write it only if the pod's fsGroup gives it the files.
func localStorage(t *testing.T, cl *kubernetes.Client, class string, isDefault bool) string {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: class},
		Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &wait}
	if isDefault {
		sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	}
	if _, err := cl.Typed.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv := k8stestbed.LocalPV(class+"-1", class, resource.MustParse("5Gi"), dir, "tb-node1")
	if _, err := cl.Typed.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.Typed.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
		_ = cl.Typed.StorageV1().StorageClasses().Delete(ctx, sc.Name, metav1.DeleteOptions{})
	})
	return dir
}

// A volume on a cluster: a claim in the app's namespace, bound by the
// cluster to a real PersistentVolume, mounted into the release phase, the
// web pod and run; what one release writes the next reads; the claim
// survives deploys and an unmount, goes only with storage:destroy; one pod
// per process type that mounts it; another app cannot take it, and the
// app cannot leave the cluster while its data is there.
func TestVolumesOnCluster(t *testing.T) {
	d, admin, c := onCluster(t)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := localStorage(t, cl, "tb-local", true)
	const app, vol = "kvol", "kvol-data"
	must(t, d.ssh(admin, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s"), "scheduler:set")
	must(t, d.ssh(admin, "storage:ensure-directory", vol), "storage:ensure-directory")
	if r := d.ssh(admin, "storage:mount", app, vol+":/proc/x"); r.code == 0 {
		t.Fatalf("storage:mount at a path of the platform: %s", r)
	}
	must(t, d.ssh(admin, "storage:mount", app, vol+":/app/storage"), "storage:mount")
	files := pyApp("1")
	files["app.json"] = "{}\n"
	files["Procfile"] = releaseProcfile(`echo $SKIFF_RELEASE >> /app/storage/releases; echo "releases so far: $(tr '\n' ' ' < /app/storage/releases)"; true`)
	src := repo(t, files)
	gitIn(t, src, "remote", "add", "skiff", d.remote(app))
	push := must(t, d.git(admin, src, "push", "skiff", "main"), "the first push", "releases so far: v1", "Released v1")
	ns := "skiff-" + appID(t, d, admin, app)
	claim := func() *corev1.PersistentVolumeClaim {
		t.Helper()
		list, err := cl.Typed.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelVolume})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("the claims of %s: %v %v", ns, list, err)
		}
		return &list.Items[0]
	}
	first := claim()
	if first.Status.Phase != corev1.ClaimBound || first.Spec.VolumeName != "tb-local-1" || first.Spec.AccessModes[0] != corev1.ReadWriteOnce ||
		first.Spec.Resources.Requests.Storage().Value() != 1<<30 {
		t.Fatalf("the claim: %+v\n%s", first, push.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "releases")); err != nil || strings.TrimSpace(string(b)) != "v1" {
		t.Fatalf("the volume's file on the node: %q %v", b, err)
	}

	t.Run("the next release reads what the last wrote", func(t *testing.T) {
		write(t, src, map[string]string{"VERSION": "2\n"}, "version 2")
		must(t, d.git(admin, src, "push", "skiff", "main"), "the second push", "releases so far: v1 v2")
		if r := must(t, d.ssh(admin, "run", app, "cat /app/storage/releases; ls -ln /app/storage"), "run"); !regexp.MustCompile(`(?s)v1\s+v2`).MatchString(r.stdout) {
			t.Fatalf("run does not see the volume's data: %s", r)
		}
		if got := claim(); got.UID != first.UID {
			t.Fatalf("a deploy replaced the claim")
		}
	})
	t.Run("storage:resize of a claim whose class cannot grow", func(t *testing.T) {
		// tb-local has no allowVolumeExpansion (and its provisioner none):
		// past its volume's 5 GiB refused, saying so, with nothing changed
		// here or there.
		r := d.ssh(admin, "storage:resize", vol, "8g")
		if r.code == 0 || !strings.Contains(r.stderr, "StorageClass tb-local of cluster tb does not allow volume expansion, so the claim of storage "+vol+" stays at 5Gi") {
			t.Fatalf("storage:resize of a volume whose claim's class does not allow expansion: %s", r)
		}
		if got := claim(); got.Spec.Resources.Requests.Storage().Value() != 1<<30 {
			t.Fatalf("a refused storage:resize changed the claim: %+v", got.Spec.Resources)
		}
		var report struct {
			Volumes []struct {
				Name      string
				SizeBytes int64 `json:"size_bytes"`
			}
		}
		rep := d.ssh(admin, "storage:report", "--format", "json")
		if err := json.Unmarshal([]byte(rep.stdout), &report); err != nil {
			t.Fatal(err, rep)
		}
		for _, v := range report.Volumes {
			if v.Name == vol && v.SizeBytes == 8<<30 {
				t.Fatalf("a refused storage:resize recorded the new size: %s", rep)
			}
		}
	})
	t.Run("one pod of a process type that mounts it", func(t *testing.T) {
		r := d.ssh(admin, "ps:scale", app, "web=2")
		if r.code == 0 || !strings.Contains(r.stderr, "ReadWriteOnce") || !strings.Contains(r.stderr, "web=1") {
			t.Fatalf("ps:scale web=2 of an app whose web mounts a volume: %s", r)
		}
		if a := d.answer(t, app); a.Version != "2" {
			t.Fatalf("a refused scale changed the app: %+v", a)
		}
	})
	t.Run("another app and moves", func(t *testing.T) {
		const other = "kvol-other"
		must(t, d.ssh(admin, "apps:create", other), "apps:create")
		must(t, d.ssh(admin, "scheduler:set", other, "k8s"), "scheduler:set")
		if r := d.ssh(admin, "storage:mount", other, vol+":/data"); r.code == 0 || !strings.Contains(r.stderr, "is mounted by kvol") {
			t.Fatalf("another app mounting the volume on the cluster: %s", r)
		}
		if r := d.ssh(admin, "scheduler:set", app, "local"); r.code == 0 || !strings.Contains(r.stderr, "does not move") {
			t.Fatalf("scheduler:set local of an app that mounts a volume on the cluster: %s", r)
		}
		must(t, d.ssh(admin, "storage:unmount", app, vol+":/app/storage"), "storage:unmount")
		if got := claim(); got.UID != first.UID {
			t.Fatalf("storage:unmount removed the claim")
		}
		if r := d.ssh(admin, "storage:mount", other, vol+":/data"); r.code == 0 || !strings.Contains(r.stderr, "in a claim of kvol") {
			t.Fatalf("another app mounting the volume whose data is in kvol's claim: %s", r)
		}
		if r := d.ssh(admin, "scheduler:set", app, "local"); r.code == 0 || !strings.Contains(r.stderr, "keeps the data of storage "+vol) {
			t.Fatalf("scheduler:set local of an app whose claim holds data: %s", r)
		}
		eve := newKey(d.dir, "eve-vol")
		must(t, d.local(eve.authorizedKey()+"\n", "keys:add", "eve-vol"), "keys:add")
		for _, cmd := range [][]string{{"storage:mount", app, vol + ":/x/y"}, {"storage:destroy", vol, "--force"}} {
			if r := d.ssh(eve, cmd...); r.code == 0 {
				t.Fatalf("%v by a user without access: %s", cmd, r)
			}
		}
		if got := claim(); got.UID != first.UID {
			t.Fatalf("another user removed the claim")
		}
	})
	t.Run("a class of the cluster's", func(t *testing.T) {
		localStorage(t, cl, "tb-other", false)
		if r := d.ssh(admin, "clusters:set", "tb", "storage-class", "Bad_Class"); r.code == 0 || !strings.Contains(r.stderr, "invalid storage class") {
			t.Fatalf("clusters:set storage-class of a bad name: %s", r)
		}
		mallory := newKey(d.dir, "mallory-vol")
		must(t, d.local(mallory.authorizedKey()+"\n", "keys:add", "mallory-vol"), "keys:add")
		if r := d.ssh(mallory, "clusters:set", "tb", "storage-class", "tb-other"); r.code == 0 {
			t.Fatalf("clusters:set by a user who is no admin: %s", r)
		}
		// A class the cluster does not have is refused at once, naming those it has.
		if r := d.ssh(admin, "clusters:set", "tb", "storage-class", "tb-nosuch"); r.code == 0 || !strings.Contains(r.stderr, "has no StorageClass tb-nosuch") ||
			!strings.Contains(r.stderr, "tb-local (the default), tb-other") {
			t.Fatalf("clusters:set storage-class of a class the cluster does not have: %s", r)
		}
		kc, err := os.ReadFile(filepath.Join(d.dir, "skiff.kubeconfig"))
		if err != nil {
			t.Fatal(err)
		}
		if r := d.local(string(kc), "clusters:add", "tbsc", "--storage-class", "tb-nosuch"); r.code == 0 || !strings.Contains(r.stderr, "has no StorageClass tb-nosuch") {
			t.Fatalf("clusters:add --storage-class of a class the cluster does not have: %s", r)
		}
		if r := d.ssh(admin, "clusters"); strings.Contains(r.stdout, "tbsc") {
			t.Fatalf("a refused clusters:add added the cluster: %s", r)
		}
		must(t, d.ssh(admin, "clusters:set", "tb", "storage-class", "tb-other"), "clusters:set storage-class")
		defer func() {
			must(t, d.ssh(admin, "clusters:set", "tb", "storage-class"), "clusters:set storage-class back to the default")
		}()
		const app2, vol2 = "kvol2", "kvol2-data"
		must(t, d.ssh(admin, "apps:create", app2), "apps:create")
		must(t, d.ssh(admin, "scheduler:set", app2, "k8s"), "scheduler:set")
		must(t, d.ssh(admin, "storage:ensure-directory", vol2, "--size", "2g"), "storage:ensure-directory --size 2g")
		must(t, d.ssh(admin, "storage:mount", app2, vol2+":/app/storage"), "storage:mount")
		must(t, d.git(admin, src, "push", d.remote(app2), "main"), "push of kvol2", "releases so far: v1")
		ns2 := "skiff-" + appID(t, d, admin, app2)
		list, err := cl.Typed.CoreV1().PersistentVolumeClaims(ns2).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("kvol2's claims: %v %v", list, err)
		}
		c := list.Items[0]
		if c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != "tb-other" || c.Spec.VolumeName != "tb-other-1" || c.Spec.Resources.Requests.Storage().Value() != 2<<30 {
			t.Fatalf("kvol2's claim: %+v", c.Spec)
		}
		if got := claim(); got.UID != first.UID || *got.Spec.StorageClassName != "tb-local" {
			t.Fatalf("clusters:set storage-class changed kvol's claim: %+v", got.Spec)
		}
		// The class goes after it was set: the next claim of it is refused
		// before anything is applied, not after the pods wait 90 s.
		if err := cl.Typed.StorageV1().StorageClasses().Delete(context.Background(), "tb-other", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		must(t, d.ssh(admin, "storage:ensure-directory", "kvol2-more"), "storage:ensure-directory")
		start := time.Now()
		if r := d.ssh(admin, "storage:mount", app2, "kvol2-more:/app/more"); r.code == 0 || !strings.Contains(r.stderr, "has no StorageClass tb-other, which the claim of storage kvol2-more would be made of") ||
			!strings.Contains(r.stderr, "tb-local (the default)") {
			t.Fatalf("storage:mount of a volume whose class the cluster no longer has: %s", r)
		} else if took := time.Since(start); took > 45*time.Second {
			t.Fatalf("the missing class was found after %s:\n%s", took, r)
		}
		if a := d.answer(t, app2); a.Release != "v1" {
			t.Fatalf("a release refused for its class replaced the app's: %+v", a)
		}
		must(t, d.ssh(admin, "apps:destroy", app2, "--force"), "apps:destroy kvol2")
	})
	t.Run("storage:destroy removes the claim", func(t *testing.T) {
		must(t, d.ssh(admin, "storage:destroy", vol, "--force"), "storage:destroy")
		eventually(t, "the claim gone", 30*time.Second, func() error {
			list, err := cl.Typed.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil || len(list.Items) > 0 {
				return errorf("claims %d %v", len(list.Items), err)
			}
			return nil
		})
		must(t, d.ssh(admin, "scheduler:set", app, "local"), "scheduler:set local once the data is gone")
	})
}

package kubernetes

// The shared conformance suite of skiff.Scheduler, against pods of a real
// one-node cluster. The suite dials instances' addresses directly, as the
// router does, so it runs in a child test process inside the cluster's
// network namespace (the parent starts the cluster and skiff's registry).

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/applog"
	"github.com/skiffhq/skiff/internal/container/containertest"
	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/registry"
	"github.com/skiffhq/skiff/skifftest"
)

// probeImage is the conformance probe (internal/container/testdata/probe)
// at /app/probe, serving by default, as uid 1000.
func probeImage(t *testing.T) v1.Image {
	prog, err := os.ReadFile(containertest.Probe(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "app/probe", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(prog))})
	tw.Write(prog)
	tw.WriteHeader(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config = v1.Config{Entrypoint: []string{"/app/probe"}, Cmd: []string{"serve"}, User: "1000:1000", WorkingDir: "/app", Env: []string{"PATH=/app"}}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestSchedulerConformance(t *testing.T) {
	if os.Getenv("SKIFF_K8S_CONFORMANCE") != "" {
		conformanceChild(t)
		return
	}
	nb := oneNode(t)
	kc := t.TempDir() + "/admin.kubeconfig"
	if err := os.WriteFile(kc, nb.AdminKubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	child := exec.Command("nsenter", "--net="+nb.NetNS(), "--", os.Args[0], "-test.run=^TestSchedulerConformance$", "-test.v", "-test.timeout=20m")
	child.Env = append(os.Environ(), "SKIFF_K8S_CONFORMANCE="+kc, "SKIFF_K8S_DIGEST="+nb.probe, "SKIFF_K8S_SECRET="+string(nb.secret))
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	err := child.Run()
	t.Log(out.String())
	if err != nil {
		t.Fatalf("the conformance suite on the cluster: %v", err)
	}
}

func conformanceChild(t *testing.T) {
	kc, err := os.ReadFile(os.Getenv("SKIFF_K8S_CONFORMANCE"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := RESTConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	digest, secret := os.Getenv("SKIFF_K8S_DIGEST"), []byte(os.Getenv("SKIFF_K8S_SECRET"))
	uid := int64(1000)
	image := func(_ context.Context, spec *skiff.InstanceSpec) (*PodImage, error) {
		user, pass := registry.Credentials(secret, "tb", spec.AppID)
		return &PodImage{Ref: registry.Reference(k8stestbed.RegistryHost, spec.AppID, spec.Image), UID: &uid, GID: &uid,
			Registry: &Registry{Server: k8stestbed.RegistryHost, Username: user, Password: pass}, Args: spec.Command}, nil
	}
	volumes := map[string]bool{}
	skifftest.TestScheduler(t, func(t *testing.T) *skifftest.SchedulerFixture {
		dir := t.TempDir()
		open := func() *Scheduler {
			logs, err := applog.New(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			return NewScheduler(SchedulerConfig{Name: "tb", Client: client, Image: image, Logs: logs, Poll: 200 * time.Millisecond,
				Volume: func(_ context.Context, id string) (*skiff.Volume, error) {
					if !volumes[id] {
						return nil, skiff.Errorf(skiff.ENOTFOUND, "no volume %s", id)
					}
					return &skiff.Volume{ID: id, SizeBytes: 1 << 30}, nil
				}})
		}
		current := open()
		fx := &skifftest.SchedulerFixture{Scheduler: current, Image: digest}
		fx.Volume = func() string { return localVolume(t, client, volumes) }
		fx.Restart = func(down time.Duration) skiff.Scheduler {
			current.Close()
			time.Sleep(down)
			current = open()
			fx.Scheduler = current
			return current
		}
		t.Cleanup(func() {
			list, _ := current.Instances(context.Background(), "")
			for _, in := range list {
				current.Stop(context.Background(), in.ID, time.Second)
			}
			current.Close()
		})
		return fx
	})
	fmt.Println("conformance done")
}

// localVolume is a volume the scheduler can mount: a default StorageClass
// with no provisioner, binding when a pod first uses a claim, and a local
// PersistentVolume of it on the node (a directory of the host), both
// removed when the test ends.
func localVolume(t *testing.T, c *Client, volumes map[string]bool) string {
	ctx := context.Background()
	id := fmt.Sprintf("vol-%016x", len(volumes)+0xc0)
	volumes[id] = true
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "conformance-local",
		Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &wait}
	if _, err := c.Typed.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	pv := k8stestbed.LocalPV("conformance-"+id, sc.Name, resource.MustParse("10Gi"), t.TempDir(), "tb-node1")
	if _, err := c.Typed.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Typed.StorageV1().StorageClasses().Delete(ctx, sc.Name, metav1.DeleteOptions{})
		_ = c.Typed.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	})
	return id
}

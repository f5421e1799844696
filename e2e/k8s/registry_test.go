package k8s

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/k8stestbed"
	"github.com/skiffhq/skiff/internal/registrytest"
)

const extPassword = "ext-registry-pass-never-printed"

// A cluster whose nodes pull from an external registry: a real OCI
// registry (go-containerregistry's, behind TLS and basic auth) at an
// address the node trusts the test bed's CA for. skiff checks its
// credentials at once, pushes each release's image there by digest (the
// push shows it), the pods reference <registry>/<app>@sha256:… and pull
// with the pull secret; a registry that is down or refuses the
// credentials rejects the push, the previous release serving on.
func TestExternalRegistry(t *testing.T) {
	d, admin, c := onCluster(t)
	kc, err := os.ReadFile(filepath.Join(d.dir, "skiff.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(password string) *registrytest.Registry {
		t.Helper()
		certPEM, keyPEM, err := c.IssueCert(c.HostIP())
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ { // the address of a registry just closed may take a moment
			ln, err := c.Listen("tcp", k8stestbed.ExternalRegistryHost)
			if err == nil {
				reg := registrytest.Serve(ln, cert, "team-bot", password)
				t.Cleanup(func() { reg.Close() })
				return reg
			}
			if i == 20 {
				t.Fatal(err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	reg := serve(extPassword)
	ref := k8stestbed.ExternalRegistryHost + "/team"

	if r := d.local(string(kc), "clusters:add", "tbr", "--registry", "team-bot:"+extPassword+"@"+ref); r.code != 1 || !strings.Contains(r.stderr, "credentials in it") || strings.Contains(r.String(), extPassword) {
		t.Fatalf("a registry with credentials in it: %s", r)
	}
	must(t, d.local(string(kc), "clusters:add", "tbr", "--registry", ref), "clusters:add --registry", "clusters:set tbr registry "+ref+" --username USER < password")
	t.Cleanup(func() { d.local("", "clusters:remove", "tbr") })
	if r := d.local("wrong-"+extPassword, "clusters:set", "tbr", "registry", ref, "--username", "team-bot"); r.code != 1 ||
		!strings.Contains(r.stderr, "refused skiff's credentials") || strings.Contains(r.String(), extPassword) {
		t.Fatalf("clusters:set with a wrong password: %s", r)
	}
	must(t, d.local(extPassword+"\n", "clusters:set", "tbr", "registry", ref, "--username", "team-bot"), "clusters:set registry", "skiff pushes the images to "+ref)
	list := must(t, d.ssh(admin, "clusters", "--format", "json"), "clusters", ref)
	if strings.Contains(list.String(), extPassword) || strings.Contains(list.String(), "team-bot") {
		t.Fatalf("clusters shows the registry's credentials:\n%s", list)
	}

	alice := newKey(d.dir, "alice-r")
	must(t, d.local(alice.authorizedKey()+"\n", "keys:add", "alice-r"), "keys:add")
	mallory := newKey(d.dir, "mallory-r")
	must(t, d.local(mallory.authorizedKey()+"\n", "keys:add", "mallory-r"), "keys:add")
	if r := d.ssh(mallory, "clusters:set", "tbr", "registry"); r.code == 0 || !strings.Contains(r.stderr, "not authorized") {
		t.Fatalf("clusters:set by a user who is no admin: %s", r)
	}
	const app = "ext"
	must(t, d.ssh(alice, "apps:create", app), "apps:create")
	must(t, d.ssh(admin, "scheduler:set", app, "k8s", "--cluster", "tbr"), "scheduler:set")
	src := repo(t, pyApp("1"))
	gitIn(t, src, "remote", "add", "skiff", d.remote(app))
	push := must(t, d.git(alice, src, "push", "skiff", "main"), "the push",
		"Pushing the image for the cluster's nodes", "50% (", "Pushed "+ref+"/"+app+"@sha256:", "1 of 1 new pods ready", "Released v1")
	for _, l := range strings.Split(push.stderr, "\n") {
		if strings.Contains(l, "ush") {
			t.Log(l)
		}
	}
	if strings.Contains(push.String(), extPassword) {
		t.Fatalf("the push shows the registry's password:\n%s", push)
	}
	if a := d.answer(t, app); a.Version != "1" {
		t.Fatalf("after the push: %+v", a)
	}
	must(t, d.ssh(alice, "scheduler:report", app), "scheduler:report", ref)
	// A one-off pod pulls the same image with the same credentials.
	if r := d.ssh(alice, "run", app, "echo from $SKIFF_RELEASE"); r.code != 0 || !strings.Contains(r.stdout, "from v1") {
		t.Fatalf("run: %s", r)
	}
	if _, pulls := reg.Counts(); pulls == 0 {
		t.Fatal("the node did not pull from the external registry")
	}
	ns := "skiff-" + appID(t, d, alice, app)
	cl, err := adminClient(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	podImage := func() string {
		t.Helper()
		list, err := cl.Typed.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "skiff.dev/process=web"})
		if err != nil || len(list.Items) == 0 {
			t.Fatalf("the app's pods: %v", err)
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				return p.Spec.Containers[0].Image
			}
		}
		return ""
	}
	if img := podImage(); !strings.HasPrefix(img, ref+"/"+app+"@sha256:") {
		t.Fatalf("the pod's image: %s", img)
	}
	secret, err := cl.Typed.CoreV1().Secrets(ns).Get(ctx, "skiff-registry", metav1.GetOptions{})
	if err != nil || secret.Type != corev1.SecretTypeDockerConfigJson ||
		!strings.Contains(string(secret.Data[".dockerconfigjson"]), `"`+k8stestbed.ExternalRegistryHost+`"`) ||
		!strings.Contains(string(secret.Data[".dockerconfigjson"]), "team-bot") {
		t.Fatalf("the pull secret: %v", err)
	}

	// The registry down: the push is rejected, v1 serves on.
	reg.Close()
	write(t, src, map[string]string{"VERSION": "2\n"}, "v2")
	if r := d.git(alice, src, "push", "skiff", "main"); r.code == 0 || !strings.Contains(r.stderr, "cannot reach the registry "+k8stestbed.ExternalRegistryHost) {
		t.Fatalf("a push while the registry is down: %s", r)
	}
	if a := d.answer(t, app); a.Version != "1" {
		t.Fatalf("after the refused push: %+v", a)
	}
	// A registry that refuses skiff's credentials (its password changed).
	serve("changed-" + extPassword)
	r := d.git(alice, src, "push", "skiff", "main")
	if r.code == 0 || !strings.Contains(r.stderr, "refused skiff's credentials") || !strings.Contains(r.stderr, "clusters:set") || strings.Contains(r.String(), extPassword) {
		t.Fatalf("a push the registry refuses: %s", r)
	}
	if a := d.answer(t, app); a.Version != "1" {
		t.Fatalf("after the refused push: %+v", a)
	}

	// Back to skiff's own registry: the pods pull from skiff.
	must(t, d.local("", "clusters:set", "tbr", "registry"), "clusters:set registry back", "Applying ext again", "pull from skiff's registry")
	if img := podImage(); !strings.HasPrefix(img, k8stestbed.RegistryHost+"/") {
		t.Fatalf("the pod's image after clusters:set back: %s", img)
	}
	must(t, d.git(alice, src, "push", "skiff", "main"), "a push to skiff's registry", "Released v")
	if a := d.answer(t, app); a.Version != "2" {
		t.Fatalf("after the push: %+v", a)
	}
	// By an admin: an owner destroying their own app may see its session
	// end (its access revoked) before the command's status.
	must(t, d.ssh(admin, "apps:destroy", app, "--force"), "apps:destroy")
	eventually(t, "the app's namespace gone", time.Minute, func() error {
		if _, err := cl.Typed.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			return errorf("namespace %s still there", ns)
		}
		return nil
	})
	must(t, d.local("", "clusters:remove", "tbr"), "clusters:remove")
}

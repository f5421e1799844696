package k8stestbed

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// serviceRange is the cluster's service range; the API server's own
// address in it is the first one.
const serviceRange = "10.96.0.0/16"

// startControlPlane starts etcd and the API server, and with full also the
// controller manager and the scheduler, and waits until the API server is
// ready.
func (c *Cluster) startControlPlane(ctx context.Context, full bool) error {
	pki := filepath.Join(c.Dir, "pki")
	caFile := filepath.Join(pki, "ca.crt")
	if err := os.WriteFile(caFile, c.ca.certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pki, "ca.key"), mustECKey(c.ca), 0o600); err != nil {
		return err
	}
	serving, err := c.ca.issue("kube-apiserver", nil, "127.0.0.1", node1IP, "10.96.0.1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost")
	if err != nil {
		return err
	}
	servingCrt, servingKey, err := serving.write(pki, "apiserver")
	if err != nil {
		return err
	}
	kc, err := c.ca.issue("kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return err
	}
	kcCrt, kcKey, err := kc.write(pki, "apiserver-kubelet-client")
	if err != nil {
		return err
	}
	saPub, saKey, err := serviceAccountKeys(pki)
	if err != nil {
		return err
	}

	if err := c.startIn(c.nets[0], "etcd", filepath.Join(c.root, "usr/bin/etcd"),
		"--name=testbed", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=testbed=http://127.0.0.1:2380",
		"--quota-backend-bytes=1073741824", "--log-level=warn", "--logger=zap"); err != nil {
		return err
	}
	if err := c.startIn(c.nets[0], "kube-apiserver", filepath.Join(c.bin, "kube-apiserver"),
		"--feature-gates="+c.gates,
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--secure-port=6443", "--advertise-address="+node1IP,
		"--service-cluster-ip-range="+serviceRange,
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--client-ca-file="+caFile,
		"--tls-cert-file="+servingCrt, "--tls-private-key-file="+servingKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--kubelet-client-certificate="+kcCrt, "--kubelet-client-key="+kcKey,
		// Without it logs and exec resolve the node's name, and there is no DNS.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false", "--v=1"); err != nil {
		return err
	}
	t0 := time.Now()
	if err := waitFor(ctx, "kube-apiserver /readyz", 3*time.Minute, func() error {
		return c.get(ctx, "/readyz", nil)
	}); err != nil {
		return err
	}
	c.logf("kube-apiserver ready after %.1fs", time.Since(t0).Seconds())
	if !full {
		return nil
	}
	for _, comp := range []struct{ name, cn string }{
		{"kube-controller-manager", "system:kube-controller-manager"},
		{"kube-scheduler", "system:kube-scheduler"},
	} {
		p, err := c.ca.issue(comp.cn, nil)
		if err != nil {
			return err
		}
		f := filepath.Join(pki, comp.name+".kubeconfig")
		if err := os.WriteFile(f, kubeconfig("https://127.0.0.1:6443", "", c.ca.certPEM, p), 0o600); err != nil {
			return err
		}
		args := []string{filepath.Join(c.bin, comp.name), "--kubeconfig=" + f,
			"--authentication-kubeconfig=" + f, "--authorization-kubeconfig=" + f,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--v=1"}
		if comp.name == "kube-controller-manager" {
			args = append(args, "--service-account-private-key-file="+saKey, "--root-ca-file="+caFile,
				"--cluster-signing-cert-file="+caFile, "--cluster-signing-key-file="+filepath.Join(pki, "ca.key"),
				"--use-service-account-credentials=true",
				// Quick reaction to a drained or lost node, for the tests.
				"--node-monitor-grace-period=20s")
		}
		if err := c.startIn(c.nets[0], comp.name, args...); err != nil {
			return err
		}
	}
	// The controller manager is up when it has made the default namespace's
	// service account (pods need one).
	return waitFor(ctx, "the default service account", 2*time.Minute, func() error {
		return c.get(ctx, "/api/v1/namespaces/default/serviceaccounts/default", nil)
	})
}

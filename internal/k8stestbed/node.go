package k8stestbed

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The kubelet refuses to start with protectKernelDefaults when these
// differ from what it wants, and without it would write them to the host.
// A node's mount namespace shows it files with the wanted values instead.
var kernelDefaults = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// addNode starts node n (from 1): its network namespace (the second node's
// own; the first shares the control plane's), a mount namespace with its
// own /run, /var/lib and /var/log, containerd, the images the node needs,
// and a kubelet; it returns when the node is Ready.
func (c *Cluster) addNode(ctx context.Context, n int) error {
	name := fmt.Sprintf("node%d", n)
	dir := filepath.Join(c.Dir, name)
	ip := node1IP
	server := "https://127.0.0.1:6443"
	if n == 2 {
		ns := filepath.Join(c.Dir, "net2")
		if err := touch(ns); err != nil {
			return err
		}
		c.nets = append(c.nets, ns)
		if err := secondNetns(c.nets[0], ns); err != nil {
			return err
		}
		ip, server = node2IP, "https://"+node1IP+":6443"
	}
	ns := c.nets[n-1]
	for _, d := range []string{"", "sysctl", "cni", "kubelet", "pods", "containerd"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	cgroupRoot := "/" + c.Name + "/" + name
	if err := makeCgroup(cgroupRoot); err != nil {
		return err
	}

	// The mount namespace, held by a sleeping process.
	script := "set -e; mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /var/lib; mount -t tmpfs tmpfs /var/log\n"
	for key, want := range kernelDefaults {
		have, err := os.ReadFile("/proc/sys/" + key)
		if err != nil || strings.TrimSpace(string(have)) == want {
			continue
		}
		f := filepath.Join(dir, "sysctl", strings.ReplaceAll(key, "/", "."))
		if err := os.WriteFile(f, []byte(want+"\n"), 0o444); err != nil {
			return err
		}
		script += fmt.Sprintf("mount --bind %s /proc/sys/%s\n", f, key)
	}
	script += "exec sleep infinity\n"
	holderLog := "mountns-" + strconv.Itoa(n)
	if err := c.startIn(ns, holderLog, "unshare", "--mount", "--propagation", "slave", "/bin/sh", "-c", script); err != nil {
		return err
	}
	holder := c.cmds[len(c.cmds)-1]
	if err := waitFor(ctx, "the node's mount namespace", 10*time.Second, func() error {
		mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.Process.Pid))
		if err != nil {
			return err
		}
		if !bytes.Contains(mi, []byte(" /var/log ")) {
			return fmt.Errorf("not mounted yet: %s", c.Logs(holderLog, 3))
		}
		return nil
	}); err != nil {
		return err
	}
	c.holders = append(c.holders, holder.Process.Pid)
	inNode := func(argv ...string) []string {
		return append([]string{"nsenter", fmt.Sprintf("--target=%d", holder.Process.Pid), "--mount", "--net", "--"}, argv...)
	}

	// containerd.
	sock := filepath.Join(dir, "containerd", "sock")
	cni := filepath.Join(dir, "cni")
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "testbed", "plugins": [
  {"type": "bridge", "bridge": "tbcni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
`, podCIDR(n))
	if err := os.WriteFile(filepath.Join(cni, "10-testbed.conflist"), []byte(conflist), 0o600); err != nil {
		return err
	}
	ctrd := filepath.Join(dir, "containerd")
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = %[3]q
[ttrpc]
  address = "%[3]s.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  # root here lacks CAP_SYS_RESOURCE: runc could not set a pod's score.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = %[6]q
        Root = %[7]q
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[8]q
    conf_dir = %[9]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[10]q
`, filepath.Join(ctrd, "root"), filepath.Join(ctrd, "state"), sock, filepath.Join(ctrd, "opt"),
		PauseImage, filepath.Join(c.root, "usr/sbin/runc"), filepath.Join(ctrd, "runc"),
		filepath.Join(c.root, "usr/lib/cni"), cni, filepath.Join(ctrd, "certs.d"))
	configFile := filepath.Join(ctrd, "config.toml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		return err
	}
	// The nodes trust the test bed's CA for the registries a test serves
	// at RegistryHost and ExternalRegistryHost (Listen on them, with a
	// certificate from IssueCert).
	for _, reg := range []string{RegistryHost, ExternalRegistryHost} {
		hosts := filepath.Join(ctrd, "certs.d", reg)
		if err := os.MkdirAll(hosts, 0o700); err != nil {
			return err
		}
		// The CA twice: for the host entry and for the server entry that
		// containerd 1.6 falls back to (else a registry's 404 ends as x509).
		hostsTOML := fmt.Sprintf("server = \"https://%[1]s\"\nca = %[2]q\n\n[host.\"https://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = %[2]q\n",
			reg, filepath.Join(c.Dir, "pki", "ca.crt"))
		if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(hostsTOML), 0o600); err != nil {
			return err
		}
	}
	ctrdLog := "containerd-" + strconv.Itoa(n)
	if err := c.start(ctrdLog, inNode(filepath.Join(c.root, "usr/bin/containerd"), "--config", configFile, "--log-level", "warn")...); err != nil {
		return err
	}
	if err := waitFor(ctx, "containerd", time.Minute, func() error {
		_, err := os.Stat(sock)
		return err
	}); err != nil {
		return err
	}
	if err := c.importImages(ctx, sock); err != nil {
		return err
	}

	// The kubelet.
	nodeName := "tb-node" + strconv.Itoa(n)
	cert, err := c.ca.issue("system:node:"+nodeName, []string{"system:nodes"}, ip, nodeName)
	if err != nil {
		return err
	}
	crt, key, err := cert.write(dir, "kubelet")
	if err != nil {
		return err
	}
	kubeconfigFile := filepath.Join(dir, "kubelet.kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig(server, "", c.ca.certPEM, cert), 0o600); err != nil {
		return err
	}
	kcfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[2]q}
authorization: {mode: Webhook}
tlsCertFile: %[3]q
tlsPrivateKeyFile: %[4]q
cgroupDriver: cgroupfs
cgroupRoot: %[5]s
# This host has cgroup v1 (hybrid); 1.35 and later refuse it unless told.
failCgroupV1: false
protectKernelDefaults: true
containerRuntimeEndpoint: unix://%[6]s
podLogsDir: %[7]q
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
# Pods' logs are small here; a drained or deleted pod goes quickly.
containerLogMaxSize: 1Mi
# Crash-looping containers restart within a second (the default waits 10 s
# and doubles to 5 minutes), so tests of restarts take seconds.
crashLoopBackOff: {maxContainerRestartPeriod: 1s}

resolvConf: ""
`, ip, filepath.Join(c.Dir, "pki", "ca.crt"), crt, key, cgroupRoot, sock, filepath.Join(dir, "pods"))
	kcfgFile := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(kcfgFile, []byte(kcfg), 0o600); err != nil {
		return err
	}
	if err := c.start("kubelet-"+strconv.Itoa(n), inNode(filepath.Join(c.bin, "kubelet"),
		"--config="+kcfgFile, "--kubeconfig="+kubeconfigFile, "--root-dir="+filepath.Join(dir, "kubelet"),
		"--hostname-override="+nodeName, "--node-ip="+ip, "--feature-gates="+c.gates, "--v=1")...); err != nil {
		return err
	}
	c.NodeNames = append(c.NodeNames, nodeName)
	return waitFor(ctx, "node "+nodeName+" Ready", 2*time.Minute, func() error {
		var node struct {
			Status struct {
				Conditions []struct{ Type, Status, Message string }
			}
		}
		if err := c.get(ctx, "/api/v1/nodes/"+nodeName, &node); err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == "Ready" {
				if cond.Status == "True" {
					return nil
				}
				return fmt.Errorf("not ready: %s", cond.Message)
			}
		}
		return fmt.Errorf("no Ready condition yet")
	})
}

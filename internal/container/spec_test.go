package container

import (
	goruntime "runtime"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSpecIsLockedDown(t *testing.T) {
	r := &Runc{cfg: Config{IDMap: DefaultIDMap}}
	s := &Spec{ID: "x", Args: []string{"/app"}, UID: 1000, GID: 1000, UserNS: true, Network: true,
		Limits: Limits{MemoryBytes: 1 << 30, CPU: 0.5, Pids: 100}}
	sp, err := r.ociSpec(s, "/rootfs", "/skiff/x")
	if err != nil {
		t.Fatal(err)
	}
	p := sp.Process
	if !p.NoNewPrivileges || len(p.Capabilities.Bounding) != 0 || len(p.Capabilities.Effective) != 0 || p.User.UID != 1000 {
		t.Errorf("process %+v", p)
	}
	var ns []specs.LinuxNamespaceType
	for _, n := range sp.Linux.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joined, not new", n.Type)
		}
		ns = append(ns, n.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.NetworkNamespace, specs.UserNamespace} {
		if !slices.Contains(ns, want) {
			t.Errorf("no %s namespace", want)
		}
	}
	if m := sp.Linux.UIDMappings; len(m) != 1 || m[0].HostID != DefaultIDMap.HostID || m[0].ContainerID != 0 {
		t.Errorf("uid map %+v", m)
	}
	if sp.Linux.Seccomp == nil || sp.Linux.Seccomp.DefaultAction == specs.ActAllow || len(sp.Linux.Seccomp.Syscalls) == 0 {
		t.Error("no seccomp filter")
	}
	if native := map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64}[goruntime.GOARCH]; native != "" {
		if a := sp.Linux.Seccomp.Architectures; len(a) != 1 || a[0] != native {
			t.Errorf("seccomp architectures %v, want %s alone", a, native)
		}
	}
	for _, want := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
		if !slices.Contains(sp.Linux.MaskedPaths, want) {
			t.Errorf("%s not masked", want)
		}
	}
	if !slices.Contains(sp.Linux.ReadonlyPaths, "/proc/sys") || !slices.Contains(sp.Linux.ReadonlyPaths, "/proc/sysrq-trigger") {
		t.Error("/proc/sys not read-only")
	}
	res := sp.Linux.Resources
	if *res.Memory.Limit != 1<<30 || *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 || *res.Pids.Limit != 100 || sp.Linux.CgroupsPath != "/skiff/x" {
		t.Errorf("resources %+v", res)
	}
	if _, err := r.ociSpec(&Spec{ID: "x", Args: []string{"/a"}, Cwd: "rel"}, "/r", "/c"); err == nil {
		t.Error("relative cwd accepted")
	}
	for id, ok := range map[string]bool{"web.1.ab12": true, "run-x": true, "": false, "../x": false, "-x": false, "a/b": false} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v", id, !ok)
		}
	}
}

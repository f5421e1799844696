package container

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCgroupStatsFiles reads stats from files laid out and formatted as
// the kernel's cgroup documentation describes them (v2 cannot be run on
// hybrid hosts like this project's CI, so its files are made).
func TestCgroupStatsFiles(t *testing.T) {
	v2 := t.TempDir()
	writeFiles(t, v2, map[string]string{
		"skiff/a/memory.current": "1234\n",
		"skiff/a/memory.max":     "536870912\n",
		"skiff/a/pids.current":   "3\n",
		"skiff/a/cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
		"skiff/a/memory.events":  "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\noom_group_kill 1\n",
		"skiff/b/memory.current": "10\n",
		"skiff/b/memory.max":     "max\n",
		"skiff/b/cpu.stat":       "usage_usec 0\n",
		"skiff/b/memory.events":  "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
	})
	fs := cgroupFS{root: v2, v2: true}
	if st, err := fs.stats("/skiff/a"); err != nil || st != (Stats{CPU: 1500 * time.Microsecond, MemoryBytes: 1234, MemoryLimit: 512 << 20, Pids: 3, OOMKills: 2}) {
		t.Errorf("v2: %+v %v", st, err)
	}
	if st, err := fs.stats("/skiff/b"); err != nil || st != (Stats{MemoryBytes: 10}) {
		t.Errorf("v2 unlimited: %+v %v", st, err)
	}
	if _, err := fs.stats("/skiff/gone"); err == nil {
		t.Error("stats of a missing cgroup")
	}
	if got := fs.list("skiff"); strings.Join(got, ",") != "a,b" {
		t.Errorf("list: %v", got)
	}

	v1 := t.TempDir()
	writeFiles(t, v1, map[string]string{
		"memory/skiff/a/memory.usage_in_bytes": "4096\n",
		"memory/skiff/a/memory.limit_in_bytes": "9223372036854771712\n", // unlimited
		"memory/skiff/a/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"pids/skiff/a/pids.current":            "7\n",
		"cpuacct/skiff/a/cpuacct.usage":        "2000000\n",
	})
	fs = cgroupFS{root: v1}
	if st, err := fs.stats("/skiff/a"); err != nil || st != (Stats{CPU: 2 * time.Millisecond, MemoryBytes: 4096, Pids: 7, OOMKills: 1}) {
		t.Errorf("v1: %+v %v", st, err)
	}
}

// unifiedMount returns a v2 hierarchy to make cgroups in: the host's, or a
// hybrid host's second mount. Making, killing and freezing cgroups needs no
// controller, so this runs the v2 kill paths for real on v1 hosts too.
func unifiedMount(t *testing.T) string {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes cgroups")
	}
	for _, d := range []string{cgroupRoot, filepath.Join(cgroupRoot, "unified")} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.controllers")); err == nil {
			return d
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}

// shellInCgroup starts a shell in a new cgroup of fs that forks n sleeps
// and waits; it returns the cgroup and the shell.
func shellInCgroup(t *testing.T, fs cgroupFS, n int) (string, *exec.Cmd) {
	t.Helper()
	rel := fmt.Sprintf("skiff-cgtest-%d/%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
	dir := filepath.Join(fs.root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fs.remove(rel)
		os.Remove(filepath.Dir(dir))
	})
	cmd := exec.Command("sh", "-c", fmt.Sprintf("read go; for i in $(seq %d); do sleep 60 & done; echo forked; wait", n))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := writeCgroup(filepath.Join(dir, "cgroup.procs"), fmt.Sprint(cmd.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "forked\n" {
		t.Fatalf("shell said %q", line)
	}
	if procs := readTrim(filepath.Join(dir, "cgroup.procs")); len(strings.Fields(procs)) != n+1 {
		t.Fatalf("cgroup holds %q", procs)
	}
	return rel, cmd
}

func TestCgroupKillV2(t *testing.T) {
	fs := cgroupFS{root: unifiedMount(t), v2: true}
	for name, kill := range map[string]func(string) error{"cgroup.kill": fs.kill, "freezer": fs.killFrozen} {
		t.Run(name, func(t *testing.T) {
			rel, cmd := shellInCgroup(t, fs, 20)
			if err := kill(rel); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "killed") {
					t.Fatalf("shell: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the shell survived")
			}
			procs := filepath.Join(fs.root, rel, "cgroup.procs")
			for deadline := time.Now().Add(5 * time.Second); readTrim(procs) != ""; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("left in the cgroup: %s", readTrim(procs))
				}
			}
			if v := readTrim(filepath.Join(fs.root, rel, "cgroup.freeze")); v != "0" {
				t.Fatalf("left frozen: %q", v)
			}
			if err := fs.remove(rel); err != nil {
				t.Fatal(err)
			}
		})
	}
	// A cgroup that is gone already is no error.
	if err := fs.kill("skiff-cgtest-none/x"); err != nil {
		t.Fatal(err)
	}
}

package container_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/container/containertest"
)

// busyboxSpec runs busybox's programs (C, no signal handlers of their own)
// from an overlay root, behind skiff-init when init is set.
func busyboxSpec(t *testing.T, id string, init bool, args ...string) *container.Spec {
	s := appSpec(t, id)
	s.Args = args
	s.Rootfs = container.Rootfs{Layers: []string{containertest.BusyboxRootfs(t)}, UpperSize: 1 << 20}
	if init {
		s.Init = containertest.Init(t)
	}
	return s
}

// TestInitStopsAppWithoutSIGTERMHandler: sleep ignores SIGTERM as pid 1,
// so a stop waits out the grace period; behind skiff-init it ends at once.
func TestInitStopsAppWithoutSIGTERMHandler(t *testing.T) {
	e := containertest.New(t)
	c, out, _ := start(t, e, busyboxSpec(t, "bare", false, "sh", "-c", "echo up; exec sleep 3600"))
	waitFor(t, out, "up")
	time.Sleep(100 * time.Millisecond) // until sh has become sleep
	st, err := c.Stop(context.Background(), 300*time.Millisecond)
	if err != nil || st.Signal != 9 {
		t.Fatalf("sleep as pid 1 was expected to ignore SIGTERM: %v %v", st, err)
	}

	c, out, _ = start(t, e, busyboxSpec(t, "inited", true, "sh", "-c", "echo up; exec sleep 3600"))
	waitFor(t, out, "up")
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	st, err = c.Stop(context.Background(), 30*time.Second)
	if d := time.Since(t0); err != nil || st.Code != 128+15 || !st.Known || st.Signal != 0 || d > time.Second {
		t.Fatalf("stop behind skiff-init: %v %v after %v, want exit 143 within a second", st, err, d)
	}
}

func TestInitPassesExitStatus(t *testing.T) {
	e := containertest.New(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -USR1 $$"}, 128 + 10},
		{[]string{"no-such-program"}, 127},
	} {
		st, out := runToEnd(t, e, busyboxSpec(t, "code"+string(rune('a'+tc.code%26)), true, tc.args...))
		if st.Code != tc.code || !st.Known {
			t.Errorf("%q: %v, want exit %d; output %q", tc.args, st, tc.code, out)
		}
	}
}

// TestInitReapsOrphans: the app's children leave orphans behind. Without
// an init they stay zombies of the app (pid 1, which never waits for
// them); behind skiff-init none remain.
func TestInitReapsOrphans(t *testing.T) {
	e := containertest.New(t)
	s := appSpec(t, "orphans-bare", "orphans")
	_, out := runToEnd(t, e, s)
	if strings.Contains(out, "zombies: 0\n") || !strings.Contains(out, "zombies: ") {
		t.Fatalf("the probe was expected to see zombies without an init: %q", out)
	}
	s = appSpec(t, "orphans-init", "orphans")
	s.Init = containertest.Init(t)
	if st, out := runToEnd(t, e, s); st.Code != 0 || !strings.Contains(out, "zombies: 0\n") {
		t.Fatalf("behind skiff-init: %v %q", st, out)
	}
}

// TestInitTerminal: a one-off run with a terminal gets it for the app: a
// shell has job control, ctrl-C ends the command it runs and not the
// shell, and the shell's exit status comes back.
func TestInitTerminal(t *testing.T) {
	e := containertest.New(t)
	s := busyboxSpec(t, "itty", true, "sh", "-i")
	s.Env = []string{"PATH=/bin", "PS1=PROMPT> ", "TERM=dumb"}
	s.Terminal = true
	s.Bundle = filepath.Join(t.TempDir(), "itty")
	containertest.OpenPath(t, filepath.Dir(s.Bundle))
	c, err := e.Runc.Create(context.Background(), s, container.Stdio{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Delete(context.Background())
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := &containertest.Buffer{}
	go io.Copy(out, c.Console)
	waitCount(t, out, "PROMPT> ", 1)
	c.Console.WriteString("sleep 30\n")
	time.Sleep(300 * time.Millisecond)
	c.Console.WriteString("\x03")
	waitCount(t, out, "PROMPT> ", 2)
	c.Console.WriteString("echo ok-$((20+22))\n")
	waitCount(t, out, "ok-42", 1)
	c.Console.WriteString("exit 5\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := c.Wait(ctx); err != nil || st.Code != 5 {
		t.Fatalf("%v %v; terminal output %q", st, err, out.String())
	}
}

func waitCount(t *testing.T, out *containertest.Buffer, s string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Count(out.String(), s) >= n {
			return
		}
	}
	t.Fatalf("no %d× %q in the terminal's output %q", n, s, out.String())
}

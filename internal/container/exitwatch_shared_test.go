package container

import (
	"log/slog"
	"os/exec"
	"testing"
	"time"
)

// The Runcs of one process share one exit watcher: a container one of
// them started and another adopted (a restarted daemon's view, in tests)
// is watched once, and both learn its status; a second watcher would race
// the first to reap it and be left with an unknown status. The watcher
// stops with its last user.
func TestOneExitWatcherPerProcess(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	a, err := acquireExitWatcher(log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := acquireExitWatcher(log)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two exit watchers in one process")
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 0.2; exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wa, err := a.watch(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	wb, _ := b.watch(cmd.Process.Pid)
	if wa != wb {
		t.Error("one process watched twice")
	}
	a.release()
	select {
	case <-a.stop:
		t.Fatal("stopped while another Runc uses it")
	default:
	}
	go cmd.Wait() // our child: os/exec reaps it; the connector or the grace ends the watch
	select {
	case <-wb.done:
	case <-time.After(connectorGrace + 5*time.Second):
		t.Fatal("exit not seen")
	}
	b.release()
	select {
	case <-b.stop:
	default:
		t.Fatal("not stopped after its last user")
	}
	if c, _ := acquireExitWatcher(log); c == a {
		t.Error("a stopped watcher handed out again")
	} else {
		c.release()
	}
}

package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/admin"
	"github.com/skiffhq/skiff/skifftest"
	"github.com/skiffhq/skiff/store"
)

type endedRunner struct {
	skiff.CommandRunner
	ended chan error
}

func (r endedRunner) RunCommand(ctx context.Context, inv *skiff.Invocation) int {
	code := r.CommandRunner.RunCommand(ctx, inv)
	r.ended <- ctx.Err()
	return code
}

// A client that hangs up cancels what runs for it: `logs -t` follows until
// then, and ends at once after.
func TestHangUpCancels(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(context.Background(), filepath.Join(dir, "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	host := skifftest.NewHost(skifftest.NewImages(), t.TempDir())
	defer host.Close()
	sched := host.Scheduler(skifftest.Config{})
	commands := admin.New(admin.Services{Apps: db, Users: db, Access: db, Events: db, Releases: db, Config: db, Domains: db, Settings: db,
		Scheduler: sched}, admin.Info{Domain: "skiff.test"}, nil, log)
	ended := make(chan error, 2)
	socket := filepath.Join(dir, "control.sock")
	l, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Commands: endedRunner{commands, ended}, Log: log}
	go srv.Serve(l)
	defer srv.Close()
	if err := db.CreateApp(skiff.WithActor(context.Background(), &skiff.Actor{Name: "local:root"}), &skiff.App{Name: "shop"}); err != nil {
		t.Fatal(err)
	}

	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(request{Command: []string{"logs", "shop", "-t"}})
	if err := writeFrame(c, frameRequest, body); err != nil {
		t.Fatal(err)
	}
	// The follower delivers a line: the command runs.
	app, _ := db.FindAppByName(context.Background(), "shop")
	sched.AppLog(app.ID, "", "a line")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.SetReadDeadline(deadline)
		kind, data, err := readFrame(c)
		if err != nil {
			t.Fatalf("no output from logs -t: %v", err)
		}
		if kind == frameStdout && len(data) > 0 {
			break
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("logs -t ended while its client was there: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-ended:
		if err != context.Canceled {
			t.Fatalf("the command ended with %v, not a cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command went on after its client hung up")
	}
}

package container_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/container/containertest"
)

// serviceAddr is the n-th container address of the env's service pool.
func serviceAddr(e *containertest.Env, n int) netip.Addr {
	b := e.Network.ServicePool().Addr().As4()
	b[3] += byte(4*n + 2)
	return netip.AddrFrom4(b)
}

func connectFrom(t *testing.T, e *containertest.Env, id, group, target string) (int, string) {
	t.Helper()
	s := appSpec(t, id, "connect", target)
	s.NetGroup = group
	st, out := runToEnd(t, e, s)
	return st.Code, strings.TrimSpace(out)
}

// TestServiceLinks: a service at a fixed address of the service pool is
// reachable only from the containers of a group linked to it, on the
// linked port: not from other groups, containers without a group, or the
// host; it reaches nothing itself; and an unlink resets a connection that
// is open.
func TestServiceLinks(t *testing.T) {
	e := containertest.New(t)
	addr := serviceAddr(e, 1)
	svcSpec := appSpec(t, "svc", "echo")
	svcSpec.Address = addr
	svc, out, _ := start(t, e, svcSpec)
	waitFor(t, out, "listening")
	if svc.Addr != addr {
		t.Fatalf("service got %s, want its fixed %s", svc.Addr, addr)
	}
	target := net.JoinHostPort(addr.String(), "8080")

	// A second container cannot take the address.
	dup := appSpec(t, "svcdup", "echo")
	dup.Address = addr
	dup.Bundle = t.TempDir() + "/svcdup"
	containertest.OpenPath(t, t.TempDir())
	if c, err := e.Runc.Create(context.Background(), dup, container.Stdio{}); err == nil {
		c.Delete(context.Background())
		t.Fatal("a second container took the service's address")
	}

	if code, out := connectFrom(t, e, "pre", "app-a", target); code != 1 {
		t.Fatalf("before any link, group app-a reached the service: %s", out)
	}
	link := container.LinkRule{Group: "app-a", Service: addr, Port: 8080}
	if err := e.Network.Link(link); err != nil {
		t.Fatal(err)
	}
	if err := e.Network.Link(link); err != nil { // idempotent
		t.Fatal(err)
	}
	if links, err := e.Network.Links(); err != nil || len(links) != 1 || links[0] != link {
		t.Fatalf("links: %v %v", links, err)
	}
	if code, out := connectFrom(t, e, "a1", "app-a", target); code != 0 {
		t.Fatalf("linked group app-a: %s", out)
	}
	for name, c := range map[string]struct{ group, target string }{
		"another group":   {"app-b", target},
		"no group":        {"", target},
		"unlinked port":   {"app-a", net.JoinHostPort(addr.String(), "8081")},
		"a service group": {"app-b", net.JoinHostPort(serviceAddr(e, 2).String(), "8080")},
	} {
		if code, out := connectFrom(t, e, "x"+strings.ReplaceAll(name, " ", ""), c.group, c.target); code != 1 {
			t.Errorf("%s reached %s: %s", name, c.target, out)
		}
	}
	// The host does not reach the service either.
	if conn, err := net.DialTimeout("tcp", target, time.Second); err == nil {
		conn.Close()
		t.Error("the host reached the service")
	}
	// The service reaches nothing: not the host, not an app.
	app, appOut, _ := start(t, e, func() *container.Spec { s := appSpec(t, "appa", "serve"); s.NetGroup = "app-a"; return s }())
	waitFor(t, appOut, "listening")
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, dst := range []string{net.JoinHostPort(app.Addr.String(), "8080"), net.JoinHostPort(addr.Prev().String(), fmt.Sprint(l.Addr().(*net.TCPAddr).Port))} {
		f, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		code, err := svc.Exec(context.Background(), &container.Exec{Args: []string{"/probe", "connect", dst}, UID: 1000, GID: 1000,
			Stdio: container.Stdio{Stdout: f}})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(f.Name()); code != 1 {
			t.Errorf("the service reached %s: %d %s", dst, code, b)
		}
	}

	// An open connection is cut when the link goes.
	hs := appSpec(t, "holder", "hold", target)
	hs.NetGroup = "app-a"
	holder, holdOut, done := start(t, e, hs)
	waitFor(t, holdOut, "up")
	if err := e.Network.Unlink(link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := holder.Wait(ctx)
	if err != nil {
		holder.Kill()
	}
	<-done
	if err != nil || st.Code != 3 {
		o, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
		t.Logf("%s", o)
		t.Fatalf("the open connection survived the unlink: %v %v %s", st, err, holdOut)
	}
	if code, out := connectFrom(t, e, "a2", "app-a", target); code != 1 {
		t.Fatalf("after unlink, app-a reached the service: %s", out)
	}
	if links, _ := e.Network.Links(); len(links) != 0 {
		t.Fatalf("links left: %v", links)
	}
}

// TestGroupAddressReuse: an address that left a group without a clean
// detach (its container died while no one watched) is scrubbed from the
// group before another container gets it.
func TestGroupAddressReuse(t *testing.T) {
	e := containertest.New(t)
	a, out, _ := start(t, e, func() *container.Spec { s := appSpec(t, "ga", "serve"); s.NetGroup = "grp-one"; return s }())
	waitFor(t, out, "listening")
	members, err := e.Network.Members("grp-one")
	if err != nil || len(members) != 1 || members[0] != a.Addr {
		t.Fatalf("members of grp-one: %v %v (want %s)", members, err, a.Addr)
	}
	if err := a.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if members, _ := e.Network.Members("grp-one"); len(members) != 0 {
		t.Fatalf("a deleted container stays in its group: %v", members)
	}
	// Put the address back by hand, as a container lost without a detach
	// would leave it; the next container at that address must not be in
	// grp-one.
	if err := e.Network.AddToGroupForTest(a.Addr, "grp-one"); err != nil {
		t.Fatal(err)
	}
	// As it is once the allocation has gone round the pool.
	if err := e.Network.HandOutNextForTest(a.Addr); err != nil {
		t.Fatal(err)
	}
	c, out2, _ := start(t, e, func() *container.Spec { s := appSpec(t, "gb", "serve"); s.NetGroup = "grp-two"; return s }())
	waitFor(t, out2, "listening")
	if c.Addr != a.Addr {
		t.Skipf("the address was not reused (%s, then %s): another test holds the pool", a.Addr, c.Addr)
	}
	if m, _ := e.Network.Members("grp-one"); len(m) != 0 {
		t.Fatalf("grp-one still has %v", m)
	}
	if m, _ := e.Network.Members("grp-two"); len(m) != 1 || m[0] != c.Addr {
		t.Fatalf("grp-two: %v", m)
	}
}

// TestAddressNotReusedAtOnce: the address of a container just deleted is
// not the next one's: a router or readiness check still holding it (an
// instance is listed until its container is deleted) must not reach
// another app's new container there.
func TestAddressNotReusedAtOnce(t *testing.T) {
	e := containertest.New(t)
	a, out, _ := start(t, e, appSpec(t, "na", "serve"))
	waitFor(t, out, "listening")
	if err := a.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, out2, _ := start(t, e, appSpec(t, "nb", "serve"))
	waitFor(t, out2, "listening")
	if b.Addr == a.Addr {
		t.Fatalf("the address %s of a container just deleted went to the next one", a.Addr)
	}
}

// TestLinksSurviveNewNetwork: the daemon's restart (NewNetwork on an
// existing table) keeps the links and the groups' members.
func TestLinksSurviveNewNetwork(t *testing.T) {
	e := containertest.New(t)
	link := container.LinkRule{Group: "app-keep", Service: serviceAddr(e, 3), Port: 5432}
	if err := e.Network.Link(link); err != nil {
		t.Fatal(err)
	}
	a, out, _ := start(t, e, func() *container.Spec { s := appSpec(t, "keep", "serve"); s.NetGroup = "app-keep"; return s }())
	waitFor(t, out, "listening")
	nw, err := container.NewNetwork(e.NetworkConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if links, err := nw.Links(); err != nil || len(links) != 1 || links[0] != link {
		t.Fatalf("links after a new Network: %v %v", links, err)
	}
	if m, _ := nw.Members("app-keep"); len(m) != 1 || m[0] != a.Addr {
		t.Fatalf("members after a new Network: %v", m)
	}
}

// TestExec: a process run in a running container has the container's
// sandbox (ids, no capabilities, no_new_privs, seccomp), its exit code
// comes back, a terminal works, and a cancelled context kills it.
func TestExec(t *testing.T) {
	e := containertest.New(t)
	c, out, _ := start(t, e, appSpec(t, "exec", "serve"))
	waitFor(t, out, "listening")
	run := func(ex *container.Exec) (int, string) {
		t.Helper()
		f, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if !ex.Terminal {
			ex.Stdio.Stdout = f
		}
		code, err := c.Exec(context.Background(), ex)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(f.Name())
		return code, string(b)
	}
	if code, _ := run(&container.Exec{Args: []string{"/probe", "exit", "7"}, UID: 1000, GID: 1000}); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	code, status := run(&container.Exec{Args: []string{"/probe", "status"}, UID: 1000, GID: 1000, Env: []string{"SECRET=x"}})
	for _, want := range []string{"Uid: 1000 1000 1000 1000", "CapEff: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "uid_map: 0 1000000 65536"} {
		if code != 0 || !strings.Contains(status, want) {
			t.Errorf("exec status lacks %q: %d %s", want, code, status)
		}
	}
	var tty strings.Builder
	done := make(chan struct{})
	code, err := c.Exec(context.Background(), &container.Exec{Args: []string{"/probe", "status"}, UID: 1000, GID: 1000, Terminal: true,
		Console: func(m *os.File) {
			go func() {
				defer close(done)
				b := make([]byte, 4096)
				for {
					n, err := m.Read(b)
					tty.Write(b[:n])
					if err != nil {
						return
					}
				}
			}()
		}})
	if err != nil || code != 0 {
		t.Fatalf("exec with a terminal: %d %v", code, err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	if !strings.Contains(tty.String(), "tty: true") {
		t.Errorf("exec with a terminal saw no terminal: %q", tty.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if code, err := c.Exec(ctx, &container.Exec{Args: []string{"/probe", "sleep", "1h"}, UID: 1000, GID: 1000}); err != nil || code != 137 {
		t.Errorf("cancelled exec: %d %v (want 137, killed)", code, err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancelled exec took %s", time.Since(start))
	}
}

// TestRemoveGroup: removing a group (its app was destroyed) takes its set
// and every link of it out of the table in one step, and leaves the
// links and sets of other groups, those whose names it begins included.
func TestRemoveGroup(t *testing.T) {
	e := containertest.New(t)
	gone := []container.LinkRule{{Group: "gone", Service: serviceAddr(e, 4), Port: 5432}, {Group: "gone", Service: serviceAddr(e, 5), Port: 6379}}
	stay := []container.LinkRule{{Group: "gone-too", Service: serviceAddr(e, 4), Port: 5432}, {Group: "b-gone", Service: serviceAddr(e, 4), Port: 5432}}
	for _, l := range append(append([]container.LinkRule{}, gone...), stay...) {
		if err := e.Network.Link(l); err != nil {
			t.Fatal(err)
		}
	}
	hasSet := func(group string) bool {
		return exec.Command("nft", "list", "set", "inet", e.NetworkConfig.Table, "g-"+group).Run() == nil
	}
	if !hasSet("gone") {
		t.Fatal("Link made no set for its group")
	}
	if err := e.Network.RemoveGroup("gone"); err != nil {
		t.Fatal(err)
	}
	links, err := e.Network.Links()
	if err != nil || len(links) != 2 || links[0] != stay[1] || links[1] != stay[0] {
		t.Fatalf("links after removing group gone: %v %v (want %v)", links, err, stay)
	}
	if hasSet("gone") {
		o, _ := exec.Command("nft", "list", "table", "inet", e.NetworkConfig.Table).CombinedOutput()
		t.Fatalf("the set of a removed group stays:\n%s", o)
	}
	if !hasSet("gone-too") || !hasSet("b-gone") {
		t.Fatal("removing group gone took another group's set")
	}
	if err := e.Network.RemoveGroup("gone"); err != nil {
		t.Fatalf("removing it again: %v", err)
	}
	if err := e.Network.RemoveGroup("bad group"); err == nil {
		t.Fatal("RemoveGroup took an invalid group name")
	}
}

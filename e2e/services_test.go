package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notesApp is a Node.js app that uses PostgreSQL and Redis through the
// npm registry's `pg` and `redis` clients, from DATABASE_URL and REDIS_URL.
func notesApp(version string) map[string]string {
	return map[string]string{
		"package.json": `{
  "name": "notes", "version": "1.0.0", "private": true,
  "engines": {"node": "22.x"},
  "scripts": {"start": "node server.js"},
  "dependencies": {"pg": "8.13.1", "redis": "4.7.0"}
}
`,
		"VERSION": version + "\n",
		"server.js": `const http = require('http');
const net = require('net');
const { Pool } = require('pg');
const { createClient } = require('redis');

const pool = process.env.DATABASE_URL ? new Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5000, max: 4 }) : null;
if (pool) pool.on('error', () => {}); // an idle client whose server restarted: the next query gets a new one
let redis = null;
async function kv() {
  if (!process.env.REDIS_URL) throw new Error('no REDIS_URL');
  if (!redis) {
    redis = createClient({ url: process.env.REDIS_URL, socket: { connectTimeout: 5000, reconnectStrategy: n => Math.min(100 * n, 1000) } });
    redis.on('error', () => {});
    await redis.connect();
  }
  return redis;
}
function db() { if (!pool) throw new Error('no DATABASE_URL'); return pool; }

const routes = {
  // A row and a key in one request; both read back in the next.
  '/write': async q => {
    await db().query('CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, v text NOT NULL)');
    const r = await db().query('INSERT INTO notes (v) VALUES ($1) RETURNING id', [q.get('v')]);
    await (await kv()).set('note', q.get('v'));
    return { id: r.rows[0].id };
  },
  '/read': async () => {
    const r = await db().query('SELECT v FROM notes ORDER BY id');
    return { rows: r.rows.map(x => x.v), key: await (await kv()).get('note') };
  },
  // One committed row per request: its id comes back after the commit.
  '/insert': async q => {
    const r = await db().query('INSERT INTO notes (v) VALUES ($1) RETURNING id', [q.get('v') || 'x']);
    return { id: r.rows[0].id };
  },
  '/ids': async () => ({ ids: (await db().query('SELECT id FROM notes ORDER BY id')).rows.map(x => x.id) }),
  // Can this instance open TCP to host:port at all?
  '/tcp': q => new Promise(resolve => {
    const s = net.connect({ host: q.get('host'), port: +q.get('port'), timeout: 3000 });
    s.on('connect', () => { s.destroy(); resolve({ connected: true }); });
    s.on('timeout', () => { s.destroy(); resolve({ connected: false, error: 'timeout' }); });
    s.on('error', e => resolve({ connected: false, error: e.code || String(e) }));
  }),
  '/': async () => ({ version: process.env.SKIFF_RELEASE, db: !!process.env.DATABASE_URL, redis: !!process.env.REDIS_URL }),
};
http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://app');
  const route = routes[u.pathname];
  try {
    if (!route) { res.writeHead(404); return res.end(); }
    const out = await route(u.searchParams);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(out));
  } catch (e) {
    res.writeHead(500);
    res.end(String(e && e.message));
  }
}).listen(process.env.PORT);
`,
	}
}

// servicesDaemon starts a daemon of this test with the default builder.
func servicesDaemon(t *testing.T) (*daemon, *user, []string) {
	t.Helper()
	requireFull(t)
	dir := sandboxDir(t)
	d := &daemon{t: t, dir: dir, data: filepath.Join(dir, "data"), log: new(bytesBuffer)}
	hr := hostResources(3)
	args := []string{"--resource-prefix", hr.prefix, "--network-pool", hr.pool, "--debootstrap-cache", debootstrapCache, "--acme-ca", ""}
	d.startFull(args...)
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.teardown(hr.prefix, hr.pool)
		}
	})
	admin := d.addUser("admin", true)
	if r := d.local("", "builder:create"); r.code != 0 {
		t.Fatal(r)
	}
	return d, admin, args
}

// restart stops the daemon with SIGTERM and starts it again on the same
// HTTP address.
func (d *daemon) restart(args []string) {
	d.t.Helper()
	httpAddr := d.addr.HTTP
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	d.exited <- nil
	d.startFull(append(args, "--http-addr", httpAddr)...)
}

// call fetches an app's path and decodes its JSON answer.
func (d *daemon) call(t *testing.T, app, path string, v any) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.addr.HTTP+path, nil)
	req.Host = hostOf(app)
	c := http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s%s: %v in %q", app, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

type notes struct {
	Rows []string `json:"rows"`
	Key  string   `json:"key"`
}

// readNotes asks the app for its row and key, retrying while a restart of
// a server (or of the daemon) settles.
func (d *daemon) readNotes(t *testing.T, app string) notes {
	t.Helper()
	var n notes
	var body string
	var code int
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		n = notes{}
		if code, body = d.call(t, app, "/read", &n); code == 200 {
			return n
		}
	}
	t.Fatalf("/read of %s: %d %s", app, code, body)
	return n
}

// svcURL reads a service's URL from an app's config.
func (d *daemon) configVar(t *testing.T, u *user, app, key string) string {
	t.Helper()
	r := d.ssh(u, "", "config:get", app, key)
	if r.code != 0 {
		t.Fatalf("config:get %s %s: %s", app, key, r)
	}
	return strings.TrimSuffix(r.stdout, "\n")
}

type serviceInfo struct {
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	Address       string `json:"address"`
	Port          int    `json:"port"`
	ServerVersion string `json:"server_version"`
	Links         []struct {
		App string `json:"app"`
		Var string `json:"var"`
	} `json:"links"`
	Status struct {
		State       string `json:"state"`
		Restarts    int    `json:"restarts"`
		DiskBytes   int64  `json:"disk_bytes"`
		Connections int    `json:"connections"`
	} `json:"status"`
}

func (d *daemon) serviceInfo(t *testing.T, u *user, kind, name string) serviceInfo {
	t.Helper()
	r := d.ssh(u, "", kind+":info", name, "--format", "json")
	var s serviceInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &s) != nil {
		t.Fatalf("%s:info %s: %s", kind, name, r)
	}
	return s
}

// inserter asks the app for one committed row after another, recording
// the ids it was told were committed, until stop.
type inserter struct {
	mu    sync.Mutex
	acked []int
	fails int
	stop  chan struct{}
	done  chan struct{}
}

func (d *daemon) startInserter(t *testing.T, app string) *inserter {
	in := &inserter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(in.done)
		c := http.Client{Timeout: 10 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-in.stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", "http://"+d.addr.HTTP+"/insert?v=w"+strconv.Itoa(i), nil)
			req.Host = hostOf(app)
			resp, err := c.Do(req)
			if err != nil {
				in.mu.Lock()
				in.fails++
				in.mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				continue
			}
			var v struct{ ID int }
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			in.mu.Lock()
			if resp.StatusCode == 200 && json.Unmarshal(b, &v) == nil && v.ID > 0 {
				in.acked = append(in.acked, v.ID)
			} else {
				in.fails++
			}
			in.mu.Unlock()
		}
	}()
	return in
}

func (in *inserter) snapshot() []int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]int(nil), in.acked...)
}

func (in *inserter) end() []int {
	close(in.stop)
	<-in.done
	return in.snapshot()
}

// waitAcked waits until the inserter has n more acknowledged rows.
func (in *inserter) waitAcked(t *testing.T, n int) {
	t.Helper()
	start := len(in.snapshot())
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if len(in.snapshot()) >= start+n {
			return
		}
	}
	t.Fatalf("the app committed fewer than %d rows in 2 minutes (%d failures)", n, in.fails)
}

// missing returns the acked ids that are not in have.
func missing(acked, have []int) []int {
	set := map[int]bool{}
	for _, id := range have {
		set[id] = true
	}
	var out []int
	for _, id := range acked {
		if !set[id] {
			out = append(out, id)
		}
	}
	return out
}

func (d *daemon) ids(t *testing.T, app string) []int {
	t.Helper()
	var v struct{ IDs []int }
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if code, _ := d.call(t, app, "/ids", &v); code == 200 {
			return v.IDs
		}
	}
	t.Fatalf("/ids of %s never answered", app)
	return nil
}

// serverPIDs lists the host pids of the processes of a service's
// container, from its cgroup (the daemon's own cgroup parent for services).
func serverPIDs(t *testing.T, prefix, service string) []int {
	t.Helper()
	matches, _ := filepath.Glob("/sys/fs/cgroup/pids/" + prefix + "-services/" + service + ".*/cgroup.procs")
	if m, _ := filepath.Glob("/sys/fs/cgroup/" + prefix + "-services/" + service + ".*/cgroup.procs"); len(m) > 0 {
		matches = append(matches, m...)
	}
	var pids []int
	for _, m := range matches {
		b, _ := os.ReadFile(m)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// postmaster finds the PostgreSQL server's main process of a service.
func postmaster(t *testing.T, prefix, service string) int {
	t.Helper()
	for _, pid := range serverPIDs(t, prefix, service) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(b), "\x00")
		ppid := 0
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			s := string(st)
			fmt.Sscan(strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[1], &ppid)
		}
		// The postmaster is the postgres process whose parent is skiff-init.
		if len(args) > 0 && strings.HasSuffix(args[0], "/bin/postgres") {
			if pb, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid)); strings.HasPrefix(string(pb), "/dev/init") {
				return pid
			}
		}
	}
	t.Fatalf("no postmaster in the cgroup of %s", service)
	return 0
}

// TestServices is the life of an app with a database and a cache, as a
// user lives it: both created, linked (a release each, with no failed
// request), written and read in one request each, through a redeploy, a
// restart of each server and of the daemon; an unlinked app cannot reach
// them even with the credentials; a backup taken while the app writes
// restores into a new database with every row committed before it began;
// kill -9 of the server mid-write loses no committed row; the daemon
// killed mid-create and mid-link leaves no half-made service or link;
// psql works over `ssh -t`; destroy asks, and refuses while linked.
func TestServices(t *testing.T) {
	d, admin, args := servicesDaemon(t)
	prefix := hostResources(3).prefix

	// The first create makes the service images (debootstrap, cached).
	r := d.ssh(admin, "", "postgres:create", "notesdb", "--memory", "256m")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "notesdb" {
		t.Fatalf("postgres:create: %s", r)
	}
	for _, want := range []string{"-----> Creating postgres notesdb (postgres 15.", "is ready"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("postgres:create output lacks %q:\n%s", want, r.stderr)
		}
	}
	if r := d.ssh(admin, "", "redis:create", "notescache"); r.code != 0 {
		t.Fatalf("redis:create: %s", r)
	}
	// A scheduled backup every minute, keeping one: checked at the end.
	if r := d.ssh(admin, "", "postgres:backup-schedule", "notesdb", "* * * * *", "--keep", "1"); r.code != 0 {
		t.Fatalf("backup-schedule: %s", r)
	}
	if r := d.ssh(admin, "", "help", "postgres"); r.code != 0 || !strings.Contains(r.stdout, "postgres:backup-schedule") || !strings.Contains(r.stdout, "postgres:connect") {
		t.Errorf("help postgres:\n%s", r.stdout)
	}
	if r := d.ssh(admin, "", "help", "postgres:create"); !strings.Contains(r.stdout, "15 (the default), or --version 17") {
		t.Errorf("help postgres:create names no versions:\n%s", r.stdout)
	}

	const app, other = "notes", "stranger"
	repo := newRepo(t, notesApp("1"))
	d.git(admin, repo, "remote", "add", "skiff", d.remote(app))
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push: %s", r)
	}
	if r := d.git(admin, newRepo(t, notesApp("1")), "push", d.remote(other), "main"); r.code != 0 {
		t.Fatalf("push %s: %s", other, r)
	}

	// Links make releases that roll out like a deploy: no request fails.
	stopProbe, probed := make(chan struct{}), make(chan struct{})
	var probeCodes sync.Map
	go func() {
		defer close(probed)
		for {
			select {
			case <-stopProbe:
				return
			default:
			}
			code, _ := d.call(t, app, "/", nil)
			n, _ := probeCodes.LoadOrStore(code, new(int))
			*n.(*int)++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for _, kind := range []string{"postgres", "redis"} {
		name := map[string]string{"postgres": "notesdb", "redis": "notescache"}[kind]
		r := d.ssh(admin, "", kind+":link", name, app)
		if r.code != 0 || !strings.Contains(r.stderr, "Linking "+name+" to notes as") {
			t.Fatalf("%s:link: %s", kind, r)
		}
	}
	close(stopProbe)
	<-probed
	probeCodes.Range(func(k, v any) bool {
		if k.(int) != 200 {
			t.Errorf("during the links the app answered %d %d times", k, *v.(*int))
		}
		return true
	})
	dbURL, redisURL := d.configVar(t, admin, app, "DATABASE_URL"), d.configVar(t, admin, app, "REDIS_URL")
	if !strings.HasPrefix(dbURL, "postgres://app:") || !strings.HasSuffix(dbURL, "/notesdb") || !strings.HasPrefix(redisURL, "redis://:") {
		t.Fatalf("URLs: %q %q", dbURL, redisURL)
	}
	if rel := d.ssh(admin, "", "releases", app).stdout; !strings.Contains(rel, "Link notesdb as DATABASE_URL") {
		t.Errorf("releases lack the link's:\n%s", rel)
	}

	// A row and a key in one request, read back in the next.
	var w struct{ ID int }
	if code, body := d.call(t, app, "/write?v=first", &w); code != 200 || w.ID == 0 {
		t.Fatalf("/write: %d %s", code, body)
	}
	check := func(when string) {
		t.Helper()
		if n := d.readNotes(t, app); len(n.Rows) == 0 || n.Rows[0] != "first" || n.Key == "" {
			t.Fatalf("%s: /read gave %+v", when, n)
		}
	}
	check("after the write")

	// The linked app is counted; info tells the version, state and disk.
	info := d.serviceInfo(t, admin, "postgres", "notesdb")
	if info.Status.State != "up" || !strings.HasPrefix(info.ServerVersion, "15.") || info.Status.DiskBytes < 1<<20 ||
		info.Status.Connections < 1 || len(info.Links) != 1 || info.Links[0].App != app || info.Links[0].Var != "DATABASE_URL" {
		t.Errorf("postgres:info: %+v", info)
	}
	if r := d.ssh(admin, "", "postgres:info", "notesdb"); !strings.Contains(r.stdout, "Linked apps:") || !strings.Contains(r.stdout, "notes (DATABASE_URL)") {
		t.Errorf("postgres:info:\n%s", r.stdout)
	}

	// A redeploy, a restart of each server, a restart of the daemon.
	commit(t, repo, "VERSION", "2\n", "v2")
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push v2: %s", r)
	}
	check("after a redeploy")
	for _, s := range [][2]string{{"postgres", "notesdb"}, {"redis", "notescache"}} {
		if r := d.ssh(admin, "", s[0]+":restart", s[1]); r.code != 0 {
			t.Fatalf("%s:restart: %s", s[0], r)
		}
	}
	if after := d.serviceInfo(t, admin, "postgres", "notesdb"); after.Address != info.Address {
		t.Errorf("the address moved across a restart: %s, then %s", info.Address, after.Address)
	}
	check("after the servers restarted")
	d.restart(args)
	check("after the daemon restarted")

	// An app that is not linked does not reach either server, not even
	// with the credentials in its config.
	for _, s := range []serviceInfo{info, d.serviceInfo(t, admin, "redis", "notescache")} {
		var v struct {
			Connected bool
			Error     string
		}
		if code, body := d.call(t, other, fmt.Sprintf("/tcp?host=%s&port=%d", s.Address, s.Port), &v); code != 200 || v.Connected {
			t.Errorf("the unlinked app reached %s at %s:%d: %d %s", s.Name, s.Address, s.Port, code, body)
		}
		// The linked one does, by the same path.
		if code, body := d.call(t, app, fmt.Sprintf("/tcp?host=%s&port=%d", s.Address, s.Port), &v); code != 200 || !v.Connected {
			t.Errorf("the linked app did not reach %s: %d %s", s.Name, code, body)
		}
	}
	if r := d.ssh(admin, "", "config:set", other, "DATABASE_URL="+dbURL); r.code != 0 {
		t.Fatal(r)
	}
	if code, body := d.call(t, other, "/ids", nil); code == 200 {
		t.Errorf("the unlinked app read the database with its credentials: %s", body)
	}
	// Nor does the host, or the router.
	if c, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp", net.JoinHostPort(info.Address, strconv.Itoa(info.Port))); err == nil {
		c.Close()
		t.Error("the host reached the database")
	}

	// A backup taken while the app writes holds every row committed
	// before it began; it restores into a new database.
	ins := d.startInserter(t, app)
	ins.waitAcked(t, 20)
	before := ins.snapshot()
	dump := filepath.Join(t.TempDir(), "notes.dump")
	f, err := os.Create(dump)
	if err != nil {
		t.Fatal(err)
	}
	bk := exec.Command("ssh", append(append(d.sshBase(admin), "skiff@127.0.0.1", "--"), "postgres:backup", "notesdb")...)
	var bkErr bytesBuffer
	bk.Stdout, bk.Stderr = f, &bkErr
	if err := bk.Run(); err != nil {
		t.Fatalf("postgres:backup: %v\n%s", err, bkErr.String())
	}
	f.Close()
	ins.waitAcked(t, 10)
	if !strings.Contains(bkErr.String(), "-----> Backup of notesdb done:") {
		t.Errorf("backup progress:\n%s", bkErr.String())
	}

	// kill -9 of the server while the app writes: it restarts, and no
	// committed row is lost.
	if err := syscall.Kill(postmaster(t, prefix, "notesdb"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ins.waitAcked(t, 20) // the app writes again once the server is back
	acked := ins.end()
	if lost := missing(acked, d.ids(t, app)); len(lost) > 0 {
		t.Fatalf("kill -9 of PostgreSQL lost %d committed rows: %v", len(lost), lost)
	}
	if s := d.serviceInfo(t, admin, "postgres", "notesdb"); s.Status.Restarts < 1 || s.Status.State != "up" {
		t.Errorf("after the kill, info: %+v", s.Status)
	}

	if r := d.ssh(admin, "", "postgres:create", "restored"); r.code != 0 {
		t.Fatal(r)
	}
	dumpIn, _ := os.ReadFile(dump)
	if r := d.ssh(admin, string(dumpIn), "postgres:restore", "restored"); r.code != 0 || !strings.Contains(r.stderr, "Restored restored") {
		t.Fatalf("postgres:restore: %s", r)
	}
	r = d.ssh(admin, "SELECT id FROM notes ORDER BY id;\n", "postgres:connect", "restored")
	var restored []int
	for _, f := range strings.Fields(r.stdout) {
		if n, err := strconv.Atoi(f); err == nil {
			restored = append(restored, n)
		}
	}
	if lost := missing(before, restored); r.code != 0 || len(lost) > 0 {
		t.Fatalf("the restored database lacks %d rows committed before the backup: %v\n%s", len(lost), lost, r)
	}
	// A dump that is not one changes nothing.
	if r := d.ssh(admin, "not a dump", "postgres:restore", "restored"); r.code != 1 || !strings.Contains(r.stderr, "changed nothing") {
		t.Errorf("restore of garbage: %s", r)
	}

	// psql in a terminal, over ssh -t.
	ttyOut := d.sshTTY(t, admin, "postgres:connect notesdb", "\\pset pager off\nSELECT 40 + 2 AS answer;\n\\q\n")
	if !strings.Contains(ttyOut, "42") || !strings.Contains(ttyOut, "notesdb=>") {
		t.Errorf("psql over ssh -t:\n%s", ttyOut)
	}

	// Another user sees none of it: the same answer for a service that is
	// not theirs as for one that does not exist.
	bob := d.addUser("bob", false)
	for _, args := range [][]string{{"postgres:info", "notesdb"}, {"postgres:connect", "notesdb"}, {"postgres:backup", "notesdb"},
		{"postgres:restore", "notesdb"}, {"postgres:link", "notesdb", app}, {"postgres:destroy", "notesdb", "--force"},
		{"redis:info", "notesdb"}, {"postgres:info", "nosuchdb"}, {"addons:info", "notesdb"}} {
		if r := d.ssh(bob, "SELECT 1;", args...); r.code != 1 || strings.TrimSpace(r.stderr) != "!     not authorized" || r.stdout != "" {
			t.Errorf("bob: %v: %s", args, r)
		}
	}
	if r := d.ssh(bob, "", "addons", "--format", "json"); strings.Contains(r.stdout, "notesdb") {
		t.Errorf("bob's addons list another's: %s", r.stdout)
	}
	if r := d.ssh(admin, "", "postgres:create", "Bad_Name"); r.code != 1 || !strings.Contains(r.stderr, "invalid service name") {
		t.Errorf("a bad name: %s", r)
	}

	// Destroy asks, and refuses while linked.
	if r := d.ssh(admin, "", "postgres:destroy", "notesdb"); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("destroy without --force: %s", r)
	}
	if r := d.ssh(admin, "", "postgres:destroy", "notesdb", "--force"); r.code != 1 || !strings.Contains(r.stderr, "linked to notes") {
		t.Errorf("destroy while linked: %s", r)
	}

	// Unlinking cuts the path at once, then unsets the var.
	if r := d.ssh(admin, "", "redis:unlink", "notescache", app); r.code != 0 {
		t.Fatalf("redis:unlink: %s", r)
	}
	if r := d.ssh(admin, "", "config", app); strings.Contains(r.stdout, "REDIS_URL") {
		t.Errorf("REDIS_URL is still set:\n%s", r.stdout)
	}
	var v struct{ Connected bool }
	if rs := d.serviceInfo(t, admin, "redis", "notescache"); true {
		if code, body := d.call(t, app, fmt.Sprintf("/tcp?host=%s&port=%d", rs.Address, rs.Port), &v); code != 200 || v.Connected {
			t.Errorf("after the unlink the app reached redis: %s", body)
		}
	}
	if r := d.ssh(admin, "", "redis:destroy", "notescache", "--force"); r.code != 0 {
		t.Errorf("redis:destroy: %s", r)
	}

	// The scheduled backups: taken each minute, one kept.
	var backups []struct{ Name string }
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(5 * time.Second) {
		r := d.ssh(admin, "", "postgres:backups", "notesdb", "--format", "json")
		backups = nil
		json.Unmarshal([]byte(r.stdout), &backups)
		logs := d.ssh(admin, "", "postgres:logs", "notesdb", "-n", "1000").stdout
		if strings.Count(logs, "Stored backup") >= 2 && len(backups) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduled backups: %+v\n%s", backups, logs)
		}
	}
	if r := d.ssh(admin, "", "postgres:restore", "notesdb", "--from", backups[0].Name); r.code != 0 {
		t.Errorf("restore from a stored backup: %s", r)
	}
	if r := d.ssh(admin, "", "postgres:restore", "notesdb", "--from", "../../../skiff.db"); r.code != 1 || !strings.Contains(r.stderr, "is not a backup name") {
		t.Errorf("restore from a path: %s", r)
	}

	// A service's disk is a file system of its own: filling it is an
	// error for the transaction that does, the server stays up, nothing
	// committed is lost, and the host's disk is not touched. (The WAL has
	// a disk of its own, so the data cannot take its room: PostgreSQL
	// PANICs and stays down when its WAL cannot be written.)
	if r := d.ssh(admin, "", "postgres:create", "tinydb", "--disk", "160m"); r.code != 0 {
		t.Fatalf("create with --disk: %s", r)
	}
	r = d.ssh(admin, "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('safe');\nCREATE TABLE big (b text);\n"+
		"ALTER TABLE big ALTER b SET STORAGE EXTERNAL;\nINSERT INTO big SELECT repeat('x', 1048576) FROM generate_series(1, 300);\n"+
		"SELECT v FROM keep;\n", "postgres:connect", "tinydb")
	if !strings.Contains(r.stderr, "No space left on device") || strings.Contains(r.stderr, "PANIC") || !strings.Contains(r.stdout, "safe") {
		t.Fatalf("filling a service's disk: %s", r)
	}
	if s := d.serviceInfo(t, admin, "postgres", "tinydb"); s.Status.State != "up" || s.Status.Restarts != 0 || s.Status.DiskBytes < 100<<20 {
		t.Errorf("after its disk filled: %+v", s.Status)
	}
	if r := d.ssh(admin, "DROP TABLE big; INSERT INTO keep VALUES ('again'); SELECT count(*) FROM keep;\n", "postgres:connect", "tinydb"); !strings.Contains(r.stdout, " 2\n") {
		t.Errorf("after freeing space: %s", r)
	}
	if r := d.ssh(admin, "", "postgres:destroy", "tinydb", "--force"); r.code != 0 {
		t.Fatal(r)
	}

	// kill -9 of the daemon in the middle of a create leaves nothing of
	// the service; the name can be used again.
	killMidway := func(what string, args2 ...string) string {
		t.Helper()
		cmd := exec.Command("ssh", append(append(d.sshBase(admin), "skiff@127.0.0.1", "--"), args2...)...)
		var out bytesBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out.String(), what); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%v never printed %q:\n%s", args2, what, out.String())
			}
		}
		d.kill9()
		cmd.Wait()
		d.startFull(append(args, "--http-addr", d.addr.HTTP)...)
		return out.String()
	}
	killMidway("initdb", "postgres:create", "halfdb")
	if r := d.ssh(admin, "", "addons", "--format", "json"); strings.Contains(r.stdout, "halfdb") {
		t.Errorf("a half-made service is listed: %s", r.stdout)
	}
	if r := d.ssh(admin, "", "postgres:info", "halfdb"); r.code != 1 || !strings.Contains(r.stderr, "there is no postgres service halfdb") {
		t.Errorf("postgres:info of a half-made service: %s", r)
	}
	if vols, _ := os.ReadDir(filepath.Join(d.data, "volumes")); len(vols) != 2 { // notesdb and restored
		t.Errorf("volumes left: %v", vols)
	}
	if r := d.ssh(admin, "", "postgres:create", "halfdb"); r.code != 0 {
		t.Fatalf("create again after the kill: %s", r)
	}

	// kill -9 mid-link: afterwards the link is whole (var set, path open)
	// or not there at all (neither).
	out := killMidway("Linking halfdb", "postgres:link", "halfdb", other)
	half := d.serviceInfo(t, admin, "postgres", "halfdb")
	vars := d.ssh(admin, "", "config", other, "--format", "json").stdout
	var reach struct{ Connected bool }
	d.call(t, other, fmt.Sprintf("/tcp?host=%s&port=%d", half.Address, half.Port), &reach)
	linked := len(half.Links) == 1
	if linked != strings.Contains(vars, "/halfdb") || linked != reach.Connected {
		t.Fatalf("after kill -9 mid-link: links %+v, path open %v, config %s\n%s", half.Links, reach.Connected, vars, out)
	}
	t.Logf("the link killed midway was %s", map[bool]string{true: "completed", false: "undone"}[linked])
}

// sshTTY runs a command over ssh -t with input typed into its terminal,
// and returns what the terminal showed.
func (d *daemon) sshTTY(t *testing.T, u *user, command, input string) string {
	t.Helper()
	// script(1) gives ssh a terminal of its own, as a user's would be.
	line := "ssh -tt " + strings.Join(d.sshBase(u), " ") + " skiff@127.0.0.1 " + command
	ctx := withTimeout(t, time.Minute)
	cmd := exec.CommandContext(ctx, "script", "-qec", line, "/dev/null")
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("ssh -t %s: %v", command, err)
	}
	return string(out)
}

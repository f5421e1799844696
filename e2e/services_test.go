package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notesApp is a Node.js app that uses PostgreSQL and Redis through the
// npm registry's `pg` and `redis` clients, from DATABASE_URL and REDIS_URL.
// probe.js, run by cron each minute and as a one-off, queries the database;
// its build tries the services that probe.json (when there is one) names.
func notesApp(version string) map[string]string {
	return map[string]string{
		"package.json": `{
  "name": "notes", "version": "1.0.0", "private": true,
  "engines": {"node": "22.x"},
  "scripts": {"start": "node server.js", "build": "node build-probe.js"},
  "dependencies": {"pg": "8.13.1", "redis": "4.7.0"}
}
`,
		"app.json": `{"cron": [{"command": "node probe.js", "schedule": "* * * * *"}]}
`,
		"VERSION": version + "\n",
		"probe.js": `const { Client } = require('pg');
(async () => {
  if (!process.env.DATABASE_URL) { console.log('probe: no DATABASE_URL'); process.exit(2); }
  const c = new Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const r = await c.query("SELECT 'reached ' || current_database() AS v");
    console.log('probe: ' + r.rows[0].v);
    await c.end();
  } catch (e) {
    console.log('probe: cannot reach the database: ' + (e.code || e.message));
    process.exit(1);
  }
})();
`,
		"build-probe.js": `const fs = require('fs'), net = require('net');
if (!fs.existsSync('probe.json')) process.exit(0);
console.log('build-probe: REDIS_URL ' + (process.env.REDIS_URL ? 'set' : 'unset') + ', DATABASE_URL ' + (process.env.DATABASE_URL ? 'set' : 'unset'));
(async () => {
  for (const t of JSON.parse(fs.readFileSync('probe.json', 'utf8'))) {
    const ok = await new Promise(resolve => {
      const s = net.connect({ host: t.host, port: t.port, timeout: 3000 });
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('timeout', () => { s.destroy(); resolve(false); });
      s.on('error', () => resolve(false));
    });
    console.log('build-probe: ' + t.name + (ok ? ' reached' : ' unreachable'));
  }
})();
`,
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
// HTTP address; meanwhile (no daemon runs) it calls between, if not nil.
func (d *daemon) restart(args []string, between func()) {
	d.t.Helper()
	httpAddr := d.addr.HTTP
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	d.exited <- nil
	if between != nil {
		between()
	}
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
// memoryLimit is the memory limit of a service's cgroup.
func memoryLimit(t *testing.T, prefix, service string) int64 {
	t.Helper()
	for _, pat := range []string{"/sys/fs/cgroup/memory/%s-services/%s.*/memory.limit_in_bytes", "/sys/fs/cgroup/%s-services/%s.*/memory.max"} {
		if m, _ := filepath.Glob(fmt.Sprintf(pat, prefix, service)); len(m) > 0 {
			b, _ := os.ReadFile(m[0])
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
	}
	t.Errorf("no memory cgroup of %s", service)
	return 0
}

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
	// Redis's backups once a year: the daemon restart below makes one due.
	if r := d.ssh(admin, "", "redis:backup-schedule", "notescache", "0 0 1 1 *", "--keep", "3"); r.code != 0 {
		t.Fatalf("redis:backup-schedule: %s", r)
	}
	// A scheduled backup every minute, keeping one: checked at the end.
	if r := d.ssh(admin, "", "postgres:backup-schedule", "notesdb", "* * * * *", "--keep", "1"); r.code != 0 {
		t.Fatalf("backup-schedule: %s", r)
	}
	for _, kind := range []string{"postgres", "redis"} {
		if r := d.ssh(admin, "", "help", kind); r.code != 0 || !strings.Contains(r.stdout, kind+":backup-schedule") || !strings.Contains(r.stdout, kind+":connect") {
			t.Errorf("help %s:\n%s", kind, r.stdout)
		}
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
	// Redis is linked --builds: the app's builds reach it too.
	for _, kind := range []string{"postgres", "redis"} {
		name := map[string]string{"postgres": "notesdb", "redis": "notescache"}[kind]
		args := map[string][]string{"postgres": {name, app}, "redis": {name, app, "--builds"}}[kind]
		r := d.ssh(admin, "", append([]string{kind + ":link"}, args...)...)
		if r.code != 0 || !strings.Contains(r.stderr, "Linking "+name+" to notes as") || (kind == "redis") != strings.Contains(r.stderr, "(its builds too)") {
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
	// The generated passwords are on no process's command line (which
	// every user of the host may read).
	for _, u := range []string{dbURL, redisURL} {
		parsed, _ := url.Parse(u)
		pw, _ := parsed.User.Password()
		for _, name := range []string{"notesdb", "notescache"} {
			for _, pid := range serverPIDs(t, prefix, name) {
				if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); len(pw) < 16 || strings.Contains(string(b), pw) {
					t.Errorf("a password of %d characters, or on the command line of %s's %q", len(pw), name, b)
				}
			}
		}
	}
	// Their memory settings follow --memory: 256m gives PostgreSQL a
	// quarter as shared buffers; Redis's maxmemory is under its 512m.
	if r := d.ssh(admin, "SHOW shared_buffers;\n", "postgres:connect", "notesdb"); !strings.Contains(r.stdout, "64MB") {
		t.Errorf("shared_buffers of a 256m PostgreSQL: %s", r)
	}
	if r := d.ssh(admin, "CONFIG GET maxmemory\n", "redis:connect", "notescache"); len(strings.Fields(r.stdout)) != 2 {
		t.Errorf("redis maxmemory: %s", r)
	} else if n, _ := strconv.ParseInt(strings.Fields(r.stdout)[1], 10, 64); n <= 0 || n >= 512<<20 {
		t.Errorf("redis maxmemory is %d, for a 512m limit", n)
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
	// The servers run sandboxed: no capabilities, no_new_privs, seccomp,
	// a user namespace (not the host's root).
	for _, name := range []string{"notesdb", "notescache"} {
		for _, pid := range serverPIDs(t, prefix, name) {
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
			for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
				if !strings.Contains(string(st), want) {
					t.Errorf("%s's process %d lacks %q", name, pid, want)
				}
			}
			if f := strings.Fields(string(uidMap)); len(f) < 3 || f[1] == "0" {
				t.Errorf("%s's process %d maps its ids as %q", name, pid, uidMap)
			}
		}
	}
	// The servers run under their memory limits: --memory, else 512 MiB.
	for name, want := range map[string]int64{"notesdb": 256 << 20, "notescache": 512 << 20} {
		if got := memoryLimit(t, prefix, name); got != want {
			t.Errorf("%s's memory limit is %d, want %d", name, got, want)
		}
	}

	// A redeploy, a restart of each server, a restart of the daemon. The
	// build reaches Redis (linked --builds) and has its REDIS_URL, not
	// PostgreSQL (linked without).
	redisInfo := d.serviceInfo(t, admin, "redis", "notescache")
	commit(t, repo, "probe.json", fmt.Sprintf(`[{"name": "notesdb", "host": %q, "port": %d}, {"name": "notescache", "host": %q, "port": %d}]`,
		info.Address, info.Port, redisInfo.Address, redisInfo.Port), "probe the services from the build")
	commit(t, repo, "VERSION", "2\n", "v2")
	if r := d.git(admin, repo, "push", "skiff", "main"); r.code != 0 {
		t.Fatalf("push v2: %s", r)
	} else {
		for _, want := range []string{"build-probe: REDIS_URL set, DATABASE_URL unset", "build-probe: notesdb unreachable", "build-probe: notescache reached"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("the build's probe did not print %q:\n%s", want, r.stderr)
			}
		}
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
	// While no daemon runs, Redis's yearly backup falls three years due
	// and its server dies (as in a long outage and a reboot): the next
	// start takes the backup once the server answers again, and once.
	d.restart(args, func() {
		for _, pid := range serverPIDs(t, prefix, "notescache") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		q := fmt.Sprintf("UPDATE service_backup_schedules SET last_run = '%s' WHERE service_id = (SELECT id FROM services WHERE name = 'notescache')",
			time.Now().UTC().AddDate(-3, 0, 0).Format("2006-01-02T15:04:05.000000000Z"))
		if out, err := exec.Command("sqlite3", filepath.Join(d.data, "skiff.db"), q).CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v %s", err, out)
		}
	})
	check("after the daemon restarted")
	redisBackups := func() []struct{ Name string } {
		var b []struct{ Name string }
		r := d.ssh(admin, "", "redis:backups", "notescache", "--format", "json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &b) != nil {
			t.Fatalf("redis:backups: %s", r)
		}
		return b
	}
	for deadline := time.Now().Add(time.Minute); len(redisBackups()) == 0; time.Sleep(2 * time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("the missed backup was not taken at the start:\n%s", d.ssh(admin, "", "redis:logs", "notescache", "-n", "50").stdout)
		}
	}

	// The app's one-off runs and cron runs reach the database too (the
	// cron runs are checked at the end).
	if r := d.ssh(admin, "", "run", app, "node probe.js"); r.code != 0 || !strings.Contains(r.stdout, "probe: reached notesdb") {
		t.Errorf("a one-off run of the linked app: %s", r)
	}

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
	if r := d.ssh(admin, "", "run", other, "node probe.js"); r.code != 1 || !strings.Contains(r.stdout, "probe: cannot reach the database") {
		t.Errorf("a one-off run of the unlinked app: %s", r)
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

	// Into PostgreSQL 17: a service keeps its version, and this is how
	// its data moves to another (README: "Upgrades").
	if r := d.ssh(admin, "", "postgres:create", "restored", "--version", "17"); r.code != 0 {
		t.Fatal(r)
	}
	if s := d.serviceInfo(t, admin, "postgres", "restored"); !strings.HasPrefix(s.ServerVersion, "17.") {
		t.Errorf("postgres:create --version 17 made %+v", s)
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
	// And as a user at a terminal has it, typing at the prompt: over
	// ssh -t, and with the skiff command on the server (which once gave
	// psql no terminal and no input: it printed nothing).
	for _, cmd := range []*exec.Cmd{
		exec.Command("ssh", append(append([]string{"-t"}, d.sshBase(admin)...), "skiff@127.0.0.1", "postgres:connect", "notesdb")...),
		exec.Command(skiffBin, "--data", d.data, "postgres:connect", "notesdb"),
	} {
		term := startTerminal(t, cmd)
		if term.waitFor("notesdb=>") {
			// psql starts on a terminal of the client's size (40×120):
			// one row is not paged (it was, when psql read 0×0).
			term.typeLine("SELECT 40 + 2 AS answer;")
			term.waitFor("42\r\n(1 row)")
		}
		term.typeLine("\\q")
		if err := term.end(); err != nil {
			t.Errorf("%s postgres:connect in a terminal: %v\n%q", cmd.Args[0], err, term.shown())
		}
	}

	// Another user sees none of it: the same answer for a service that is
	// not theirs as for one that does not exist.
	bob := d.addUser("bob", false)
	for _, args := range [][]string{{"postgres:info", "notesdb"}, {"postgres:connect", "notesdb"}, {"postgres:backup", "notesdb"},
		{"postgres:restore", "notesdb"}, {"postgres:link", "notesdb", app}, {"postgres:destroy", "notesdb", "--force"},
		{"redis:info", "notesdb"}, {"postgres:info", "nosuchdb"}, {"addons:info", "notesdb"},
		{"postgres:unlink", "notesdb", app}, {"postgres:restart", "notesdb"}, {"postgres:logs", "notesdb"}, {"postgres:backups", "notesdb"},
		{"postgres:backup-schedule", "notesdb", "off"}, {"postgres:export", "notesdb"}, {"postgres:import", "notesdb"}, {"redis:connect", "notescache"},
		{"addons:attach", "notesdb", app}, {"addons:detach", "notesdb", app}, {"addons:destroy", "notesdb", "--force"}} {
		if r := d.ssh(bob, "SELECT 1;", args...); r.code != 1 || strings.TrimSpace(r.stderr) != "!     not authorized" || r.stdout != "" {
			t.Errorf("bob: %v: %s", args, r)
		}
	}
	if r := d.ssh(bob, "", "addons", "--format", "json"); strings.Contains(r.stdout, "notesdb") {
		t.Errorf("bob's addons list another's: %s", r.stdout)
	}
	// Bob's own service (a Redis 8, from the image the PostgreSQL 17 came
	// with) cannot be linked to an app he has no access to.
	if r := d.ssh(bob, "", "redis:create", "bobcache", "--version", "8"); r.code != 0 {
		t.Fatalf("bob's redis:create: %s", r)
	}
	if s := d.serviceInfo(t, bob, "redis", "bobcache"); !strings.HasPrefix(s.ServerVersion[strings.Index(s.ServerVersion, ":")+1:], "8.") { // Debian's 5:8.0.2-3
		t.Errorf("redis:create --version 8 made %+v", s)
	}
	if r := d.ssh(bob, "", "redis:link", "bobcache", app); r.code != 1 || !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("bob linked his service to another's app: %s", r)
	}
	if r := d.ssh(admin, "", "config", app); strings.Contains(r.stdout, "bobcache") || strings.Count(r.stdout, "redis://") != 1 {
		t.Errorf("the app's config after bob's link:\n%s", r.stdout)
	}
	var listed []struct{ Name, Kind string }
	if r := d.ssh(bob, "", "redis", "--format", "json"); json.Unmarshal([]byte(r.stdout), &listed) != nil || len(listed) != 1 || listed[0].Name != "bobcache" {
		t.Errorf("bob's redis list: %s", r)
	}
	if r := d.ssh(bob, "", "redis:destroy", "bobcache", "--force"); r.code != 0 {
		t.Errorf("bob's redis:destroy: %s", r)
	}
	// A service's data counts in storage:report; the storage commands
	// neither remove nor mount it.
	type volumeRow struct {
		Name, Service string
		UsedBytes     int64 `json:"used_bytes"`
	}
	var storage struct{ Volumes []volumeRow }
	if r := d.ssh(admin, "", "storage:report", "--format", "json"); json.Unmarshal([]byte(r.stdout), &storage) != nil ||
		!slices.ContainsFunc(storage.Volumes, func(v volumeRow) bool {
			return v.Name == "service-notesdb" && v.Service == "notesdb" && v.UsedBytes > 1<<20
		}) {
		t.Errorf("storage:report: %s", r)
	}
	if r := d.ssh(admin, "", "storage:destroy", "service-notesdb", "--force"); r.code != 1 || !strings.Contains(r.stderr, "holds the data of service notesdb") {
		t.Errorf("storage:destroy of a service's volume: %s", r)
	}
	if r := d.ssh(admin, "", "storage:mount", app, "service-notesdb:/data"); r.code != 1 || !strings.Contains(r.stderr, "holds the data of service notesdb") {
		t.Errorf("storage:mount of a service's volume: %s", r)
	}
	// The lists and reports take --format json.
	if r := d.ssh(admin, "", "postgres:list", "--format", "json"); json.Unmarshal([]byte(r.stdout), &listed) != nil || len(listed) != 2 ||
		listed[0].Name != "notesdb" || listed[1].Name != "restored" {
		t.Errorf("postgres:list --format json: %s", r)
	}
	var one struct{ Name, Kind string }
	if r := d.ssh(admin, "", "addons:info", "notescache", "--format", "json"); json.Unmarshal([]byte(r.stdout), &one) != nil || one.Kind != "redis" {
		t.Errorf("addons:info --format json: %s", r)
	}
	if r := d.ssh(admin, "", "postgres:create", "Bad_Name"); r.code != 1 || !strings.Contains(r.stderr, "invalid service name") {
		t.Errorf("a bad name: %s", r)
	}
	for _, bad := range [][]string{{"--version", "9"}, {"--memory", "lots"}, {"--disk", "1k"}} {
		if r := d.ssh(admin, "", append([]string{"postgres:create", "baddb"}, bad...)...); r.code == 0 {
			t.Errorf("postgres:create %v: %s", bad, r)
		}
	}
	if r := d.ssh(admin, "", "postgres:info", "baddb"); r.code != 1 {
		t.Errorf("a bad create left a service: %s", r)
	}

	// Destroy asks, and refuses while linked.
	if r := d.ssh(admin, "", "postgres:destroy", "notesdb"); r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("destroy without --force: %s", r)
	}
	if r := d.ssh(admin, "", "postgres:destroy", "notesdb", "--force"); r.code != 1 || !strings.Contains(r.stderr, "linked to notes") {
		t.Errorf("destroy while linked: %s", r)
	}

	// A Redis export streams over SSH, progress on stderr.
	if r := d.ssh(admin, "", "redis:export", "notescache"); r.code != 0 || !strings.HasPrefix(r.stdout, "REDIS") || !strings.Contains(r.stderr, "-----> Backup of notescache done") {
		t.Errorf("redis:export: code %d, %d bytes starting %q, %s", r.code, len(r.stdout), r.stdout[:min(len(r.stdout), 9)], r.stderr)
	}
	// Heroku's general names: addons:create <kind> --as, addons:attach
	// (--alias sets NAME_URL), addons:detach, addons:destroy.
	if r := d.ssh(admin, "", "addons:create", "redis", "--as", "herokucache", "--memory", "128m"); r.code != 0 {
		t.Errorf("addons:create redis --as: %s", r)
	} else {
		if r := d.ssh(admin, "", "addons:attach", "herokucache", other, "--alias", "CACHE"); r.code != 0 ||
			!strings.Contains(d.ssh(admin, "", "config", other).stdout, "CACHE_URL") {
			t.Errorf("addons:attach --alias: %s", r)
		}
		if r := d.ssh(admin, "", "addons:detach", "herokucache", other); r.code != 0 ||
			strings.Contains(d.ssh(admin, "", "config", other).stdout, "CACHE_URL") {
			t.Errorf("addons:detach: %s", r)
		}
		if r := d.ssh(admin, "", "addons:destroy", "herokucache", "--force"); r.code != 0 ||
			strings.Contains(d.ssh(admin, "", "addons").stdout, "herokucache") {
			t.Errorf("addons:destroy: %s", r)
		}
	}
	// The backup the restart made up for was the only one (it is not
	// taken again, nor once per missed year); Redis restores from it.
	if b := redisBackups(); len(b) != 1 {
		t.Errorf("Redis's backups after the restart: %+v", b)
	} else {
		if r := d.ssh(admin, "SET note changed\n", "redis:connect", "notescache"); r.code != 0 {
			t.Errorf("redis:connect: %s", r)
		}
		if r := d.ssh(admin, "", "redis:restore", "notescache", "--from", b[0].Name); r.code != 0 {
			t.Errorf("redis:restore --from: %s", r)
		}
		if r := d.ssh(admin, "GET note\n", "redis:connect", "notescache"); strings.TrimSpace(r.stdout) != "first" {
			t.Errorf("after the restore, the key is %s", r)
		}
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

	// The linked app's cron runs (each minute) reached the database; the
	// unlinked app's never did. (A run may fall in one of the restarts
	// above and fail: on a fast run of this test there may have been only
	// that one, so wait for the next.)
	reached := false
	for deadline := time.Now().Add(2 * time.Minute); !reached; time.Sleep(5 * time.Second) {
		for _, run := range d.cronRuns(t, app) {
			if run.Status == "succeeded" && strings.Contains(d.local("", "cron:output", app, fmt.Sprint(run.ID)).stdout, "probe: reached notesdb") {
				reached = true
				break
			}
		}
		if !reached && time.Now().After(deadline) {
			t.Errorf("no cron run of the linked app reached the database: %+v", d.cronRuns(t, app))
			break
		}
	}
	otherRuns := d.cronRuns(t, other)
	for _, run := range otherRuns {
		if run.Status == "succeeded" {
			t.Errorf("a cron run of the unlinked app succeeded: %+v", run)
		}
	}
	if len(otherRuns) == 0 {
		t.Error("the unlinked app's cron never ran")
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

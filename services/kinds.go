package services

import (
	"fmt"
	"slices"
	"strings"

	"github.com/skiffhq/skiff"
)

// dataDir is where a service's volume appears inside its container.
const dataDir = "/var/lib/skiff-service"

// suite is one Debian release and the service versions it carries: one
// root file system per suite holds both servers, and each kind's image is
// that file system with a config of its own.
type suite struct {
	name     string
	postgres string // major version
	redis    string
}

// suites are the Debian releases services come from. The first is the
// default: the host's own release.
var suites = []suite{
	{name: "bookworm", postgres: "15", redis: "7"},
	{name: "trixie", postgres: "17", redis: "8"},
}

// Versions lists the versions of kind that can be created, default first.
func Versions(kind string) []string {
	var out []string
	for _, s := range suites {
		out = append(out, s.version(kind))
	}
	return out
}

func (s suite) version(kind string) string {
	if kind == skiff.ServiceRedis {
		return s.redis
	}
	return s.postgres
}

// suiteFor finds the suite of kind's version ("" for the default).
func suiteFor(kind, version string) (suite, error) {
	if version == "" {
		return suites[0], nil
	}
	for _, s := range suites {
		if s.version(kind) == version {
			return s, nil
		}
	}
	return suite{}, skiff.Errorf(skiff.EINVALID, "%s %s is not available; choose one of %s", kind, version, strings.Join(Versions(kind), ", "))
}

// packages are the Debian packages of a suite's root file system.
func (s suite) packages() []string {
	return []string{"postgresql-" + s.postgres, "postgresql-client-" + s.postgres, "redis-server", "redis-tools"}
}

// serverPackage is the package whose version a service of kind reports.
func (s suite) serverPackage(kind string) string {
	if kind == skiff.ServiceRedis {
		return "redis-server"
	}
	return "postgresql-" + s.postgres
}

func imageRef(kind, version string) string { return "skiff.local/services/" + kind + ":" + version }

func (s suite) pgBin() string { return "/usr/lib/postgresql/" + s.postgres + "/bin" }

// request asks for the suite's images.
func (s suite) request() *skiff.DebianImageRequest {
	return &skiff.DebianImageRequest{
		Suite: s.name, Packages: s.packages(),
		Images: []skiff.ImageConfig{
			{Ref: imageRef(skiff.ServicePostgres, s.postgres), User: "postgres", WorkingDir: dataDir,
				Env: []string{"PATH=" + s.pgBin() + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PGDATA=" + dataDir + "/pgdata", "PGHOST=/tmp"},
				Cmd: []string{s.pgBin() + "/postgres", "-D", dataDir + "/pgdata"}},
			{Ref: imageRef(skiff.ServiceRedis, s.redis), User: "redis", WorkingDir: dataDir,
				Cmd: []string{"redis-server", dataDir + "/redis.conf"}},
		},
	}
}

// ports are the kinds' ports.
var ports = map[string]int{skiff.ServicePostgres: 5432, skiff.ServiceRedis: 6379}

// command is the server's command line: settings that follow from the
// service's limits, never a secret (a command line shows in ps on the host).
func command(svc *skiff.Service) []string {
	s, err := suiteFor(svc.Kind, svc.Version)
	if err != nil {
		return nil // an unknown version: the image's own command
	}
	if svc.Kind == skiff.ServiceRedis {
		return []string{"redis-server", dataDir + "/redis.conf"}
	}
	mem := svc.Limits.MemoryBytes
	// A quarter of the memory for shared buffers (PostgreSQL's own
	// advice), within 16 MiB and 1 GiB; connections so that each has room.
	buffers := min(max(mem/4, 16<<20), 1<<30)
	conns := min(max(mem/(4<<20), 20), 200)
	// The WAL stays well inside its own disk (disk.go): a checkpoint
	// starts each time max_wal_size is written, and once it ends the
	// segments before it are recycled.
	wal := int64(1 << 30)
	if svc.DiskBytes > 0 {
		wal = walDisk(svc.DiskBytes) / 8
	}
	// A server killed (kill -9, the OOM killer) leaves postmaster.pid,
	// naming its pid; in the new container's pid namespace that pid may
	// be another process (a readiness check), and PostgreSQL then refuses
	// to start ("lock file already exists") until it is gone. No other
	// server can be using the data: a service has one container, and the
	// one before it, pid namespace and all, has ended.
	return []string{"/bin/sh", "-c", `rm -f "$1/postmaster.pid" && exec "$0" -D "$@"`, s.pgBin() + "/postgres", dataDir + "/pgdata",
		"-c", "listen_addresses=*", "-c", fmt.Sprintf("port=%d", svc.Port), "-c", "unix_socket_directories=/tmp",
		"-c", fmt.Sprintf("shared_buffers=%dkB", buffers>>10), "-c", fmt.Sprintf("max_connections=%d", conns),
		"-c", fmt.Sprintf("max_wal_size=%dMB", wal>>20), "-c", "min_wal_size=32MB",
		"-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on",
		"-c", "logging_collector=off", "-c", "log_destination=stderr", "-c", "dynamic_shared_memory_type=posix"}
}

// redisConfig is the Redis configuration file: it holds the password, so it
// lives in the service's volume, 0600, owned by the server's user.
func redisConfig(svc *skiff.Service) string {
	maxmem := svc.Limits.MemoryBytes * 3 / 4
	return strings.Join([]string{
		"# Written by skiff; it is replaced when the service starts.",
		"bind 0.0.0.0",
		fmt.Sprintf("port %d", svc.Port),
		"protected-mode no",
		"requirepass " + svc.Password,
		"dir " + dataDir + "/data",
		"appendonly yes",
		"appendfsync everysec",
		"daemonize no",
		`logfile ""`,
		fmt.Sprintf("maxmemory %d", maxmem),
		"maxmemory-policy noeviction",
		// Backups come over the replication protocol: at once, not after
		// the 5 s Redis waits for more replicas by default.
		"repl-diskless-sync-delay 0",
		"",
	}, "\n")
}

// pgHBA lets the app's role in over the network with its password, and
// skiff's own commands in over the container's local socket.
const pgHBA = `# Written by skiff.
local all all trust
host all all 0.0.0.0/0 scram-sha-256
`

// serverVersion is what info shows: the server package's version.
func serverVersion(svc *skiff.Service) string {
	s, err := suiteFor(svc.Kind, svc.Version)
	if err != nil {
		return svc.Version
	}
	if v := svc.Packages[s.serverPackage(svc.Kind)]; v != "" {
		return v
	}
	return svc.Version
}

func validKind(kind string) error {
	if !slices.Contains(skiff.ServiceKinds, kind) {
		return skiff.Errorf(skiff.EINVALID, "unknown service kind %q: use %s", kind, strings.Join(skiff.ServiceKinds, " or "))
	}
	return nil
}

// Package store keeps skiff's state in one SQLite file: users and keys, apps,
// access grants, pushes and the audit trail. It is the only package that
// imports database/sql and the SQLite driver.
//
// Durability settings are deliberate: WAL with synchronous=FULL (an
// acknowledged change survives power loss), one writer connection whose
// transactions BEGIN IMMEDIATE (no SQLITE_BUSY from lock upgrades), a small
// pool of query-only readers, and forward-only migrations embedded in the
// binary and tracked in PRAGMA user_version.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/skiffhq/skiff"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is skiff's database. It implements the root package's service
// interfaces (AppService, UserService, AccessService, EventService,
// PushService).
type DB struct {
	path  string
	write *sql.DB // one connection: SQLite has one writer anyway
	read  *sql.DB
	now   func() time.Time
}

// Open opens (creating if needed) the database at path and applies
// migrations. A database written by a newer skiff is refused.
func Open(ctx context.Context, path string) (*DB, error) {
	// The file holds every key and config var: create it private before
	// SQLite does (its -wal and -shm files copy the mode of the main file).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	dsn := func(extra string) string {
		return "file:" + url.PathEscape(path) + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=10000&_foreign_keys=1" + extra
	}
	db := &DB{path: path, now: time.Now}
	if db.write, err = sql.Open("sqlite3", dsn("&_txlock=immediate")); err != nil {
		return nil, err
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetConnMaxIdleTime(0)
	if db.read, err = sql.Open("sqlite3", dsn("&_query_only=1")); err != nil {
		_ = db.write.Close() // opening failed already
		return nil, err
	}
	db.read.SetMaxOpenConns(4)
	if err := db.migrate(ctx); err != nil {
		_ = db.Close() // the migration's error is the one to report
		return nil, err
	}
	return db, nil
}

// Close closes both connection pools.
func (db *DB) Close() error {
	err := db.read.Close()
	if werr := db.write.Close(); err == nil {
		err = werr
	}
	return err
}

// migrate applies the embedded migrations that the file has not seen yet,
// each in its own transaction together with the new user_version.
func (db *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var version int
	if err := db.write.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(names) {
		return fmt.Errorf("database %s has schema version %d but this skiff knows only %d: run the newer skiff (migrations are forward-only)", db.path, version, len(names))
	}
	for i, name := range names[version:] {
		n := version + i + 1
		if want := fmt.Sprintf("migrations/%04d_", n); !strings.HasPrefix(name, want) {
			return fmt.Errorf("migration %s is out of sequence: want %s*", name, want)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		tx, err := db.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(n)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", name, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// Tx is a write transaction that knows its actor and time, so every change
// records its audit event in the same commit.
type Tx struct {
	*sql.Tx
	ctx   context.Context
	now   time.Time
	actor *skiff.Actor
}

// update runs fn in a write transaction (BEGIN IMMEDIATE) and commits it.
func (db *DB) update(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	tx := &Tx{Tx: sqlTx, ctx: ctx, now: db.now().UTC(), actor: skiff.ActorFrom(ctx)}
	if err := fn(tx); err != nil {
		sqlTx.Rollback()
		return translate(err)
	}
	return translate(sqlTx.Commit())
}

// event records an audit event in the transaction.
func (tx *Tx) event(appID, appName, action, detail string) error {
	_, err := tx.ExecContext(tx.ctx, `INSERT INTO events (created_at, actor, fingerprint, app_id, app_name, action, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, formatTime(tx.now), tx.actor.Name, tx.actor.Fingerprint, appID, appName, action, detail)
	return err
}

// timeLayout sorts lexically in time order, and reads well in sqlite3.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}

// translate turns driver errors that users can act on into skiff errors,
// by the driver's result codes (its messages are SQLite's prose, and an
// error of skiff's own may quote anything).
func translate(err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case sqlite3.ErrBusy, sqlite3.ErrLocked:
		return skiff.Errorf(skiff.EUNAVAILABLE, "the database is busy; try again in a moment")
	case sqlite3.ErrFull:
		return skiff.Errorf(skiff.EUNAVAILABLE, "the server's disk is full; free space and try again")
	}
	return err
}

// isUniqueViolation reports whether err is the driver's refusal of a row
// whose key (a UNIQUE column or the primary key) is taken.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

// IntegrityCheck runs SQLite's integrity check and returns its verdict.
func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	var s string
	err := db.read.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&s)
	return s, err
}

// Backup writes a consistent copy of the database to w while the daemon
// keeps serving: SQLite's VACUUM INTO makes the copy in a transaction of
// its own (never cp a live WAL database).
func (db *DB) Backup(ctx context.Context, w io.Writer) error {
	dir, err := os.MkdirTemp(filepath.Dir(db.path), ".backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "skiff.db")
	if _, err := db.write.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// queryAll runs query on the read connection and returns its rows, each
// made by scan; no rows is an empty list, not nil.
func queryAll[T any](ctx context.Context, db *DB, scan func(row interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

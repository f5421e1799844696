package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-sqlite3"

	"github.com/skiffhq/skiff"
)

// A full database is SQLite's SQLITE_FULL, made real here by capping the
// writer's pages: the user is told the disk is full, and nothing of the
// refused change is kept.
func TestFullDatabaseIsUnavailable(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "skiff.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int
	if err := db.write.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	var full error
	for i := 0; i < 10000 && full == nil; i++ {
		full = db.CreateApp(ctx, &skiff.App{Name: fmt.Sprintf("app%d", i)})
	}
	if skiff.ErrorCode(full) != skiff.EUNAVAILABLE || !strings.Contains(skiff.ErrorMessage(full), "disk is full") {
		t.Fatalf("a full database: %v (code %q), want EUNAVAILABLE saying the disk is full", full, skiff.ErrorCode(full))
	}
}

// Only the driver's result codes count: an error of skiff's own that
// quotes SQLite's words (a user's value, a command's output) is left as it
// is, and a driver error is translated however it is wrapped.
func TestTranslateByCode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		code   string
		unique bool
	}{
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, skiff.EUNAVAILABLE, false},
		{"busy, wrapped", fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrBusy}), skiff.EUNAVAILABLE, false},
		{"locked", sqlite3.Error{Code: sqlite3.ErrLocked}, skiff.EUNAVAILABLE, false},
		{"full", sqlite3.Error{Code: sqlite3.ErrFull}, skiff.EUNAVAILABLE, false},
		{"unique", sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintUnique}, "", true},
		{"primary key", sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintPrimaryKey}, "", true},
		{"foreign key", sqlite3.Error{Code: sqlite3.ErrConstraint, ExtendedCode: sqlite3.ErrConstraintForeignKey}, "", false},
		{"words, not the driver's", errors.New("release command: database is locked"), "", false},
		{"disk words", errors.New("postdeploy said: database or disk is full"), "", false},
		{"constraint words", errors.New("UNIQUE constraint failed: apps.name"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := translate(tc.err)
			if code := skiff.ErrorCode(got); tc.code != "" && code != tc.code {
				t.Errorf("translate(%v) = %v (code %q), want %s", tc.err, got, code, tc.code)
			}
			if tc.code == "" && got != tc.err {
				t.Errorf("translate(%v) = %v, want it unchanged", tc.err, got)
			}
			if u := isUniqueViolation(tc.err); u != tc.unique {
				t.Errorf("isUniqueViolation(%v) = %v, want %v", tc.err, u, tc.unique)
			}
		})
	}
}

package services

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPartialBackupsRemovedAtStart: a daemon killed mid-backup leaves the
// backup's partial file; the next start removes it, and keeps the whole
// backups and what else is there.
func TestPartialBackupsRemovedAtStart(t *testing.T) {
	r := newRig(t, 0)
	dir := filepath.Join(r.cfg.DataDir, "backups", "s123")
	if err := os.MkdirAll(filepath.Join(dir, ".partial-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".partial-1234567", ".partial-", "20261201T030000Z.dump", "notes"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.manager(t)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{".partial-dir", "20261201T030000Z.dump", "notes"}) {
		t.Errorf("after the start the backups' directory has %v", left)
	}
}

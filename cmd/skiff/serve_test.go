package main

import (
	"fmt"
	"testing"
)

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 10.1.2.3/8, 192.0.2.7,2001:db8::/32,::ffff:198.51.100.1 ,")
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 198.51.100.1/32]"
	if s := fmt.Sprint(got); s != want {
		t.Errorf("got %s, want %s", s, want)
	}
	for _, bad := range []string{"cloudflare", "10.0.0.0/33", "1.2.3"} {
		if _, err := parsePrefixes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The build's disk budget and free-space floor are flags, validated at
// start.
func TestBuildDiskFlags(t *testing.T) {
	cfg, err := parseServe(t.TempDir(), []string{"--build-disk", "3g", "--build-disk-floor", "512m"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BuildDisk != 3<<30 || cfg.BuildDiskFloor != 512<<20 {
		t.Errorf("disk %d, floor %d", cfg.BuildDisk, cfg.BuildDiskFloor)
	}
	if cfg, _ := parseServe(t.TempDir(), nil); cfg.BuildDisk != 8<<30 || cfg.BuildDiskFloor != 1<<30 {
		t.Errorf("defaults: disk %d, floor %d", cfg.BuildDisk, cfg.BuildDiskFloor)
	}
	for _, bad := range [][]string{{"--build-disk", "1m"}, {"--build-disk", ""}, {"--build-disk-floor", "x"}, {"--max-push-size", ""}} {
		if _, err := parseServe(t.TempDir(), bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

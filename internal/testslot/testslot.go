// Package testslot hands each test process on this host slots of the
// host's shared namespaces — an address pool, a tag for the names of its
// veths, firewall tables, cgroups and runc state — that no other process
// holds: go test runs packages in parallel, CI and several checkouts run
// test binaries at once, and two of them on one pool or one name break
// each other (a /30 one frees is the next the other takes, so a dial of a
// dead container's address reaches another process's container; a
// teardown removes the other's table).
//
// A slot is a lock file under /run, flocked and held open until the
// process exits, however it exits; a slot whose last holder's testguard
// is still cleaning up after it is not taken either (the guard tears down
// by the holder's names). Every test that takes a network pool, a
// resource prefix or host-wide names takes them from here.
package testslot

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/skiffhq/skiff/internal/testguard"
)

// Slots is how many slots the host has: the /20s of 10.224.0.0/12, which
// is apart from the daemon's default pool (10.213.0.0/16) and the
// benchmarks' (10.216, 10.217, 10.254).
const Slots = 256

// Slot is one slot, held by this process until it exits.
type Slot struct{ N int }

// Pool is the slot's address pool, a /20 (1023 /30s, the last 64 of them
// a daemon's service pool).
func (s Slot) Pool() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(224 + s.N/16), byte(s.N % 16 * 16), 0}), 20) //nolint:gosec // N < Slots
}

// Tag is two hex digits unique to the slot: names built as a fixed
// letter prefix and the tag are never a prefix of another slot's.
func (s Slot) Tag() string { return fmt.Sprintf("%02x", s.N) }

// Octet is the slot's number as an address byte, for addresses outside
// the pool (10.<x>.<Octet>.0/30) that must not collide either.
func (s Slot) Octet() byte { return byte(s.N) } //nolint:gosec // N < Slots

var taken struct {
	sync.Mutex
	byName map[string]Slot
	files  []*os.File // held open, locked, for the life of the process
}

// Get returns this process's slot called name, taking a free one the
// first time: every caller of one name in a process shares it.
func Get(name string) (Slot, error) {
	taken.Lock()
	defer taken.Unlock()
	if s, ok := taken.byName[name]; ok {
		return s, nil
	}
	held := map[int]bool{}
	for _, s := range taken.byName {
		held[s.N] = true
	}
	start := os.Getpid() % Slots // processes started together start apart
	for i := range Slots {
		n := (start + i) % Slots
		if held[n] {
			continue
		}
		f, ok, err := lock(n)
		if err != nil {
			return Slot{}, err
		}
		if !ok {
			continue
		}
		if taken.byName == nil {
			taken.byName = map[string]Slot{}
		}
		taken.byName[name] = Slot{N: n}
		taken.files = append(taken.files, f)
		return Slot{N: n}, nil
	}
	return Slot{}, fmt.Errorf("every one of the host's %d test slots is held by another test process", Slots)
}

// lock takes slot n's lock file, if no process holds it and no guard of
// its last holder is still cleaning up, and writes its holder and guard.
func lock(n int) (*os.File, bool, error) {
	path := fmt.Sprintf("/run/skiff-test-slot-%d.lock", n)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("test slots need root (/run): %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false, nil
	}
	var last [64]byte
	k, _ := f.ReadAt(last[:], 0)
	if fields := strings.Fields(string(last[:k])); len(fields) == 2 {
		if g, _ := strconv.Atoi(fields[1]); g > 0 && unix.Kill(g, 0) == nil {
			_ = f.Close() // a guard (or whoever has its pid now) is alive: leave the slot
			return nil, false, nil
		}
	}
	rec := fmt.Sprintf("%d %d\n", os.Getpid(), testguard.Pid())
	if err := f.Truncate(0); err != nil {
		_ = f.Close()
		return nil, false, err
	}
	if _, err := f.WriteAt([]byte(rec), 0); err != nil {
		_ = f.Close()
		return nil, false, err
	}
	return f, true, nil
}

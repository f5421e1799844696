package router

import (
	"sync/atomic"
	"time"
)

// Passive health: an instance that fails this many requests in a row (refused
// or reset connections) is left out for downFor, then tried again.
const (
	failThreshold = 3
	downFor       = 10 * time.Second
)

// backend is one instance of an app. Its counters are atomics so that the hot
// path never takes a lock: inflight drives least-connections and draining.
type backend struct {
	addr      string // ip:port
	inflight  atomic.Int64
	fails     atomic.Int32
	downUntil atomic.Int64 // unix nanoseconds; 0 when up
	cut       atomic.Bool  // replaced, and its drain grace is over
}

func newBackend(addr string) *backend { return &backend{addr: addr} }

// failed records a failed connection and takes the backend out after
// failThreshold failures in a row.
func (b *backend) failed() {
	if b.fails.Add(1) >= failThreshold {
		b.downUntil.Store(time.Now().Add(downFor).UnixNano())
	}
}

// succeeded puts the backend back in rotation.
func (b *backend) succeeded() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
	if b.downUntil.Load() != 0 {
		b.downUntil.Store(0)
	}
}

func (b *backend) up(now int64) bool {
	d := b.downUntil.Load()
	return d == 0 || now >= d
}

// pool is an app's current set of backends. It is immutable but for the
// counters; a deploy replaces the whole pool.
type pool struct {
	backends []*backend
	next     atomic.Uint32
}

// pick returns the backend with the fewest requests in flight, starting the
// scan at a rotating offset so that ties go round robin. Backends that are
// down or equal to skip are passed over unless nothing else is left; nil
// means the pool is empty (or holds only skip).
func (p *pool) pick(skip *backend) *backend {
	n := len(p.backends)
	switch n {
	case 0:
		return nil
	case 1:
		if b := p.backends[0]; b != skip {
			return b
		}
		return nil
	}
	start := int(p.next.Add(1))
	now := time.Now().UnixNano()
	var best, fallback *backend
	for i := 0; i < n; i++ {
		b := p.backends[(start+i)%n]
		if b == skip {
			continue
		}
		if !b.up(now) {
			if fallback == nil || b.inflight.Load() < fallback.inflight.Load() {
				fallback = b
			}
			continue
		}
		if best == nil || b.inflight.Load() < best.inflight.Load() {
			best = b
		}
	}
	if best == nil {
		return fallback
	}
	return best
}

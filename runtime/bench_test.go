package runtime_test

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/skiffhq/skiff"
	"github.com/skiffhq/skiff/internal/container"
	"github.com/skiffhq/skiff/internal/container/containertest"
)

// BenchmarkStartToReady measures what bench/runtime/run.sh reports: from
// Start to the first connection the app accepts, for a small Go server
// (the probe), with image lookup, overlay, user namespace, veth and all.
func BenchmarkStartToReady(b *testing.B) {
	f := newFixture(b)
	rt := f.open(b)
	defer stopAll(b, rt)
	s := spec(f, "bench")
	// Unpack the layers once, as a deploy after the build would have.
	in, err := rt.Start(context.Background(), s)
	if err != nil {
		b.Fatal(err)
	}
	rt.Stop(context.Background(), in.ID, time.Second)
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		in, err := rt.Start(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		addr := waitAccept(b, rt, in.ID)
		total += time.Since(t0)
		b.StopTimer()
		_ = addr
		rt.Stop(context.Background(), in.ID, time.Second)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ready")
}

// waitAccept dials the instance's address every millisecond until it
// accepts.
func waitAccept(b *testing.B, rt interface {
	Instances(context.Context, string) ([]*skiff.Instance, error)
}, id string) string {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if in := instance(rt, id); in != nil && in.Addr != "" {
			if c, err := net.DialTimeout("tcp", in.Addr, 100*time.Millisecond); err == nil {
				c.Close()
				return in.Addr
			}
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatal("instance never accepted a connection")
	return ""
}

// BenchmarkRuncAlone is the floor: runc create, start and the exit of a
// process that does nothing, from a plain directory, no user namespace,
// no network.
func BenchmarkRuncAlone(b *testing.B) {
	e := containertest.New(b)
	root := containertest.Rootfs(b)
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		s := &container.Spec{ID: "floor" + strconv.Itoa(i), Bundle: filepath.Join(dir, strconv.Itoa(i)),
			Rootfs: container.Rootfs{Dir: root}, ReadonlyDir: true, Args: []string{"/probe", "exit", "0"}}
		c, err := e.Runc.Create(context.Background(), s, container.Stdio{})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		c.Wait(context.Background())
		b.StopTimer()
		c.Delete(context.Background())
		b.StartTimer()
	}
}

// BenchmarkIdleMemory starts ten idle instances and reports the memory
// their cgroups charge (the app, its page cache and tmpfs upper). What
// each adds to the daemon is two goroutines and a FIFO, too little to
// measure against the test process's own heap.
func BenchmarkIdleMemory(b *testing.B) {
	f := newFixture(b)
	rt := f.open(b)
	defer stopAll(b, rt)
	const n = 10
	var ids []string
	for i := range n {
		s := spec(f, "idle"+strconv.Itoa(i))
		in, err := rt.Start(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, in.ID)
	}
	for _, id := range ids {
		waitAccept(b, rt, id)
	}
	time.Sleep(2 * time.Second)
	for b.Loop() {
		time.Sleep(time.Millisecond)
	}
	var mem int64
	list, _ := rt.Instances(context.Background(), "")
	for _, in := range list {
		mem += in.MemoryBytes
	}
	b.ReportMetric(float64(mem)/n/(1<<20), "MiB/instance")
}

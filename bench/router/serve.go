package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

// serve starts the run's bed (the upstream, nginx and skiff's router, as
// `run` configures them) and keeps it up until interrupted, printing each
// one's address and process id: for looking inside with perf, strace or a
// Go execution trace while wrk runs by hand.
func serve(args []string) error {
	fs := newFlags("serve")
	out := fs.String("out", "bench/out", "output directory")
	workers := fs.Int("workers", runtime.NumCPU(), "nginx's worker processes and the router's GOMAXPROCS")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	b, pair, err := startPair(*out, "serve", *workers)
	if err != nil {
		return err
	}
	defer b.close()
	for _, p := range pair {
		defer stop(p.cmd)
		fmt.Printf("%-6s pid %d  http://%s  https://%s  (Host: bench.test)\n", p.name, p.cmd.Process.Pid, p.http, p.https)
	}
	fmt.Printf("upstream pid %d  http://%s\n", b.upPids[0], b.upstreams[0])
	fmt.Println("e.g. wrk -t1 -c50 -d8s -H 'Host: bench.test' http://" + pair[1].http + "/small; interrupt to stop")
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
	return nil
}

// startPair sets up a bed with nginx and skiff's router in front of its
// upstream, configured as `run` does, and waits for both. The caller stops
// them and closes the bed.
func startPair(out, name string, workers int) (*bed, []*proxy, error) {
	if err := lookTools("wrk nginx-light", "wrk", "nginx"); err != nil {
		return nil, nil, err
	}
	b, err := newBed(out, name, bedOptions{router: true})
	if err != nil {
		return nil, nil, err
	}
	ng := &proxy{name: "nginx", http: freeAddr(), https: freeAddr()}
	argv, err := b.nginx(ng.name, workers, ng.http, ng.https, false)
	if err != nil {
		b.close()
		return nil, nil, err
	}
	ng.cmd = start(nil, argv[0], argv[1:]...)
	cmd, spec := startRouter(b.router, b.routerSpec("skiff"), "GOMAXPROCS="+strconv.Itoa(workers))
	pair := []*proxy{ng, {name: "skiff", http: spec.HTTP, https: spec.HTTPS, cmd: cmd}}
	for _, p := range pair {
		if err := waitUp("http://"+p.http+"/small", "bench.test"); err != nil {
			for _, p := range pair {
				stop(p.cmd)
			}
			b.close()
			return nil, nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return b, pair, nil
}

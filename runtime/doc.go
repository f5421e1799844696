// Package runtime runs app instances: each one a sandboxed container
// (internal/container) made from a release image in the image store, its
// layers unpacked once (internal/layer) under an ephemeral overlay. It
// supervises them (restart with exponential backoff, crashed state with the
// last exit or OOM kill), keeps every app's log on disk with a size cap, runs
// one-off attached commands, and re-adopts instances that outlived a daemon
// restart. Every instance and run has skiff-init as its first process, in
// front of the app: it forwards signals and reaps orphans.
//
// On disk, under the data directory:
//
//	instances/<id>/instance.json  what the instance is (its spec), for re-adoption
//	instances/<id>/stdio.fifo     the instance's stdout and stderr
//	instances/<id>/…              runc bundle: config.json, rootfs/, upperfs/, runc.log
//	runtime/skiff-init            the init program every instance runs as pid 1
//	logs/apps/<app-id>/app.log    the app's log, rotated to app.log.1 at half the cap
package runtime

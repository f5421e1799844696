// Package services runs backing services for apps: PostgreSQL and Redis
// from Debian's packages, in images made once the way the default builder
// is (debootstrap with the packages, cached, their versions recorded in
// the images and the services). Each service is one supervised, sandboxed
// instance (runc: a user namespace, no capabilities, seccomp, cgroup
// limits) on a runtime of its own, with its data on a volume under the
// data directory and a fixed address of the network's service pool that
// only the apps linked to it reach. A link opens that path and sets the
// app's DATABASE_URL or REDIS_URL through a release; an unlink cuts the
// path at once. Backups stream over SSH; scheduled ones are kept under the
// data directory with a retention.
//
// On disk, under the data directory:
//
//	volumes/<volume-id>/            a service's data: pgdata/, or redis.conf and data/
//	services/backups/<id>/<t>.dump  scheduled backups (0600)
//	services/instances/, logs/      the services' runtime: runc bundles, server logs
package services

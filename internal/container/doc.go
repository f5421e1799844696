// Package container owns the sandbox primitive shared by builds and app
// instances: running one process tree under Debian's runc from a root file
// system (a directory, or overlay lowerdirs plus a per-container upper), in
// its own pid, mount, uts, ipc and network namespaces and optionally a user
// namespace, with capabilities, no_new_privs, a seccomp profile, masked /proc
// paths, an explicit cgroup with memory, CPU and pids limits (cgroup v1 and
// v2), and a veth on a private pool that reaches the internet through NAT but
// not the host's services or other containers.
//
// Containers are created detached (`runc create` / `runc start`): they do not
// depend on the daemon that started them, which finds them again with Adopt.
// Their exit status comes from the kernel's process-event connector, since a
// detached container's init is not the daemon's child.
//
// Everything a container leaves on the host (runc state, cgroups, mounts in
// its bundle, its veth) is removed by Delete, and by Cleanup for containers
// the caller no longer knows.
package container

// Package build is skiff's Cloud Native Buildpacks platform. pack needs a
// Docker daemon and skiff has none, so skiff drives the reference lifecycle
// itself, as kpack does: it assembles builder images (builder:create makes
// the default one from a debootstrapped Debian base, skiff's buildpacks and
// the lifecycle; builder:set pulls any standard builder), unpacks each
// builder's root file system once, runs the lifecycle's creator under runc
// with that root read-only, the pushed tree at /workspace, a per-app cache
// and an OCI layout as the export target, and imports the result into the
// image store (internal/imagestore).
//
// The lifecycle's own Go types for its files (platform/files, buildpack,
// launch) are the contract, but they are not imported: the lifecycle module
// drags registries' SDKs and more into any module that imports it, so it is
// built in its own module (tools/lifecycle) and skiff declares the few
// fields it writes and reads (order, run, stack, lifecycle.toml, the builder
// and build metadata labels, buildpack.toml, the project descriptor) itself,
// in toml.go, metadata.go and builderimage.go. The contract is kept by
// golden files under testdata/contract, checked from both sides: this
// package's TestContract* tests write skiff's files and read the
// lifecycle's with skiff's structs, and tools/lifecycle/contract reads
// skiff's files with the lifecycle's types (failing on a key they have no
// field for) and writes the lifecycle's with them, at the pinned version.
// project.toml, which the lifecycle does not read, is checked against the
// spec and pack's reading of it.
//
// On disk, under the data directory (which builds need searchable, 0711):
//
//	images/                     the image store (internal/imagestore)
//	builder/<digest>/rootfs     each builder's root file system, unpacked once
//	builder/debootstrap/        builder:create's cached Debian roots and .debs
//	cache/<app-id>/             the app's CNB cache volume, owned by the build user
//	tmp/builds/<build-id>/      one build's scratch: workspace, layers, platform,
//	                            layout (run and previous image hardlinked from
//	                            the store), tmp, home; removed once the build
//	                            has settled (settle.go), or at the next start
//	logs/builds/<app-id>/<build-id>.log   capped, the last 50 kept
//
// Build containers keep their runc state in /run/skiff/runc-builds and their
// cgroups under skiff-builds/, apart from app instances'.
package build

// Package layer owns turning image layer tarballs into directories on disk:
// safe extraction (no write ever lands outside the target directory, whatever
// the archive's paths, symlinks and hardlinks say), whiteout handling for
// overlayfs or for flattening, and the store that unpacks each layer once per
// diffID under DATA/layers/.
//
// Every file system operation resolves its parent directory with openat2 and
// RESOLVE_IN_ROOT, so an absolute or chained symlink in the archive is
// followed as if the target directory were "/" (the way the container will
// see it) and can never lead outside it; the last path component is never
// followed. That needs Linux 5.6 or later.
//
// What extraction deliberately drops: character and block devices (a
// container gets its /dev from the runtime), setuid and setgid bits, and all
// extended attributes from the archive (so no file capabilities). Sizes,
// entry counts and path lengths are capped.
package layer

#!/usr/bin/env bash
# Push-to-image benchmark of the build platform: builds each app of
# bench/build/apps cold and then cached (after a one-line change) with the
# default builder, and prints per-phase times. Needs root, runc and
# debootstrap; the first run creates the default builder (a few minutes),
# later runs reuse it from /var/tmp/skiff-bench-build.
# Usage: sudo bench/build/run.sh [-v]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
scripts/build-lifecycle.sh >&2
bps=$(mktemp -d)
trap 'rm -rf "$bps"' EXIT
go run ./buildpacks/cmd/package -o "$bps" >&2
go run ./bench/build -buildpacks "$bps" "$@"

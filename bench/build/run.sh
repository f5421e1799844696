#!/usr/bin/env bash
# Push-to-image benchmark of the build platform: builds each app of
# bench/build/apps cold and then cached (after a one-line change) with the
# default builder, and prints per-phase times. Needs root, runc and
# debootstrap; the first run creates the default builder (a few minutes),
# later runs reuse it from /var/tmp/skiff-bench-build.
# Usage: sudo bench/build/run.sh [-bench.show]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
scripts/build-lifecycle.sh >&2
bps=$(mktemp -d)
trap 'rm -rf "$bps"' EXIT
go run ./buildpacks/cmd/package -o "$bps" >&2
# The driver is a test behind a build tag (build/bench_test.go); its table
# goes to stdout, go test's own lines to stderr.
out="$bps/bench.out"
status=0
go test -tags skiffbench -count=1 -timeout 60m -run '^TestBenchPushToImage$' -v ./build \
  -args -bench.buildpacks "$bps" "$@" > "$out" 2>&1 || status=$?
grep -v '^|\|^builder:create' "$out" >&2 || true
grep '^|\|^builder:create' "$out" || true
exit "$status"

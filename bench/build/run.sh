#!/usr/bin/env bash
# Push-to-live benchmark: `make build`, then a skiff daemon of the bench's
# own (fresh data directory, its own host resources) to which each sample
# app of buildpacks/testdata/apps is pushed with git, cold and then cached
# after one-line changes, timed until the router serves the new page.
# Needs root, runc, debootstrap, git and OpenSSH. The first run makes the
# Debian root file systems (cached with the tests' under
# /var/cache/skiff-test/debootstrap).
# Usage: bench/build/run.sh [-cached 3] [-samples nodejs,go,python,static] [-v]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
make build >&2
go run ./bench/build "$@"

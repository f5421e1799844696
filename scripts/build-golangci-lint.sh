#!/bin/sh
# Builds golangci-lint at the version tools/golangci-lint/go.mod pins (its
# dependencies fixed by go.sum, fetched from the Go module proxy) and keeps
# the binary in a cache keyed on that version, the Go version and go.sum's
# digest: the first build takes a few minutes on 2 cores, later runs find it
# at once (a new clone, a rebase or `make clean` do not rebuild it). Prints
# the binary's path. Usage: scripts/build-golangci-lint.sh
# (SKIFF_TEST_CACHE moves the cache, default /var/cache/skiff-test when it
# is writable, else ~/.cache/skiff-test)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
cd "$root/tools/golangci-lint"
cache=${SKIFF_TEST_CACHE:-/var/cache/skiff-test}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/skiff-test
fi
version=$(go list -m -f '{{.Version}}' github.com/golangci/golangci-lint/v2)
sum=$(sha256sum go.sum | cut -c1-12)
dir="$cache/golangci-lint-$version-$(go env GOVERSION)-$sum"
bin="$dir/golangci-lint"
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9 # two checks at once would each spend the build
if [ ! -x "$bin" ]; then
	echo "       building golangci-lint $version into $dir (once per version: a few minutes)" >&2
	start=$(date +%s)
	GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w -X main.version=${version#v}" \
		-o "$bin.new" github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	mv "$bin.new" "$bin"
	echo "       built in $(($(date +%s) - start)) s" >&2
fi
echo "$bin"

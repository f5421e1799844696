#!/bin/sh
# Every test tier. Root-only tests (runc, network namespaces) skip with a
# message when not run as root; CI runs this as root, so they all run there.
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

echo "-----> Static checks"
scripts/check.sh

echo "-----> Tests (unit, fuzz seeds, end to end), with the race detector"
go test -race -count=1 -timeout 30m ./...

echo "-----> The contract with the lifecycle's own types (tools/lifecycle, a module of its own)"
(cd tools/lifecycle && go vet ./... && go test -race -count=1 ./...)

echo "-----> Short fuzzing of every fuzz target (the parsers of untrusted input), ${SKIFF_FUZZTIME:-10s} each"
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
	for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		go test -run '^$' -fuzz "^${fn}\$" -fuzztime "${SKIFF_FUZZTIME:-10s}" "$pkg" >/dev/null || {
			echo " !     fuzzing $pkg $fn failed; run: go test -run '^\$' -fuzz '^${fn}\$' $pkg" >&2
			exit 1
		}
		echo "       $pkg $fn: ok"
	done
done
echo "-----> All tests passed"

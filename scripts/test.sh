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

echo "-----> Short fuzzing of the parsers of untrusted input"
for target in \
	".:FuzzParseCommandLine" \
	".:FuzzValidateAppName" \
	".:FuzzParseRefUpdates"; do
	pkg=${target%%:*}
	fn=${target#*:}
	go test -run '^$' -fuzz "^${fn}\$" -fuzztime "${SKIFF_FUZZTIME:-10s}" "$pkg"
done
echo "-----> All tests passed"

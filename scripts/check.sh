#!/bin/sh
# Static checks: formatting, vet, and golangci-lint (.golangci.yml: errcheck,
# staticcheck, ineffassign, unused, bodyclose, gosec), built once from the
# version pinned in tools/golangci-lint and cached by its version.
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '/testdata/'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi
go vet ./...
lint=$(scripts/build-golangci-lint.sh)
# Other checkouts on the same machine may lint at the same time: wait for
# their turn rather than fail.
"$lint" run --allow-serial-runners ./...

#!/bin/sh
# Builds golangci-lint from the version pinned in tools/golangci-lint/go.mod
# (dependencies included, by go.sum) into bin/golangci-lint, unless it is
# already there at that version: the first build takes a few minutes, later
# runs nothing. Usage: scripts/build-golangci-lint.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
cd "$root/tools/golangci-lint"
version=$(go list -m -f '{{.Version}}' github.com/golangci/golangci-lint/v2)
bin="$root/bin/golangci-lint"
stamp="$version $(go env GOVERSION)"
if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$stamp" ] && [ "$bin" -nt go.sum ]; then
	exit 0
fi
echo "       building golangci-lint $version into bin/ (once per version: a few minutes)"
mkdir -p "$root/bin"
go build -trimpath -ldflags "-X main.version=${version#v}" -o "$bin" github.com/golangci/golangci-lint/v2/cmd/golangci-lint
printf '%s' "$stamp" > "$bin.version"

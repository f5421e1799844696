#!/bin/sh
# Builds h2spec, the HTTP/2 conformance suite, from the version pinned in
# tools/h2spec/go.mod (dependencies included, by go.sum) into bin/h2spec,
# unless it is already there at that version. Usage: scripts/build-h2spec.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
cd "$root/tools/h2spec"
version=$(go list -m -f '{{.Version}}' github.com/summerwind/h2spec)
bin="$root/bin/h2spec"
if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$version" ] && [ "$bin" -nt go.sum ]; then
	exit 0
fi
echo "       building h2spec $version into bin/"
mkdir -p "$root/bin"
go build -trimpath -ldflags "-X main.VERSION=${version#v} -X main.COMMIT=module" -o "$bin" github.com/summerwind/h2spec/cmd/h2spec
printf '%s' "$version" > "$bin.version"

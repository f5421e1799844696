#!/usr/bin/env bash
# Builds the CNB lifecycle (the multi-call `lifecycle` binary and the separate
# `launcher`) from the Go module pinned in tools/lifecycle/go.mod, static and
# version-stamped, into build/lifecycle/ where `go build` embeds them into
# skiff. Usage: scripts/build-lifecycle.sh [OUTDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/lifecycle}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root/tools/lifecycle"
version=$(go list -m -f '{{.Version}}' github.com/buildpacks/lifecycle)
if [ -x "$out/lifecycle" ] && [ -x "$out/launcher" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "${version#v}" ] \
   && [ "$out/lifecycle" -nt go.mod ] && [ -z "${FORCE:-}" ]; then
  echo "lifecycle ${version#v} is up to date in $out"
  exit 0
fi
echo "building lifecycle ${version#v} into $out"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath \
  -ldflags "-s -w -X github.com/buildpacks/lifecycle/cmd.Version=${version#v}" \
  -o "$out/" github.com/buildpacks/lifecycle/cmd/lifecycle github.com/buildpacks/lifecycle/cmd/launcher
printf '%s' "${version#v}" > "$out/VERSION"

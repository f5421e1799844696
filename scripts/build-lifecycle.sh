#!/usr/bin/env bash
# Builds the CNB lifecycle (the multi-call `lifecycle` binary and the separate
# `launcher`) from the Go module pinned in tools/lifecycle/go.mod, static and
# version-stamped, into build/lifecycle/ where `go build` embeds them into
# skiff, with the patches under tools/lifecycle/patches/<module path>/ applied
# to the pinned version of that module (each file says why); the same
# sources give the same binaries on any machine.
# Usage: scripts/build-lifecycle.sh [OUTDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/lifecycle}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root/tools/lifecycle"
version=$(go list -m -f '{{.Version}}' github.com/buildpacks/lifecycle)
# What the binaries are made of: the version, and the patches' contents.
patches=$(find patches -name '*.patch' 2>/dev/null | sort || true)
stamp="${version#v} $(cat go.sum $patches | sha256sum | cut -c1-16)"
if [ -x "$out/lifecycle" ] && [ -x "$out/launcher" ] && [ "$(cat "$out/VERSION" 2>/dev/null)" = "${version#v}" ] \
   && [ "$(cat "$out/BUILD" 2>/dev/null)" = "$stamp" ] && [ -z "${FORCE:-}" ]; then
  echo "lifecycle ${version#v} is up to date in $out"
  exit 0
fi
echo "building lifecycle ${version#v} into $out"
# The build happens in a copy of the module with its dependencies vendored,
# where the patches apply: the binaries record the modules' versions and no
# path of this machine's, so they are the same wherever they are built.
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp go.mod go.sum "$work/"
(cd "$work" && go mod vendor)
for p in $patches; do
  mod=$(dirname "${p#patches/}")
  [ -d "$work/vendor/$mod" ] || { echo "$p: $mod is not a dependency of the lifecycle" >&2; exit 1; }
  # git apply outside a repository is patch(1), which skiff does not need.
  (cd "$work/vendor/$mod" && git apply -p1 "$root/tools/lifecycle/$p")
done
(cd "$work" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -mod=vendor -trimpath \
  -ldflags "-s -w -X github.com/buildpacks/lifecycle/cmd.Version=${version#v}" \
  -o "$out/" github.com/buildpacks/lifecycle/cmd/lifecycle github.com/buildpacks/lifecycle/cmd/launcher)
printf '%s' "${version#v}" > "$out/VERSION"
printf '%s' "$stamp" > "$out/BUILD"

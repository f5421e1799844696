// Package golangcilint pins golangci-lint and its dependencies (go.mod,
// go.sum) for scripts/check.sh: scripts/build-golangci-lint.sh builds it
// from here into bin/, the same bytes on every machine, once per version.
package golangcilint

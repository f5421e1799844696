// Package golangcilint pins golangci-lint and its dependencies (go.mod,
// go.sum) for scripts/check.sh: scripts/build-golangci-lint.sh builds it
// from here, the same bytes on every machine, once per version (cached
// outside the clone, keyed on the version, Go's version and go.sum).
package golangcilint

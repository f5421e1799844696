// Package h2spec pins the HTTP/2 conformance suite h2spec and its
// dependencies (go.mod, go.sum) for skiff's h2spec test tier:
// scripts/build-h2spec.sh builds it from here, the same bytes on every
// machine. h2spec has no go.mod of its own, so `go install …@version`
// would take whatever its dependencies' latest versions are.
package h2spec

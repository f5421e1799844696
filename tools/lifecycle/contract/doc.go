// Package contract holds only tests: the lifecycle's side of the contract
// between skiff and the CNB lifecycle. skiff's own module declares small
// structs for the lifecycle's files instead of importing the lifecycle
// (whose module graph is large); the golden files under
// build/testdata/contract are what crosses between the two, and the tests
// here read skiff's files with the lifecycle's own types and write the
// lifecycle's files with them, at the version this module pins. package
// build's TestContract* tests are the other side.
package contract

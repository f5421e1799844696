// Package kubernetes runs skiff's releases on a Kubernetes cluster: it
// renders what a release becomes (a namespace per app, an immutable Secret
// of config per release, a Deployment per process type, a Service for web,
// a PodDisruptionBudget, a ServiceAccount without a token, a pull secret)
// and applies it with server-side apply as field manager "skiff", without
// Helm. It owns only what carries its labels (LabelManagedBy and the app's
// LabelAppID) and never changes or deletes anything else.
//
// rbac.yaml is the least a cluster must grant skiff; Check tells an admin
// at once what is missing.
package kubernetes

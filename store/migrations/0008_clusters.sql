-- Kubernetes clusters apps may run on (clusters:add). The kubeconfig is a
-- credential, and the secret derives the per-app credentials the cluster's
-- nodes pull images from skiff's registry with.
CREATE TABLE clusters (
	name       TEXT PRIMARY KEY,
	kubeconfig BLOB NOT NULL,
	namespace  TEXT NOT NULL DEFAULT '',
	server     TEXT NOT NULL DEFAULT '',
	version    TEXT NOT NULL DEFAULT '',
	secret     BLOB NOT NULL,
	created_at TEXT NOT NULL
);

-- The StorageClass of the claims skiff makes for the apps' volumes on a
-- cluster (clusters:add --storage-class, clusters:set NAME storage-class);
-- '' is the cluster's default class.
ALTER TABLE clusters ADD COLUMN storage_class TEXT NOT NULL DEFAULT '';

-- An external registry per cluster (clusters:set NAME registry): skiff pushes
-- the apps' images there by digest, and the nodes pull them with these
-- credentials. '' is skiff's own registry. The password is a credential,
-- kept like the kubeconfig.
ALTER TABLE clusters ADD COLUMN registry TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN registry_username TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN registry_password BLOB NOT NULL DEFAULT x'';

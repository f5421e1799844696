-- A cluster's traffic mode (clusters:add --ingress-class, clusters:set NAME
-- ingress-class): '' is skiff's router, else the class of the Ingress skiff
-- applies per app.
ALTER TABLE clusters ADD COLUMN ingress_class TEXT NOT NULL DEFAULT '';

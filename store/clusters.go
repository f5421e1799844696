package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/skiffhq/skiff"
)

var _ skiff.ClusterService = (*DB)(nil)

// CreateCluster stores a cluster skiff may run apps on.
func (db *DB) CreateCluster(ctx context.Context, c *skiff.Cluster) error {
	if err := skiff.ValidateClusterName(c.Name); err != nil {
		return err
	}
	if len(c.Kubeconfig) == 0 || len(c.Secret) == 0 {
		return errors.New("store: a cluster needs a kubeconfig and a secret")
	}
	if c.IngressClass != "" {
		if err := skiff.ValidateIngressClass(c.IngressClass); err != nil {
			return err
		}
	}
	if c.StorageClass != "" {
		if err := skiff.ValidateStorageClass(c.StorageClass); err != nil {
			return err
		}
	}
	return db.update(ctx, func(tx *Tx) error {
		c.CreatedAt = tx.now
		_, err := tx.ExecContext(ctx, `INSERT INTO clusters (name, kubeconfig, namespace, server, version, secret, ingress_class, storage_class, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.Name, c.Kubeconfig, c.Namespace, c.Server, c.Version, c.Secret, c.IngressClass, c.StorageClass, formatTime(tx.now))
		if isUniqueViolation(err) {
			return skiff.Errorf(skiff.ECONFLICT, "cluster %s exists already; clusters:remove %s first to replace it", c.Name, c.Name)
		} else if err != nil {
			return err
		}
		return tx.event("", "", "clusters:add", c.Name+" "+c.Server)
	})
}

const clusterQuery = `SELECT name, kubeconfig, namespace, server, version, secret, ingress_class, registry, registry_username, registry_password, storage_class, created_at FROM clusters`

func scanCluster(row interface{ Scan(...any) error }) (*skiff.Cluster, error) {
	var c skiff.Cluster
	var created string
	if err := row.Scan(&c.Name, &c.Kubeconfig, &c.Namespace, &c.Server, &c.Version, &c.Secret, &c.IngressClass, &c.Registry, &c.RegistryUsername, &c.RegistryPassword, &c.StorageClass, &created); err != nil {
		return nil, err
	}
	c.CreatedAt = parseTime(created)
	return &c, nil
}

// Clusters lists the clusters by name.
func (db *DB) Clusters(ctx context.Context) ([]*skiff.Cluster, error) {
	return queryAll(ctx, db, scanCluster, clusterQuery+` ORDER BY name`)
}

// FindCluster returns the cluster called name.
func (db *DB) FindCluster(ctx context.Context, name string) (*skiff.Cluster, error) {
	c, err := scanCluster(db.read.QueryRowContext(ctx, clusterQuery+` WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, skiff.Errorf(skiff.ENOTFOUND, "there is no cluster %s; `clusters` lists them", name)
	}
	return c, err
}

// DeleteCluster forgets the cluster.
func (db *DB) DeleteCluster(ctx context.Context, name string) error {
	return db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM clusters WHERE name = ?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "there is no cluster %s; `clusters` lists them", name)
		}
		return tx.event("", "", "clusters:remove", name)
	})
}

// AppImages lists the images of the app's releases that did not fail
// (skiff's registry lets the app's clusters pull those).
func (db *DB) AppImages(ctx context.Context, appID string) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT image FROM releases WHERE app_id = ? AND status != 'failed'`, appID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var images []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		images = append(images, s)
	}
	return images, rows.Err()
}

// UpdateCluster stores what clusters:set changes of a cluster: its
// ingress class, its registry and the registry's credentials.
func (db *DB) UpdateCluster(ctx context.Context, c *skiff.Cluster) error {
	if c.IngressClass != "" {
		if err := skiff.ValidateIngressClass(c.IngressClass); err != nil {
			return err
		}
	}
	if c.Registry != "" {
		if err := skiff.ValidateRegistry(c.Registry); err != nil {
			return err
		}
	}
	if c.StorageClass != "" {
		if err := skiff.ValidateStorageClass(c.StorageClass); err != nil {
			return err
		}
	}
	password := c.RegistryPassword
	if password == nil {
		password = []byte{}
	}
	return db.update(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE clusters SET ingress_class = ?, registry = ?, registry_username = ?, registry_password = ?, storage_class = ? WHERE name = ?`,
			c.IngressClass, c.Registry, c.RegistryUsername, password, c.StorageClass, c.Name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return skiff.Errorf(skiff.ENOTFOUND, "there is no cluster %s; `clusters` lists them", c.Name)
		}
		traffic := "skiff's router"
		if c.IngressClass != "" {
			traffic = "ingress " + c.IngressClass
		}
		registry := "skiff's"
		if c.Registry != "" {
			registry = c.Registry
		}
		storage := "the default class"
		if c.StorageClass != "" {
			storage = c.StorageClass
		}
		return tx.event("", "", "clusters:set", c.Name+" traffic: "+traffic+", registry: "+registry+", storage: "+storage)
	})
}

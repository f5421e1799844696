-- Backing services (PostgreSQL, Redis), the apps linked to them, and when
-- they are backed up. Names are unique across kinds; each service has a
-- fixed address of the network's service pool.
CREATE TABLE services (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	kind       TEXT NOT NULL,
	version    TEXT NOT NULL,
	packages   TEXT NOT NULL DEFAULT '{}',
	image      TEXT NOT NULL DEFAULT '',
	run_as     TEXT NOT NULL DEFAULT '',
	volume_id  TEXT NOT NULL DEFAULT '',
	address    TEXT NOT NULL UNIQUE,
	port       INTEGER NOT NULL,
	limits     TEXT NOT NULL DEFAULT '{}',
	disk       INTEGER NOT NULL DEFAULT 0,
	owner_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
	password   TEXT NOT NULL,
	state      TEXT NOT NULL,
	created_at TEXT NOT NULL
);

CREATE TABLE service_links (
	service_id TEXT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
	app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	var        TEXT NOT NULL,
	builds     INTEGER NOT NULL DEFAULT 0,
	pending    INTEGER NOT NULL DEFAULT 1,
	created_at TEXT NOT NULL,
	PRIMARY KEY (service_id, app_id),
	UNIQUE (app_id, var)
);

CREATE TABLE service_backup_schedules (
	service_id TEXT PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
	schedule   TEXT NOT NULL,
	keep       INTEGER NOT NULL,
	last_run   TEXT NOT NULL DEFAULT ''
);

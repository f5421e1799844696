-- Builds, releases, config vars, formations, domains and per-app settings.
ALTER TABLE apps ADD COLUMN current_release INTEGER NOT NULL DEFAULT 0;

CREATE TABLE builds (
	app_id      TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	id          INTEGER NOT NULL,
	commit_id   TEXT NOT NULL,
	status      TEXT NOT NULL,
	actor       TEXT NOT NULL,
	builder     TEXT NOT NULL DEFAULT '',
	image       TEXT NOT NULL DEFAULT '',
	buildpacks  TEXT NOT NULL DEFAULT '[]', -- JSON array
	phases      TEXT NOT NULL DEFAULT '{}', -- JSON object of durations
	error       TEXT NOT NULL DEFAULT '',
	started_at  TEXT NOT NULL,
	finished_at TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (app_id, id)
);

CREATE TABLE releases (
	app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	version       INTEGER NOT NULL,
	image         TEXT NOT NULL,
	config        TEXT NOT NULL, -- JSON object, the config vars of the release
	process_types TEXT NOT NULL, -- JSON object, type -> command
	build_id      INTEGER NOT NULL DEFAULT 0,
	commit_id     TEXT NOT NULL DEFAULT '',
	description   TEXT NOT NULL,
	actor         TEXT NOT NULL,
	status        TEXT NOT NULL,
	error         TEXT NOT NULL DEFAULT '',
	created_at    TEXT NOT NULL,
	PRIMARY KEY (app_id, version)
);

-- The app's config vars as they will be in its next release. Values are
-- BLOBs: they round-trip byte for byte, whatever their encoding.
CREATE TABLE config_vars (
	app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  BLOB NOT NULL,
	build  INTEGER NOT NULL DEFAULT 0, -- also given to builds
	PRIMARY KEY (app_id, key)
);

CREATE TABLE formation (
	app_id       TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	process_type TEXT NOT NULL,
	quantity     INTEGER NOT NULL,
	memory       INTEGER NOT NULL DEFAULT 0, -- bytes; 0 for the default
	cpu          REAL NOT NULL DEFAULT 0,
	pids         INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (app_id, process_type)
);

CREATE TABLE domains (
	host       TEXT PRIMARY KEY,
	app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	created_at TEXT NOT NULL
);
CREATE INDEX domains_app ON domains (app_id);

CREATE TABLE app_settings (
	app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	key    TEXT NOT NULL,
	value  TEXT NOT NULL,
	PRIMARY KEY (app_id, key)
);

-- Persistent storage, the release phase's scripts and output, and cron.
ALTER TABLE releases ADD COLUMN scripts TEXT NOT NULL DEFAULT '{}'; -- JSON DeployScripts from app.json
ALTER TABLE releases ADD COLUMN cron TEXT NOT NULL DEFAULT '[]';    -- JSON cron jobs from app.json
ALTER TABLE releases ADD COLUMN mounts TEXT NOT NULL DEFAULT '[]';  -- JSON mounts when it was made
ALTER TABLE releases ADD COLUMN output BLOB NOT NULL DEFAULT '';    -- the release phase's output, its last bytes

CREATE TABLE volumes (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	owner_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
	service    TEXT NOT NULL DEFAULT '', -- the backing service whose data it holds
	created_at TEXT NOT NULL
);

-- The mounts an app's next release gets. A mounted volume cannot be
-- deleted (no cascade from volumes); destroying the app drops its mounts.
CREATE TABLE mounts (
	app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	position      INTEGER NOT NULL,
	volume_id     TEXT NOT NULL REFERENCES volumes(id),
	path          TEXT NOT NULL,
	process_types TEXT NOT NULL DEFAULT '[]', -- JSON list; empty: every container
	PRIMARY KEY (app_id, position)
);
CREATE INDEX mounts_volume ON mounts (volume_id);

CREATE TABLE cron_state (
	app_id         TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	job_id         TEXT NOT NULL,
	suspended      INTEGER NOT NULL DEFAULT 0,
	last_scheduled TEXT NOT NULL DEFAULT '', -- the latest scheduled time dealt with
	PRIMARY KEY (app_id, job_id)
);

CREATE TABLE cron_runs (
	id           INTEGER PRIMARY KEY,
	app_id       TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	job_id       TEXT NOT NULL,
	command      TEXT NOT NULL,
	release_version INTEGER NOT NULL,
	cause        TEXT NOT NULL, -- schedule, catch-up or manual
	scheduled_at TEXT NOT NULL DEFAULT '',
	started_at   TEXT NOT NULL,
	finished_at  TEXT NOT NULL DEFAULT '',
	status       TEXT NOT NULL,
	exit_code    INTEGER NOT NULL DEFAULT 0,
	detail       TEXT NOT NULL DEFAULT '',
	output       BLOB NOT NULL DEFAULT '' -- its last bytes, kept for the newest runs only
);
CREATE INDEX cron_runs_job ON cron_runs (app_id, job_id, id);

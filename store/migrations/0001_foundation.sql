-- Users, their SSH keys, apps, who may use them, pushes and the audit trail.
CREATE TABLE users (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	admin      INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL
);

CREATE TABLE keys (
	id          INTEGER PRIMARY KEY,
	user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	fingerprint TEXT NOT NULL UNIQUE,
	type        TEXT NOT NULL,
	public_key  TEXT NOT NULL,
	comment     TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL
);

CREATE TABLE apps (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	owner_id      INTEGER REFERENCES users(id) ON DELETE SET NULL,
	deploy_branch TEXT NOT NULL DEFAULT 'main',
	created_at    TEXT NOT NULL
);

CREATE TABLE access (
	app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at TEXT NOT NULL,
	PRIMARY KEY (app_id, user_id)
);

CREATE TABLE pushes (
	id         INTEGER PRIMARY KEY,
	app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
	ref        TEXT NOT NULL,
	old_commit TEXT NOT NULL,
	new_commit TEXT NOT NULL,
	pusher     TEXT NOT NULL,
	created_at TEXT NOT NULL
);
CREATE INDEX pushes_app ON pushes (app_id, id);

-- Events outlive their app (no foreign key): the audit trail keeps what was destroyed.
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	created_at  TEXT NOT NULL,
	actor       TEXT NOT NULL,
	fingerprint TEXT NOT NULL DEFAULT '',
	app_id      TEXT NOT NULL DEFAULT '',
	app_name    TEXT NOT NULL DEFAULT '',
	action      TEXT NOT NULL,
	detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_app ON events (app_id, id);

-- The config change that made a release (JSON ConfigChange; '' for none),
-- applied when it deploys: kept so that a deploy a daemon's death
-- interrupted can still make the release current exactly.
ALTER TABLE releases ADD COLUMN config_change TEXT NOT NULL DEFAULT '';

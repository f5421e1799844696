-- A release records the formation it was made with (informational: like
-- Heroku, a rollback keeps the current formation).
ALTER TABLE releases ADD COLUMN formation TEXT NOT NULL DEFAULT '{}';

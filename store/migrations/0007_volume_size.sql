-- What each volume may hold: its share of the server's disk budget.
ALTER TABLE volumes ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;

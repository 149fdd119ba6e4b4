-- What each part of a set is: a database dump, the globals (roles), or a
-- physical image. Only database parts are per-database downloads.
ALTER TABLE backup_artifacts ADD COLUMN kind TEXT NOT NULL DEFAULT 'database';

-- Restore drills (docs/drills.md): the verdict of a set's last drill.
ALTER TABLE backup_sets ADD COLUMN verify_status text NOT NULL DEFAULT '';
ALTER TABLE backup_sets ADD COLUMN verify_time bigint NOT NULL DEFAULT 0;
ALTER TABLE backup_sets ADD COLUMN verify_reason text NOT NULL DEFAULT '';

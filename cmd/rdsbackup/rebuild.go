package main

import (
	"context"
	"fmt"

	"github.com/rdsbackup/rdsbackup/backup"
)

// rebuildCatalog re-creates the catalog entries of the backup sets found in
// storage, from their manifests. Run it with the service stopped, e.g. after
// losing catalog.db: sets already in the catalog are left as they are.
func (m *Main) rebuildCatalog(ctx context.Context, args []string) error {
	cfg, err := m.configFromFlags("rebuild-catalog", args)
	if err != nil {
		return err
	}
	db, _, err := m.openCatalog(ctx, cfg, m.logger())
	if err != nil {
		return err
	}
	defer db.Close()
	store, _, err := m.openStoreForTool(ctx, cfg, m.logger())
	if err != nil {
		return err
	}
	res, err := backup.Rebuild(ctx, store, db)
	if err != nil {
		return err
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(m.Stderr, "skipped %s\n", s)
	}
	fmt.Fprintf(m.Stdout, "imported %d backup set(s); %d already in the catalog; %d skipped\n", res.Imported, res.Present, len(res.Skipped))
	return nil
}

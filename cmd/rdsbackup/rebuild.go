package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

// rebuildCatalog re-creates the catalog entries of the backup sets found in
// storage, from their manifests. Run it with the service stopped, e.g. after
// losing catalog.db: sets already in the catalog are left as they are.
func (m *Main) rebuildCatalog(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("rebuild-catalog", flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	configPath := fset.String("config", "", "YAML config file (default: built-in defaults)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = ReadConfigFile(*configPath, m.Getenv); err != nil {
			return err
		}
	}
	logger := m.logger()
	key, err := m.masterKey(cfg, logger)
	if err != nil {
		return err
	}
	box, err := aesgcm.New(key)
	if err != nil {
		return err
	}
	db := sqlite.NewDB(cfg.Path("catalog.db"), box)
	if err := db.Open(); err != nil {
		return fmt.Errorf("open catalog: %w", err)
	}
	defer db.Close()
	res, err := backup.Rebuild(ctx, localfs.New(cfg.Path("storage")), db)
	if err != nil {
		return err
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(m.Stderr, "skipped %s\n", s)
	}
	fmt.Fprintf(m.Stdout, "imported %d backup set(s); %d already in the catalog; %d skipped\n", res.Imported, res.Present, len(res.Skipped))
	return nil
}

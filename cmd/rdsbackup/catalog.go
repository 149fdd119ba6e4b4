package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/postgres"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
)

// openCatalog opens the catalog the config names under the master key and
// returns both. Every subcommand that needs the catalog opens it here.
func (m *Main) openCatalog(ctx context.Context, cfg *Config, logger *slog.Logger) (rdsbackup.Catalog, []byte, error) {
	key, err := m.masterKey(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	box, err := aesgcm.New(key)
	if err != nil {
		return nil, nil, err
	}
	cat, err := newCatalog(ctx, cfg.Catalog, cfg.Path("catalog.db"), box)
	if err != nil {
		return nil, nil, err
	}
	return cat, key, nil
}

// newCatalog opens the catalog of type cc.Type: for sqlite the file at
// sqlitePath, for postgres the database at cc.DSN.
func newCatalog(ctx context.Context, cc CatalogConfig, sqlitePath string, box rdsbackup.SecretBox) (rdsbackup.Catalog, error) {
	var cat rdsbackup.Catalog
	var err error
	switch cc.Type {
	case CatalogSQLite, "":
		db := sqlite.NewDB(sqlitePath, box)
		cat, err = db, db.Open()
	case CatalogPostgres:
		db := postgres.NewDB(cc.DSN, box)
		openCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cat, err = db, db.Open(openCtx)
	default:
		return nil, fmt.Errorf("catalog type %q: use sqlite or postgres", cc.Type)
	}
	if errors.Is(err, rdsbackup.ErrWrongMasterKey) {
		return nil, fmt.Errorf("open %s catalog: %w: every node, and every command run on the catalog, must use the master key "+
			"that first opened it (the same %s, or a copy of the master.key file)", cc.Type, err, envMasterKey)
	} else if err != nil {
		return nil, fmt.Errorf("open %s catalog: %w", cc.Type, err)
	}
	return cat, nil
}

const catalogUsage = `Usage:
  rdsbackup catalog copy --from FILE --to DSN [--key-file FILE]

Copies an installation's catalog from its SQLite file (dataDir/catalog.db)
into an empty PostgreSQL database, keeping ids, times and secrets (still
sealed under the same master key), then checks that both hold the same rows:
a count and a SHA-256 per table. Stop the service first. The master key is
RDSBACKUP_MASTER_KEY when set, otherwise --key-file (default: master.key
beside the SQLite file).
`

// catalogCommand runs `rdsbackup catalog …`.
func (m *Main) catalogCommand(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "copy" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(m.Stdout, catalogUsage)
			return nil
		}
		fmt.Fprint(m.Stderr, catalogUsage)
		return usageError{fmt.Errorf("catalog: want the subcommand copy")}
	}
	fset := flag.NewFlagSet("catalog copy", flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	fset.Usage = func() { fmt.Fprint(m.Stderr, catalogUsage) }
	from := fset.String("from", "", "the SQLite catalog file to copy (dataDir/catalog.db)")
	to := fset.String("to", "", "the PostgreSQL connection string of an empty database (a password in it is visible to other users of this machine: prefer PGPASSWORD or ~/.pgpass)")
	keyFile := fset.String("key-file", "", "the master key file when RDSBACKUP_MASTER_KEY is not set (default: master.key beside --from)")
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	switch {
	case fset.NArg() > 0:
		return usageError{fmt.Errorf("catalog copy: unexpected argument %q", fset.Arg(0))}
	case *from == "":
		return usageError{fmt.Errorf("catalog copy: --from is required")}
	case *to == "":
		return usageError{fmt.Errorf("catalog copy: --to is required")}
	}
	target := CatalogConfig{Type: CatalogPostgres, DSN: *to}
	if err := target.validate(); err != nil {
		return usageError{fmt.Errorf("catalog copy: --to: %v", err)}
	}
	// Opening a missing file would create an empty catalog and copy that.
	if _, err := os.Stat(*from); err != nil {
		return fmt.Errorf("catalog copy: --from: %w", err)
	}
	key, err := m.existingMasterKey(*keyFile, filepath.Join(filepath.Dir(*from), "master.key"))
	if err != nil {
		return err
	}
	box, err := aesgcm.New(key)
	if err != nil {
		return err
	}
	src, err := newCatalog(ctx, CatalogConfig{Type: CatalogSQLite}, *from, box)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := newCatalog(ctx, target, "", box)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer dst.Close()

	start := time.Now()
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "table\trows\tsha256\t")
	report, err := rdsbackup.CopyCatalog(ctx, src, dst, func(s rdsbackup.TableSummary) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", s.Table, s.Rows, s.Checksum)
	})
	tw.Flush()
	if err != nil {
		return fmt.Errorf("catalog copy: %w (the target may hold part of the copy: drop and recreate its database before trying again)", err)
	}
	rows := 0
	for _, s := range report.Tables {
		rows += s.Rows
	}
	fmt.Fprintf(m.Stdout, "done: %d rows in %d tables copied and verified (counts and checksums match) in %s\n",
		rows, len(report.Tables), time.Since(start).Round(time.Millisecond))
	return nil
}

// existingMasterKey reads the master key from the environment, else from
// keyFile, else from defaultFile; it never makes a new one.
func (m *Main) existingMasterKey(keyFile, defaultFile string) ([]byte, error) {
	if v := m.Getenv(envMasterKey); v != "" {
		key, err := aesgcm.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envMasterKey, err)
		}
		return key, nil
	}
	path := keyFile
	if path == "" {
		path = defaultFile
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no master key: %s is not set and %s does not exist (use --key-file)", envMasterKey, path)
	}
	key, _, err := aesgcm.LoadOrCreateKeyFile(path)
	return key, err
}

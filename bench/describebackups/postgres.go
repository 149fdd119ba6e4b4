package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/postgres"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// pgCatalog is the PostgreSQL arm: a throwaway server holding a copy of the
// seeded catalog.
type pgCatalog struct {
	srv     *localserver.Postgres
	dsn     string
	version string
	took    time.Duration // starting the server and copying the catalog
}

// pgSettings are the server's settings beyond localserver's defaults
// (which include fsync=off: the reads measured here do not fsync). The
// buffers hold the sets table and its indexes (about 700 MiB at a million
// sets), as on a host sized for the catalog.
var pgSettings = map[string]string{
	"shared_buffers":       "1GB",
	"effective_cache_size": "4GB",
	"max_connections":      "50",
}

// startPostgresCatalog starts a PostgreSQL server and copies the
// SQLite catalog at sqlitePath into it with rdsbackup.CopyCatalog (the code
// `rdsbackup catalog copy` runs, verified table by table), then VACUUM
// ANALYZE, as after any bulk load.
func startPostgresCatalog(ctx context.Context, sqlitePath string, logf func(string, ...any)) (*pgCatalog, error) {
	began := time.Now()
	// Its own directory in TempDir, which the user postgres can reach when
	// the bench runs as root.
	srv, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{Prefix: "rdsbackup-bench-", Settings: pgSettings})
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			srv.Remove()
		}
	}()
	admin, err := srv.Open(ctx, "postgres")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE catalog"); err != nil {
		return nil, err
	}
	var version string
	admin.QueryRowContext(ctx, "SHOW server_version").Scan(&version)
	pc := &pgCatalog{srv: srv, dsn: srv.URL("catalog"), version: version}

	key, err := aesgcm.ParseKey(benchMasterKey)
	if err != nil {
		return nil, err
	}
	box, err := aesgcm.New(key)
	if err != nil {
		return nil, err
	}
	src := sqlite.NewDB(sqlitePath, box)
	if err := src.Open(); err != nil {
		return nil, fmt.Errorf("open the seeded catalog: %w", err)
	}
	defer src.Close()
	dst := postgres.NewDB(pc.dsn, box)
	if err := dst.Open(ctx); err != nil {
		return nil, fmt.Errorf("open the PostgreSQL catalog: %w", err)
	}
	defer dst.Close()
	logf("copying the seeded catalog into PostgreSQL %s (%s)", version, pc.dsn)
	if _, err := rdsbackup.CopyCatalog(ctx, src, dst, func(s rdsbackup.TableSummary) {
		logf("  %s: %d rows copied and verified", s.Table, s.Rows)
	}); err != nil {
		return nil, fmt.Errorf("copy the catalog: %w", err)
	}
	db, err := srv.Open(ctx, "catalog")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM (ANALYZE)"); err != nil {
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	pc.took = time.Since(began)
	logf("PostgreSQL catalog ready in %s", pc.took.Round(time.Second))
	ok = true
	return pc, nil
}

// size is the catalog database's size.
func (pc *pgCatalog) size(ctx context.Context) string {
	db, err := pc.srv.Open(ctx, "catalog")
	if err != nil {
		return "?"
	}
	defer db.Close()
	var s string
	if err := db.QueryRowContext(ctx, "SELECT pg_size_pretty(pg_database_size('catalog'))").Scan(&s); err != nil {
		return "?"
	}
	return s
}

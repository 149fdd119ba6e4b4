package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// RestoreOptions change how RestoreLogicalWith treats the target database.
type RestoreOptions struct {
	// Force restores into a database that already holds tables, views,
	// routines or events. The dump drops and recreates the tables, views
	// and routines it holds; objects it does not hold stay as they are.
	Force bool
}

// RestoreLogical restores a dump made by a Logical backup (one database's
// part) into database on the server dsn names (a go-sql-driver/mysql DSN;
// its database is ignored), which may differ from the database dumped. It
// is RestoreLogicalWith without options: a database that exists and holds
// anything is refused with an rdsbackup.ECONFLICT error.
func (e *Engine) RestoreLogical(ctx context.Context, dsn, database string, dump io.Reader) error {
	return e.RestoreLogicalWith(ctx, dsn, database, dump, RestoreOptions{})
}

// RestoreLogicalWith creates database unless it exists (with the server's
// default character set; tables keep their own), then feeds dump to the
// mariadb or mysql client connected to it. The client stops at the first
// failing statement; the error then holds its exit status and the end of
// what it printed. When the database did not exist before, a failed restore
// drops it again, so that it can simply be retried.
//
// The dump is read until EOF, or until the client fails; a dump reader that
// blocks is not interrupted by ctx, only the client is.
func (e *Engine) RestoreLogicalWith(ctx context.Context, dsn, database string, dump io.Reader, opts RestoreOptions) error {
	if database == "" {
		return rdsbackup.InvalidParameter("database", "the name of the database to restore into is empty")
	}
	client, err := e.lookTool(roleClient)
	if err != nil {
		return err
	}
	cfg, err := parseDSN(dsn)
	if err != nil {
		return fmt.Errorf("restore database %s: %w", database, err)
	}
	c, err := e.open(ctx, cfg.Addr, dsn)
	if err != nil {
		return fmt.Errorf("restore database %s: %w", database, err)
	}
	defer c.Close()

	exists, objects, err := databaseObjects(ctx, c.db, database)
	if err != nil {
		return fmt.Errorf("restore database %s: %w", database, redact(err, c.cfg.Passwd))
	}
	if objects > 0 && !opts.Force {
		return rdsbackup.Errorf(rdsbackup.ECONFLICT,
			"The database %q already exists on %s and holds %d tables, views, routines or events; restore into an empty or new database, or force the restore.", database, c.cfg.Addr, objects)
	}
	if !exists {
		if _, err := c.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(database)); err != nil {
			return fmt.Errorf("restore database %s: create it: %w", database, redact(err, c.cfg.Passwd))
		}
	}

	group, err := clientOptions(c.cfg)
	if err != nil {
		return fmt.Errorf("restore database %s: %w", database, err)
	}
	ws, err := e.newWorkspace(group, optionGroup{name: "mysql", options: [][2]string{{"max-allowed-packet", "1G"}}})
	if err != nil {
		return fmt.Errorf("restore database %s: %w", database, err)
	}
	defer ws.remove()
	args := []string{ws.defaultsArg(), "--default-character-set=utf8mb4", "--", database}
	e.logger().Info("restoring database", "database", database, "server", c.cfg.Addr, "tool", client.name)
	rerr := e.runFed(ctx, client, ws, c.cfg.Passwd, args, dump)
	if rerr == nil {
		return nil
	}
	if !exists {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := c.db.ExecContext(dctx, "DROP DATABASE IF EXISTS "+quoteIdent(database)); err != nil {
			e.logger().Warn("drop the database of a failed restore", "database", database, "err", redact(err, c.cfg.Passwd))
		}
	}
	return fmt.Errorf("restore database %s: %w", database, rerr)
}

// databaseObjects reports whether database exists and how many tables,
// views, routines and events it holds.
func databaseObjects(ctx context.Context, db *sql.DB, database string) (exists bool, objects int, err error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", database).Scan(&n); err != nil {
		return false, 0, err
	}
	if n == 0 {
		return false, 0, nil
	}
	err = db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?) +
		(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?) +
		(SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?)`,
		database, database, database).Scan(&objects)
	return true, objects, err
}

// RestorePhysical unpacks a Physical backup (the "instance" part) into
// dataDir and prepares it, so that a server can start on it. dataDir must
// be empty or not exist yet (it is then created, mode 0750); anything else
// is refused with an rdsbackup.ECONFLICT error. It runs
//
//	mbstream -x -C dataDir                       (MySQL: xbstream -x -C dataDir)
//	mariadb-backup --prepare --target-dir=dataDir (MySQL: xtrabackup --prepare)
//
// and on failure removes what it put into dataDir. Use tools of the same
// version as the server that was backed up.
//
// The directory is then a complete data directory of the backed-up server,
// as of the end of the backup, with its accounts and passwords. To run it:
//
//  1. Give it to the server's user: chown -R mysql:mysql dataDir.
//  2. Start a server of the same version on it with the InnoDB settings
//     recorded in dataDir/backup-my.cnf (innodb_page_size and the like), for
//     example mariadbd --user=mysql --datadir=dataDir --port=3307
//     --socket=dataDir/mysqld.sock, or point an installed server's datadir
//     at it (mind AppArmor or SELinux rules for a new path). The first start
//     rebuilds the redo log; log in with the source server's credentials.
//  3. dataDir/xtrabackup_binlog_info holds the binary log position and GTID
//     of the backup, for starting replication from the source or replaying
//     its binary logs for point-in-time recovery.
func (e *Engine) RestorePhysical(ctx context.Context, stream io.Reader, dataDir string) (err error) {
	if dataDir == "" {
		return rdsbackup.InvalidParameter("dataDir", "the data directory to restore into is empty")
	}
	extract, err := e.lookTool(roleExtract)
	if err != nil {
		return err
	}
	prepare, err := e.lookTool(roleBackup)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("restore into %s: %w", dataDir, err)
	}
	created, err := prepareEmptyDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			cleanDir(dir, created)
		}
	}()
	ws, err := e.newWorkspace()
	if err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	defer ws.remove()

	log := e.logger().With("dataDir", dir)
	log.Info("unpacking physical backup", "tool", extract.name)
	if err := e.runFed(ctx, extract, ws, "", []string{"-x", "-C", dir}, stream); err != nil {
		return fmt.Errorf("restore into %s: unpack: %w", dir, err)
	}
	log.Info("preparing physical backup", "tool", prepare.name)
	if err := e.runTool(ctx, prepare, ws, "", "--prepare", "--target-dir="+dir); err != nil {
		return fmt.Errorf("restore into %s: prepare: %w", dir, err)
	}
	return nil
}

// prepareEmptyDir makes sure dir is an empty directory, creating it when
// it does not exist.
func prepareEmptyDir(dir string) (created bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return false, fmt.Errorf("restore into %s: %w", dir, err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("restore into %s: %w", dir, err)
	case len(entries) > 0:
		return false, rdsbackup.Errorf(rdsbackup.ECONFLICT,
			"The directory %s is not empty; a physical backup is restored into an empty directory only.", dir)
	}
	return false, nil
}

// cleanDir empties dir, or removes it when it was created for the restore.
func cleanDir(dir string, created bool) {
	if created {
		_ = os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		_ = os.RemoveAll(filepath.Join(dir, en.Name()))
	}
}

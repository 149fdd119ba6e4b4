package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
)

// RestoreGlobals replays the globals part of a logical backup (the SQL of
// pg_dumpall --globals-only) on the server of url, with psql -v
// ON_ERROR_STOP=0: roles and tablespaces that exist already are left as
// they are and the script goes on. The connecting role's own CREATE ROLE
// and ALTER ROLE … WITH lines are skipped, so its password and attributes
// stay. Errors other than "already exists" are returned, up to 20 of them,
// after the whole script has run.
func (e *Engine) RestoreGlobals(ctx context.Context, url string, sql io.Reader) error {
	c, err := connect(ctx, url, "")
	if err != nil {
		return err
	}
	c.close()
	psql, err := e.findTool(ctx, "psql", c.version, true)
	if err != nil {
		return err
	}
	s, err := e.newSession(c.params)
	if err != nil {
		return err
	}
	defer s.close()
	db := c.params.database
	if db == "" {
		db = c.Config().Database
	}
	skip := ownRoleLines(c.user)
	pr, pw := io.Pipe()
	filterDone := make(chan error, 1)
	go func() {
		err := filterLines(pw, sql, skip)
		if err != nil {
			err = fmt.Errorf("read the globals: %w", err)
		}
		pw.CloseWithError(err)
		filterDone <- err
	}()
	errs := &errorLines{max: 20, ignore: func(l string) bool { return strings.Contains(l, "already exists") }}
	args := []string{"--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=0", "--file=-", "--dbname=" + conninfoDB(db)}
	ch, err := e.start(ctx, s, psql, "", args, startOptions{stdin: pr, stderr: errs})
	if err != nil {
		pr.CloseWithError(err)
		<-filterDone
		return err
	}
	waitErr := ch.wait()
	pr.CloseWithError(errors.New("psql exited")) // unblocks the filter if psql stopped reading
	filterErr := <-filterDone
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("restore globals: %w", ctx.Err())
	case filterErr != nil:
		return filterErr
	case waitErr != nil:
		return fmt.Errorf("restore globals: %w", waitErr)
	}
	if n, lines := errs.result(); n > 0 {
		return s.redact.err(fmt.Errorf("restore globals: %d statements failed (the others were applied):\n%s", n, strings.Join(lines, "\n")))
	}
	return nil
}

// ownRoleLines matches the lines of a pg_dumpall script that create or
// alter the attributes (password included) of role.
func ownRoleLines(role string) *regexp.Regexp {
	ids := []string{regexp.QuoteMeta(`"` + strings.ReplaceAll(role, `"`, `""`) + `"`)}
	if regexp.MustCompile(`^[a-z_][a-z0-9_$]*$`).MatchString(role) {
		ids = append(ids, regexp.QuoteMeta(role))
	}
	id := "(?:" + strings.Join(ids, "|") + ")"
	return regexp.MustCompile(`^(?:CREATE ROLE ` + id + `;|ALTER ROLE ` + id + ` WITH )`)
}

// filterLines copies r to w line by line, leaving out lines skip matches.
func filterLines(w io.Writer, r io.Reader, skip *regexp.Regexp) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" && !skip.MatchString(line) {
			if _, werr := io.WriteString(w, line); werr != nil {
				return nil // psql stopped reading; its exit says why
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// LogicalRestoreOptions change how RestoreLogicalWith restores.
type LogicalRestoreOptions struct {
	// Force restores into a database that exists and holds objects:
	// pg_restore --clean --if-exists drops the archive's objects before
	// creating them again; objects not in the archive stay.
	Force bool
	// NoOwner makes the restoring user own every object and skips the
	// archive's GRANTs (pg_restore --no-owner --no-privileges), for a
	// server where the globals were not restored.
	NoOwner bool
}

// RestoreLogical restores a database archive (a database part of a logical
// backup) into database on the server of url, creating the database. It
// refuses a database that exists and is not empty (an *rdsbackup.Error with
// code ECONFLICT). See RestoreLogicalWith.
func (e *Engine) RestoreLogical(ctx context.Context, url, database string, dump io.Reader) error {
	return e.RestoreLogicalWith(ctx, url, database, dump, LogicalRestoreOptions{})
}

// RestoreLogicalWith restores a database archive into database on the server
// of url with pg_restore --exit-on-error, reading it from dump. A database
// that does not exist is created from template0; one that exists must be
// empty unless opts.Force is set. Owners and privileges are restored as
// dumped unless opts.NoOwner is set, so the roles must exist: restore the
// globals first. If the restore fails, a database it created is dropped.
func (e *Engine) RestoreLogicalWith(ctx context.Context, url, database string, dump io.Reader, opts LogicalRestoreOptions) error {
	if database == "" {
		return rdsbackup.MissingParameter("database")
	}
	c, err := connect(ctx, url, "")
	if err != nil {
		return err
	}
	defer c.close()
	restore, err := e.findTool(ctx, "pg_restore", c.version, true)
	if err != nil {
		return err
	}
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)`, database).Scan(&exists); err != nil {
		return c.redact.err(fmt.Errorf("look up database %q: %w", database, err))
	}
	created := false
	if exists {
		n, err := countObjects(ctx, c.dsn, database)
		if err != nil {
			return c.redact.err(err)
		}
		if n > 0 && !opts.Force {
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "The database %q already exists and is not empty (%d objects); restore into a new database or use the force option.", database, n)
		}
	} else {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()+" TEMPLATE template0"); err != nil {
			return c.redact.err(fmt.Errorf("create database %q: %w", database, err))
		}
		created = true
	}
	c.close()

	err = e.runRestore(ctx, c.params, restore, database, dump, opts)
	if err != nil && created {
		if derr := dropDatabase(context.WithoutCancel(ctx), c.dsn, database); derr != nil {
			e.logger().Warn("cannot drop the database of a failed restore", "database", database, "err", derr)
		}
	}
	return err
}

func (e *Engine) runRestore(ctx context.Context, p *connParams, restore, database string, dump io.Reader, opts LogicalRestoreOptions) error {
	s, err := e.newSession(p)
	if err != nil {
		return err
	}
	defer s.close()
	args := []string{"--format=custom", "--exit-on-error", "--no-password", "--dbname=" + conninfoDB(database)}
	if opts.NoOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	if opts.Force {
		args = append(args, "--clean", "--if-exists")
	}
	ch, err := e.start(ctx, s, restore, fmt.Sprintf("into database %q", database), args, startOptions{stdin: dump})
	if err != nil {
		return err
	}
	err = ch.wait()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("restore database %q: %w", database, ctx.Err())
	case err == nil:
		return nil
	}
	var te *ToolError
	if errors.As(err, &te) && regexp.MustCompile(`role ".*" does not exist|must be (a )?member of role`).MatchString(te.Stderr) {
		return fmt.Errorf("%w (the archive's owners are missing on this server: restore the globals first, or restore without owners)", err)
	}
	return s.redact.err(err)
}

// countObjects counts the user objects in a database: relations, routines,
// types, schemas other than public, extensions other than plpgsql, and
// large objects.
func countObjects(ctx context.Context, dsn, database string) (int64, error) {
	c, err := connect(ctx, dsn, database)
	if err != nil {
		return 0, err
	}
	defer c.close()
	const user = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`
	var n int64
	err = c.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM pg_catalog.pg_class x JOIN pg_catalog.pg_namespace n ON n.oid = x.relnamespace WHERE `+user+`) +
		(SELECT count(*) FROM pg_catalog.pg_proc x JOIN pg_catalog.pg_namespace n ON n.oid = x.pronamespace WHERE `+user+`) +
		(SELECT count(*) FROM pg_catalog.pg_type x JOIN pg_catalog.pg_namespace n ON n.oid = x.typnamespace WHERE `+user+`) +
		(SELECT count(*) FROM pg_catalog.pg_namespace n WHERE `+user+` AND n.nspname <> 'public') +
		(SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql') +
		(SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("inspect database %q: %w", database, err)
	}
	return n, nil
}

func dropDatabase(ctx context.Context, dsn, database string) error {
	c, err := connect(ctx, dsn, "")
	if err != nil {
		return err
	}
	defer c.close()
	q := "DROP DATABASE IF EXISTS " + pgx.Identifier{database}.Sanitize()
	if c.num >= 130000 {
		q += " WITH (FORCE)"
	}
	_, err = c.Exec(ctx, q)
	return err
}

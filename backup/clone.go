package backup

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

// LogicalRestorer restores one database part of a logical set into a
// server (the engines' RestoreLogical).
type LogicalRestorer interface {
	RestoreLogical(ctx context.Context, dsn, database string, dump io.Reader) error
}

// GlobalsRestorer restores a set's globals part (PostgreSQL's roles and
// tablespaces) into a server.
type GlobalsRestorer interface {
	RestoreGlobals(ctx context.Context, dsn string, sql io.Reader) error
}

// PhysicalRestorer restores a physical set's image into an empty data
// directory (the engines' RestorePhysical).
type PhysicalRestorer interface {
	RestorePhysical(ctx context.Context, stream io.Reader, dataDir string) error
}

// RestorePhysicalClone restores a physical set of c's source into the
// empty data directory of the clone's server-to-be (clone.Restorer).
func (r *Recoverer) RestorePhysicalClone(ctx context.Context, c *rdsbackup.Clone, dataDir string) error {
	set, err := r.Catalog.FindBackupSet(ctx, c.BackupID)
	if err != nil {
		return fmt.Errorf("backup set %d: %w", c.BackupID, err)
	}
	engine, _ := r.Logical[c.Engine].(PhysicalRestorer)
	if set.Method != rdsbackup.MethodPhysical || engine == nil {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "Backup set %d cannot be restored as a %s data directory.", set.ID, c.Engine)
	}
	for _, a := range set.Artifacts {
		if a.Kind != rdsbackup.PartPhysical {
			continue
		}
		rc, err := OpenChecked(ctx, r.Store, set.ObjectKey, a.Offset, a.Length, a.Checksum)
		if err != nil {
			return err
		}
		defer rc.Close()
		return engine.RestorePhysical(ctx, rc, dataDir)
	}
	return rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "Backup set %d has no physical part.", set.ID)
}

// RestoreClone fills a clone's new server (clone.Restorer): a logical set
// is restored part by part with the engine's own tools, the globals
// (roles) first, so that the owners of the databases' objects exist; a
// restore to c.RestoreTime, and any other set, go through RestoreInto.
func (r *Recoverer) RestoreClone(ctx context.Context, c *rdsbackup.Clone, source, target *rdsbackup.Instance, progress func(int)) error {
	if !c.RestoreTime.IsZero() {
		_, err := r.RestoreInto(ctx, Restore{Source: source, Target: target, Time: c.RestoreTime, Databases: c.Databases}, progress)
		return err
	}
	set, err := r.Catalog.FindBackupSet(ctx, c.BackupID)
	if err != nil {
		return fmt.Errorf("backup set %d: %w", c.BackupID, err)
	}
	engine := r.Logical[source.Engine]
	if set.Method != rdsbackup.MethodLogical || engine == nil {
		// A physical MariaDB set goes into a running server through the
		// engine's restore (a throwaway server on the image, then a dump).
		_, err := r.RestoreInto(ctx, Restore{Source: source, Target: target, BackupID: set.ID, Databases: c.Databases}, progress)
		return err
	}
	open := func(a rdsbackup.Artifact) (io.ReadCloser, error) {
		return OpenChecked(ctx, r.Store, set.ObjectKey, a.Offset, a.Length, a.Checksum)
	}
	for i, a := range set.Artifacts {
		switch a.Kind {
		case rdsbackup.PartGlobals:
			g, ok := engine.(GlobalsRestorer)
			if !ok {
				continue
			}
			rc, err := open(a)
			if err != nil {
				return err
			}
			err = g.RestoreGlobals(ctx, target.DSN, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("restore the roles (globals part): %w", err)
			}
		case rdsbackup.PartDatabase, "":
			name := a.Database
			if len(c.Databases) > 0 {
				var ok bool
				if name, ok = c.Databases[a.Database]; !ok {
					continue
				}
			}
			rc, err := open(a)
			if err != nil {
				return err
			}
			err = engine.RestoreLogical(ctx, target.DSN, name, rc)
			rc.Close()
			if err != nil && !strings.Contains(err.Error(), a.Database) {
				err = fmt.Errorf("restore database %s: %w", a.Database, err)
			}
			if err != nil {
				return err
			}
		}
		if progress != nil {
			progress(100 * (i + 1) / len(set.Artifacts))
		}
	}
	return nil
}

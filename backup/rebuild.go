package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"

	"github.com/rdsbackup/rdsbackup"
)

// Importer stores rebuilt sets.
type Importer interface {
	FindBackupSet(ctx context.Context, id int64) (*rdsbackup.BackupSet, error)
	ImportBackupSets(ctx context.Context, sets []*rdsbackup.BackupSet) error
}

// RebuildResult counts what Rebuild did.
type RebuildResult struct {
	Imported int      // sets added to the catalog
	Present  int      // sets the catalog already had
	Skipped  []string // manifests whose object is missing or does not match, with why
}

// Rebuild restores the catalog entries of every set found in storage, from
// the manifests stored beside the set objects. A manifest whose object is
// missing or has another size is reported and skipped, never imported: the
// catalog must not point at data that is not there.
func Rebuild(ctx context.Context, store rdsbackup.ObjectStore, catalog Importer) (RebuildResult, error) {
	var res RebuildResult
	var sets []*rdsbackup.BackupSet
	for o, err := range store.List(ctx, "backups/") {
		if err != nil {
			return res, fmt.Errorf("list backups: %w", err)
		}
		if path.Base(o.Key) != "manifest.json" {
			continue
		}
		m, err := readManifestObject(ctx, store, o.Key)
		if err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: %v", o.Key, err))
			continue
		}
		st, err := store.Stat(ctx, m.ObjectKey)
		if err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: object %s: %v", o.Key, m.ObjectKey, err))
			continue
		} else if st.Size != m.Size {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: object %s has %d bytes, manifest says %d", o.Key, m.ObjectKey, st.Size, m.Size))
			continue
		}
		if _, err := catalog.FindBackupSet(ctx, m.ID); err == nil {
			res.Present++
			continue
		} else if rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			return res, err
		}
		sets = append(sets, m.ToBackupSet())
	}
	if len(sets) > 0 {
		if err := catalog.ImportBackupSets(ctx, sets); err != nil {
			return res, fmt.Errorf("import backup sets: %w", err)
		}
	}
	res.Imported = len(sets)
	return res, nil
}

func readManifestObject(ctx context.Context, store rdsbackup.ObjectStore, key string) (*SetObjectManifest, error) {
	rc, err := store.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, err
	}
	var m SetObjectManifest
	if err := json.Unmarshal(buf, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest version %d not supported", m.Version)
	}
	return &m, nil
}

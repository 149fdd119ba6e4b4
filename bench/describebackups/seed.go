package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	_ "modernc.org/sqlite" // the "sqlite" driver, for the read-only checks
)

// seedVersion changes whenever the generated data changes, so that a cached
// data directory made by an older generator is not reused.
const seedVersion = 1

// seedBatch is the number of sets per ImportBackupSets transaction.
const seedBatch = 10000

// seedBase is the start of the year over which the sets are spread. Fixed so
// that a cached catalog and the time-range scenario agree.
var seedBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const seedSpan = 365 * 24 * time.Hour

// layout describes the generated catalog: set k (0-based) belongs to
// instance k % instances, in slot k / instances of that instance, and has
// BackupId k+1. Slots split the year evenly, so ids grow with start time as
// they would in a real catalog filled over a year, and the load client can
// name an existing BackupId of any instance without asking the service.
type layout struct {
	Sets      int
	Instances int
}

func (l layout) perInstance() int { return (l.Sets + l.Instances - 1) / l.Instances }

// setsOf is the number of sets of instance i.
func (l layout) setsOf(i int) int {
	n := l.Sets / l.Instances
	if i < l.Sets%l.Instances {
		n++
	}
	return n
}

// setID is the BackupId of instance i's set in slot s.
func (l layout) setID(i, s int) int64 { return int64(s)*int64(l.Instances) + int64(i) + 1 }

func instanceID(i int) string { return "rm-bench-" + strconv.Itoa(i) }

// mix is splitmix64: a cheap deterministic hash, so that set k is the same
// in every run without keeping generator state.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var dbNames = []string{"shop", "crm"}

// genSet returns set k: 95% Success / 5% Failed, 80% Automated / 20%
// Manual, all FullBackup (the type the brief asks for; BackupType then
// filters nothing out), physical or logical, sizes from 50 MiB to ~50 GiB,
// two artifacts (one per database) each.
func (l layout) genSet(k int) *rdsbackup.BackupSet {
	i, s := k%l.Instances, k/l.Instances
	h := mix(uint64(k))
	slot := seedSpan / time.Duration(l.perInstance())
	// Instances take turns within a slot, with a little jitter; whole seconds
	// as the catalog stores them.
	off := time.Duration(float64(slot) * (0.9*float64(i)/float64(l.Instances) + 0.1*float64(h%1000)/1000))
	start := seedBase.Add(time.Duration(s)*slot + off).Truncate(time.Second)
	size := int64(50+h>>20%50000) << 20
	end := start.Add(time.Duration(60+size>>26) * time.Second)

	set := &rdsbackup.BackupSet{
		ID:               int64(k + 1),
		InstanceID:       instanceID(i),
		Status:           rdsbackup.BackupSuccess,
		StartTime:        start,
		EndTime:          end,
		Type:             rdsbackup.FullBackup,
		Mode:             rdsbackup.BackupAutomated,
		Method:           rdsbackup.MethodPhysical,
		Initiator:        rdsbackup.InitiatorSystem,
		Size:             size,
		Available:        true,
		StoreStatus:      rdsbackup.StoreDisabled,
		MetaStatus:       "OK",
		StorageClass:     "0",
		ConsistentTime:   end.Unix(),
		Checksum:         strconv.FormatUint(mix(h), 10),
		HostInstanceID:   strconv.Itoa(5000000 + i),
		Encryption:       "{}",
		Engine:           rdsbackup.EngineMySQL,
		EngineVersion:    "8.0",
		ResourceGroupID:  "rg-acfmz7u4zzr2bvi",
		Location:         "OSS",
		Scale:            "DBInstance",
		DBNames:          dbNames,
		ExpectExpireTime: start.Add(730 * 24 * time.Hour),
		ObjectKey:        fmt.Sprintf("sets/%s/%d", instanceID(i), k+1),
	}
	if h%100 >= 80 {
		set.Mode, set.Initiator, set.StoreStatus = rdsbackup.BackupManual, rdsbackup.InitiatorUser, rdsbackup.StoreEnabled
	}
	if h>>8%4 == 0 {
		set.Method = rdsbackup.MethodLogical
	}
	if h>>16%100 < 5 {
		set.Status, set.Available, set.ObjectKey, set.ConsistentTime = rdsbackup.BackupFailed, false, "", 0
		set.FailureReason = "lost connection to MySQL server during query"
		set.Size /= 7
	}
	first := size * 2 / 3
	set.Artifacts = []rdsbackup.Artifact{
		{Database: "shop", Offset: 0, Length: first, Checksum: strconv.FormatUint(mix(h+1), 10)},
		{Database: "crm", Offset: first, Length: size - first, Checksum: strconv.FormatUint(mix(h+2), 10)},
	}
	return set
}

// seedInfo is written beside the catalog once seeding has finished; a data
// directory without it is incomplete and is seeded again.
type seedInfo struct {
	Version   int
	Sets      int
	Instances int
	Took      string
	Finished  time.Time
}

const seedMarker = "bench-seeded.json"

func seedDir(base string, l layout) string {
	return filepath.Join(base, fmt.Sprintf("rdsbackup-bench-%d-sets-%d-instances-v%d", l.Sets, l.Instances, seedVersion))
}

// ensureSeeded makes dir a data directory holding l's catalog, reusing a
// complete one from an earlier run unless reseed is set. Runs work on a copy
// (copyCatalog), so dir keeps the catalog as it was seeded, at the schema of
// the catalog package that seeded it.
func ensureSeeded(ctx context.Context, dir string, l layout, reseed bool, logf func(string, ...any)) (cached bool, err error) {
	if !reseed {
		buf, err := os.ReadFile(filepath.Join(dir, seedMarker))
		if err == nil {
			var info seedInfo
			if json.Unmarshal(buf, &info) == nil && info.Version == seedVersion && info.Sets == l.Sets && info.Instances == l.Instances {
				// Earlier versions of this tool served the cache itself, and a
				// service with automated expiry may have deleted sets.
				n, err := countSets(ctx, dir)
				if err == nil && n == l.Sets {
					logf("reusing seeded data dir %s (seeded %s in %s)", dir, info.Finished.Format(time.RFC3339), info.Took)
					return true, nil
				}
				logf("cached data dir %s holds %d sets, not %d (%v): seeding again", dir, n, l.Sets, err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	key, err := aesgcm.ParseKey(benchMasterKey)
	if err != nil {
		return false, err
	}
	box, err := aesgcm.New(key)
	if err != nil {
		return false, err
	}
	db := sqlite.NewDB(filepath.Join(dir, "catalog.db"), box)
	if err := db.Open(); err != nil {
		return false, fmt.Errorf("open catalog: %w", err)
	}
	defer db.Close()

	logf("seeding %d sets over %d instances into %s (batches of %d, one transaction each)", l.Sets, l.Instances, dir, seedBatch)
	began := time.Now()
	batch := make([]*rdsbackup.BackupSet, 0, seedBatch)
	lastReport := began
	for k := 0; k < l.Sets; k++ {
		batch = append(batch, l.genSet(k))
		if len(batch) == seedBatch || k == l.Sets-1 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			if err := db.ImportBackupSets(ctx, batch); err != nil {
				return false, fmt.Errorf("import sets %d..%d: %w", k+2-len(batch), k+1, err)
			}
			clear(batch)
			batch = batch[:0]
			if time.Since(lastReport) > 10*time.Second || k == l.Sets-1 {
				lastReport = time.Now()
				el := time.Since(began)
				logf("  %d/%d sets (%.0f sets/s, %s)", k+1, l.Sets, float64(k+1)/el.Seconds(), el.Round(time.Second))
			}
		}
	}
	if err := db.Close(); err != nil {
		return false, err
	}
	took := time.Since(began)
	logf("seeding took %s", took.Round(100*time.Millisecond))
	buf, _ := json.Marshal(seedInfo{Version: seedVersion, Sets: l.Sets, Instances: l.Instances, Took: took.Round(100 * time.Millisecond).String(), Finished: time.Now().UTC()})
	return false, os.WriteFile(filepath.Join(dir, seedMarker), buf, 0o600)
}

// countSets counts the live sets (deleting = 0 where that column exists)
// of the catalog in dir, read-only and without migrating it, so that the
// cache stays as it was seeded.
func countSets(ctx context.Context, dir string) (int, error) {
	db, err := openReadOnly(dir)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_sets WHERE deleting = 0`).Scan(&n)
	if err != nil && strings.Contains(err.Error(), "no such column") { // a catalog older than 0003
		err = db.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_sets`).Scan(&n)
	}
	return n, err
}

// migrations lists the catalog migrations applied to the catalog in dir.
func migrations(ctx context.Context, dir string) ([]string, error) {
	db, err := openReadOnly(dir)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		names = append(names, strings.TrimPrefix(name, "migrations/"))
	}
	return names, rows.Err()
}

// freeBytes is the size of the free pages of the catalog in dir.
func freeBytes(ctx context.Context, dir string) (int64, error) {
	db, err := openReadOnly(dir)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var pages, size int64
	if err := db.QueryRowContext(ctx, `PRAGMA freelist_count`).Scan(&pages); err != nil {
		return 0, err
	}
	if err := db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size); err != nil {
		return 0, err
	}
	return pages * size, nil
}

func openReadOnly(dir string) (*sql.DB, error) {
	path := filepath.Join(dir, "catalog.db")
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
}

// copyCatalog copies the catalog of the data directory src (catalog.db and
// its write-ahead log, if any) into a new data directory dst. The service
// then runs on the copy: it migrates the catalog to its own schema on its
// first start and stores policies and instances, which must not change the
// cache (an A/B run with -repo may build an older service).
func copyCatalog(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"catalog.db", "catalog.db-wal"} {
		if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); errors.Is(err, fs.ErrNotExist) && name != "catalog.db" {
			continue
		} else if err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeConfig writes the service's config: the seeded data dir, a fixed
// account id and the instances (their DSNs parse but point nowhere; the
// service does not connect at start).
func writeConfig(path, dataDir, listen string, l layout, extra string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\ndataDir: %s\nregion: %s\naccountId: \"1234567890123456\"\ninstances:\n", listen, dataDir, benchRegion)
	for i := 0; i < l.Instances; i++ {
		fmt.Fprintf(&b, "  - id: %s\n    engine: MySQL\n    dsn: \"backup:pw@tcp(127.0.0.1:1)/\"\n", instanceID(i))
	}
	b.WriteString(extra)
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

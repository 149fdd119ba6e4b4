package sqlite

import (
	"bytes"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
)

// TestMigration0006ClustersSets builds a catalog at schema 0005 with the
// sets of three instances interleaved in id order and the newest set
// deleted, then opens it: every set must survive with its id and fields,
// each instance's rows must be adjacent and in time order, and a new set
// must get an id above every id ever used.
func TestMigration0006ClustersSets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatalf("%v: %s", err, q)
		}
	}
	exec(`CREATE TABLE migrations (name TEXT PRIMARY KEY)`)
	for _, name := range names {
		if name >= "migrations/0006" {
			break
		}
		buf, err := fs.ReadFile(migrationFS, name)
		if err != nil {
			t.Fatal(err)
		}
		exec(string(buf))
		exec(`INSERT INTO migrations (name) VALUES (?)`, name)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	instances := []string{"rm-y", "rm-x", "pgm-z"}
	for i := range 15 {
		inst := instances[i%3]
		exec(`INSERT INTO backup_sets (instance_id, status, start_time, end_time, type, mode, method, initiator,
			store_status, engine, object_key, available, artifacts)
			VALUES (?, 'Success', ?, ?, 'FullBackup', 'Automated', 'Logical', 'System', 'Enabled', 'MySQL', ?, 1, ?)`,
			inst, base.Add(time.Duration(i)*time.Hour).Unix(), base.Add(time.Duration(i)*time.Hour+time.Minute).Unix(),
			"backups/"+inst, `[{"db":"d`+inst+`","kind":"database","off":0,"len":5,"crc":"7"}]`)
	}
	exec(`DELETE FROM backup_sets WHERE id = 15`) // sqlite_sequence stays at 15
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	box, err := aesgcm.New(bytes.Repeat([]byte{1}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db := NewDB(path, box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()

	for n, inst := range instances {
		sets, total, err := db.FindBackupSets(ctx, rdsbackup.BackupFilter{InstanceID: inst})
		if err != nil {
			t.Fatal(err)
		}
		var want []int64
		for id := int64(14); id >= 1; id-- { // newest first; id i+1 is set i
			if int(id-1)%3 == n {
				want = append(want, id)
			}
		}
		var got []int64
		for _, s := range sets {
			got = append(got, s.ID)
			if len(s.Artifacts) != 1 || s.Artifacts[0].Database != "d"+inst || s.ObjectKey != "backups/"+inst ||
				!s.StartTime.Equal(base.Add(time.Duration(s.ID-1)*time.Hour)) {
				t.Errorf("set %d after migration: %+v", s.ID, s)
			}
		}
		if total != len(want) || !slices.Equal(got, want) {
			t.Errorf("%s: sets %v (total %d), want %v", inst, got, total, want)
		}
	}

	// Each instance's rows: one key, consecutive sequence numbers in time
	// order; different instances, different keys.
	keys := map[int64]string{}
	for _, inst := range instances {
		rows, err := db.write.Query(`SELECT rid >> 32, rid & 4294967295 FROM backup_sets WHERE instance_id = ? ORDER BY start_time`, inst)
		if err != nil {
			t.Fatal(err)
		}
		var key, prev int64 = -1, 0
		for rows.Next() {
			var k, seq int64
			if err := rows.Scan(&k, &seq); err != nil {
				t.Fatal(err)
			}
			if key == -1 {
				key = k
			}
			if k != key || seq != prev+1 {
				t.Errorf("%s: row (%d, %d) after (%d, %d)", inst, k, seq, key, prev)
			}
			prev = seq
		}
		rows.Close()
		if other, dup := keys[key]; dup || key < 1 {
			t.Errorf("%s has key %d (also %q)", inst, key, other)
		}
		keys[key] = inst
	}

	// New sets: ids above the deleted 15, rows at the end of their
	// instance's range, or in a new range for a new instance.
	for _, inst := range []string{"rm-x", "rm-new"} {
		s := &rdsbackup.BackupSet{InstanceID: inst, Status: rdsbackup.BackupFailed, StartTime: base.Add(100 * time.Hour),
			Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical,
			Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMySQL}
		if err := db.CreateBackupSet(ctx, s); err != nil {
			t.Fatal(err)
		}
		var key, seq int64
		if err := db.write.QueryRow(`SELECT rid >> 32, rid & 4294967295 FROM backup_sets WHERE id = ?`, s.ID).Scan(&key, &seq); err != nil {
			t.Fatal(err)
		}
		switch inst {
		case "rm-x":
			if s.ID != 16 || keys[key] != "rm-x" || seq != 6 {
				t.Errorf("new set of rm-x: id %d, row (%d, %d)", s.ID, key, seq)
			}
		case "rm-new":
			if s.ID != 17 || keys[key] != "" || key != 4 || seq != 1 {
				t.Errorf("set of a new instance: id %d, row (%d, %d)", s.ID, key, seq)
			}
		}
	}
}

// A transaction that grows the write-ahead log past walTruncateAbove leaves
// it empty behind it.
func TestBigTransactionTruncatesTheLog(t *testing.T) {
	defer func(v int64) { walTruncateAbove = v }(walTruncateAbove)
	walTruncateAbove = 256 << 10
	box, err := aesgcm.New(bytes.Repeat([]byte{2}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalog.db")
	db := NewDB(path, box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sets []*rdsbackup.BackupSet
	for i := range 3000 { // about 2 MB of rows and indexes
		start := time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC)
		sets = append(sets, &rdsbackup.BackupSet{InstanceID: "rm-" + string(rune('a'+i%20)), Status: rdsbackup.BackupFailed,
			StartTime: start, EndTime: start.Add(time.Minute), Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual,
			Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled,
			Engine: rdsbackup.EngineMySQL, FailureReason: strings.Repeat("x", 300)})
	}
	if err := db.ImportBackupSets(t.Context(), sets); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > walTruncateAbove {
		t.Fatalf("write-ahead log of %d bytes after a big transaction, want at most %d", fi.Size(), walTruncateAbove)
	}
}

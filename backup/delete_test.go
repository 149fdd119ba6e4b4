package backup_test

// Tests of the Deleter on a real SQLite catalog and a local store, with
// storage faults injected by storagetest.Faulty. After every scenario the
// store is listed against the catalog: every object under
// backups/<inst>/<id>/ belongs to a row, every Success row's object exists.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

// delNow is the clock of the sweep tests.
var delNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type delFixture struct {
	db      *sqlite.DB
	fs      *localfs.FS
	faulty  *storagetest.Faulty
	cat     *orderCatalog
	store   *orderStore
	deleter *backup.Deleter
	nextID  int64
}

// orderCatalog records, for each row it deletes, whether the set's objects
// were still in storage at that moment (they must not be).
type orderCatalog struct {
	*sqlite.DB
	fs *localfs.FS

	mu            sync.Mutex
	rowsWithFiles []int64
	deletedRows   []int64
	skipCheck     bool // for bulk tests: the check reads every deleting row
}

func (c *orderCatalog) DeleteBackupSet(ctx context.Context, id int64) error {
	if c.skipCheck {
		return c.DB.DeleteBackupSet(ctx, id)
	}
	sets, err := c.DB.FindDeletingBackupSets(ctx)
	if err != nil {
		return err
	}
	for _, s := range sets {
		if s.ID != id {
			continue
		}
		objs, err := rdsbackup.CollectObjects(c.fs.List(ctx, fmt.Sprintf("backups/%s/%d/", s.InstanceID, s.ID)))
		if err != nil {
			return err
		}
		c.mu.Lock()
		if len(objs) > 0 {
			c.rowsWithFiles = append(c.rowsWithFiles, id)
		}
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.deletedRows = append(c.deletedRows, id)
	c.mu.Unlock()
	return c.DB.DeleteBackupSet(ctx, id)
}

// orderStore records the keys deleted and whether their set was still
// visible to readers when its first object went (it must not be).
type orderStore struct {
	rdsbackup.ObjectStore
	db *sqlite.DB

	mu      sync.Mutex
	deleted []string
	visible []string
}

func (s *orderStore) Delete(ctx context.Context, key string) error {
	parts := strings.Split(key, "/")
	if len(parts) == 4 {
		if id, err := strconv.ParseInt(parts[2], 10, 64); err == nil {
			if _, err := s.db.FindBackupSet(ctx, id); err == nil {
				s.mu.Lock()
				s.visible = append(s.visible, key)
				s.mu.Unlock()
			}
		}
	}
	err := s.ObjectStore.Delete(ctx, key)
	if err == nil {
		s.mu.Lock()
		s.deleted = append(s.deleted, key)
		s.mu.Unlock()
	}
	return err
}

func newDelFixture(t *testing.T) *delFixture {
	t.Helper()
	dir := t.TempDir()
	box, _ := aesgcm.New(bytes.Repeat([]byte{7}, aesgcm.KeySize))
	db := sqlite.NewDB(filepath.Join(dir, "catalog.db"), box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fs := localfs.New(filepath.Join(dir, "store"))
	faulty := storagetest.NewFaulty(fs)
	f := &delFixture{db: db, fs: fs, faulty: faulty, nextID: 100}
	f.cat = &orderCatalog{DB: db, fs: fs}
	f.store = &orderStore{ObjectStore: faulty, db: db}
	f.deleter = f.newDeleter()
	return f
}

// newDeleter returns a Deleter as a new process would make it.
func (f *delFixture) newDeleter() *backup.Deleter {
	return &backup.Deleter{Catalog: f.cat, Store: f.store, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return delNow }}
}

// addSet stores a set as the runner would: its object and manifest, then
// its row. Failed sets have no objects.
func (f *delFixture) addSet(t *testing.T, inst string, status rdsbackup.BackupStatus, mode rdsbackup.BackupMode, start, expire time.Time) *rdsbackup.BackupSet {
	t.Helper()
	f.nextID++
	id := f.nextID
	set := &rdsbackup.BackupSet{
		ID: id, InstanceID: inst, Status: status, StartTime: start, EndTime: start.Add(time.Minute),
		Type: rdsbackup.FullBackup, Mode: mode, Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser,
		StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMariaDB, Location: backup.Location,
		Scale: "DBInstance", ExpectExpireTime: expire,
	}
	if mode == rdsbackup.BackupAutomated {
		set.Initiator, set.StoreStatus = rdsbackup.InitiatorSystem, rdsbackup.StoreDisabled
	}
	if status == rdsbackup.BackupFailed {
		set.MetaStatus, set.FailureReason = "EMPTY", "test failure"
	} else {
		data := bytes.Repeat([]byte(fmt.Sprintf("set %d;", id)), 100)
		set.ObjectKey, set.Size, set.Checksum, set.Available, set.MetaStatus = backup.ObjectKey(inst, id), int64(len(data)), crc(data), true, "OK"
		set.DBNames = []string{"shop"}
		set.Artifacts = []rdsbackup.Artifact{{Database: "shop", Kind: rdsbackup.PartDatabase, Offset: 0, Length: int64(len(data)), Checksum: crc(data)}}
		m := backup.SetObjectManifest{Manifest: backup.Manifest{
			Version: backup.ManifestVersion, ID: id, InstanceID: inst, Engine: string(set.Engine), Method: string(set.Method),
			Type: string(set.Type), Mode: string(set.Mode), Initiator: string(set.Initiator), StoreStatus: string(set.StoreStatus),
			Scale: set.Scale, StartTime: set.StartTime.Unix(), EndTime: set.EndTime.Unix(), ExpectExpireTime: unixOrZero(expire),
			Databases: set.DBNames, ObjectKey: set.ObjectKey, Compression: "zstd",
			Parts: []backup.ManifestPart{{Name: "shop", Kind: "database", Length: int64(len(data)), Checksum: crc(data)}},
		}, Size: set.Size, Checksum: set.Checksum}
		buf, _ := json.Marshal(&m)
		putObject(t, f.fs, set.ObjectKey, data)
		putObject(t, f.fs, backup.ManifestKey(inst, id), buf)
	}
	if err := f.db.CreateBackupSet(t.Context(), set); err != nil {
		t.Fatal(err)
	}
	return set
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func putObject(t *testing.T, store rdsbackup.ObjectStore, key string, data []byte) {
	t.Helper()
	w, err := store.Create(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// checkStorageMatchesCatalog lists the store against the catalog. Rows
// being deleted count as rows only when allowDeleting is set (a deletion
// that failed and waits for Resume).
func (f *delFixture) checkStorageMatchesCatalog(t *testing.T, allowDeleting bool) {
	t.Helper()
	ctx := t.Context()
	rows := map[int64]*rdsbackup.BackupSet{}
	visible, _, err := f.db.FindBackupSets(ctx, rdsbackup.BackupFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range visible {
		rows[s.ID] = s
	}
	deleting, err := f.db.FindDeletingBackupSets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleting) > 0 && !allowDeleting {
		t.Errorf("sets still being deleted: %v", delIDs(deleting))
	}
	for _, s := range deleting {
		rows[s.ID] = s
	}
	objs, err := rdsbackup.CollectObjects(f.fs.List(ctx, ""))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Key] = true
		p := strings.Split(o.Key, "/")
		if len(p) != 4 || p[0] != "backups" {
			t.Errorf("object %s is not under backups/<inst>/<id>/", o.Key)
			continue
		}
		id, err := strconv.ParseInt(p[2], 10, 64)
		if s := rows[id]; err != nil || s == nil || s.InstanceID != p[1] {
			t.Errorf("orphan object %s: no catalog row knows it", o.Key)
		}
	}
	for _, s := range visible {
		if s.Status == rdsbackup.BackupSuccess && !have[s.ObjectKey] {
			t.Errorf("set %d is %s but its object %s is missing", s.ID, s.Status, s.ObjectKey)
		}
	}
}

func delIDs(sets []*rdsbackup.BackupSet) []int64 {
	var ids []int64
	for _, s := range sets {
		ids = append(ids, s.ID)
	}
	return ids
}

func (f *delFixture) gone(t *testing.T, sets ...*rdsbackup.BackupSet) {
	t.Helper()
	for _, s := range sets {
		if _, err := f.db.FindBackupSet(t.Context(), s.ID); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			t.Errorf("set %d: FindBackupSet %v, want ENOTFOUND", s.ID, err)
		}
		if objs, _ := rdsbackup.CollectObjects(f.fs.List(t.Context(), fmt.Sprintf("backups/%s/%d/", s.InstanceID, s.ID))); len(objs) != 0 {
			t.Errorf("set %d: objects left: %v", s.ID, objs)
		}
	}
	deleting, err := f.db.FindDeletingBackupSets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deleting {
		for _, s := range sets {
			if d.ID == s.ID {
				t.Errorf("set %d: its row is still there (deleting)", s.ID)
			}
		}
	}
}

func (f *delFixture) present(t *testing.T, sets ...*rdsbackup.BackupSet) {
	t.Helper()
	for _, s := range sets {
		got, err := f.db.FindBackupSet(t.Context(), s.ID)
		if err != nil {
			t.Errorf("set %d should still be there: %v", s.ID, err)
			continue
		}
		if got.Status == rdsbackup.BackupSuccess {
			for _, key := range []string{got.ObjectKey, backup.ManifestKey(s.InstanceID, s.ID)} {
				if _, err := f.fs.Stat(t.Context(), key); err != nil {
					t.Errorf("set %d: %s: %v", s.ID, key, err)
				}
			}
		}
	}
}

func TestDeleterRemovesObjectsThenRows(t *testing.T) {
	f := newDelFixture(t)
	t0 := delNow.Add(-time.Hour)
	a := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	b := f.addSet(t, "rm-a", rdsbackup.BackupFailed, rdsbackup.BackupManual, t0.Add(time.Minute), time.Time{})
	c := f.addSet(t, "rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	keep := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(2*time.Minute), time.Time{})

	if err := f.deleter.Delete(t.Context(), []*rdsbackup.BackupSet{a, b, c}); err != nil {
		t.Fatal(err)
	}
	f.gone(t, a, b, c)
	f.present(t, keep)
	f.checkStorageMatchesCatalog(t, false)

	if len(f.store.visible) != 0 {
		t.Errorf("objects deleted while their set was still visible to readers: %v", f.store.visible)
	}
	if len(f.cat.rowsWithFiles) != 0 {
		t.Errorf("rows deleted while their objects were still stored: %v", f.cat.rowsWithFiles)
	}
	if !slices.Contains(f.cat.deletedRows, b.ID) {
		t.Errorf("the row of the failed set %d (no objects) was not deleted: %v", b.ID, f.cat.deletedRows)
	}
	// Data before manifest, per set.
	for _, s := range []*rdsbackup.BackupSet{a, c} {
		data := slices.Index(f.store.deleted, s.ObjectKey)
		man := slices.Index(f.store.deleted, backup.ManifestKey(s.InstanceID, s.ID))
		if data < 0 || man < 0 || data > man {
			t.Errorf("set %d: deletion order %v: want %s before its manifest", s.ID, f.store.deleted, s.ObjectKey)
		}
	}
}

func TestDeleterObjectDeleteFailsThenResume(t *testing.T) {
	f := newDelFixture(t)
	t0 := delNow.Add(-time.Hour)
	a := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	b := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Minute), time.Time{})
	// Every object delete of set a fails, as a read-only or unreachable
	// store would.
	f.faulty.Inject(storagetest.Fault{Op: storagetest.OpDelete, Prefix: fmt.Sprintf("backups/rm-a/%d/", a.ID)})

	// The sets are gone for every reader once marked, so Delete succeeds;
	// what is left is finished by Resume.
	if err := f.deleter.Delete(t.Context(), []*rdsbackup.BackupSet{a, b}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// b is gone; a is hidden from readers but its row is kept, with its
	// objects, for Resume.
	f.gone(t, b)
	if _, err := f.db.FindBackupSet(t.Context(), a.ID); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("set a after a failed delete: %v, want hidden (ENOTFOUND)", err)
	}
	deleting, err := f.db.FindDeletingBackupSets(t.Context())
	if err != nil || !slices.Equal(delIDs(deleting), []int64{a.ID}) {
		t.Fatalf("sets being deleted: %v %v, want [%d]", delIDs(deleting), err, a.ID)
	}
	if _, err := f.fs.Stat(t.Context(), a.ObjectKey); err != nil {
		t.Errorf("set a's object after the failed delete: %v", err)
	}
	f.checkStorageMatchesCatalog(t, true)

	// A Resume while storage still fails keeps the row.
	if err := f.newDeleter().Resume(t.Context()); err == nil {
		t.Error("Resume reported success while deletes still fail")
	}
	if d, _ := f.db.FindDeletingBackupSets(t.Context()); len(d) != 1 {
		t.Errorf("after a failing Resume, sets being deleted: %v", delIDs(d))
	}
	f.checkStorageMatchesCatalog(t, true)

	f.faulty.Clear()
	if err := f.newDeleter().Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.gone(t, a, b)
	f.checkStorageMatchesCatalog(t, false)
}

// When the data object cannot be deleted, its manifest must stay: the
// manifest is what rebuild-catalog finds a set by, and the Deleter promises
// data first, manifest last, so that no stored data is ever left without
// the manifest describing it.
func TestDeleterKeepsManifestWhenDataDeleteFails(t *testing.T) {
	f := newDelFixture(t)
	a := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, delNow.Add(-time.Hour), time.Time{})
	f.faulty.Inject(storagetest.Fault{Op: storagetest.OpDelete, Prefix: a.ObjectKey, Times: 1})

	if err := f.deleter.Delete(t.Context(), []*rdsbackup.BackupSet{a}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := f.fs.Stat(t.Context(), a.ObjectKey); err != nil {
		t.Fatalf("the object whose delete failed: %v", err)
	}
	if _, err := f.fs.Stat(t.Context(), backup.ManifestKey("rm-a", a.ID)); err != nil {
		t.Errorf("the data object %s is still stored but its manifest was deleted (%v): "+
			"removeSetObjects deletes the manifest even when deleting the data failed", a.ObjectKey, err)
	}
	if err := f.newDeleter().Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.gone(t, a)
	f.checkStorageMatchesCatalog(t, false)
}

// A process killed at any point of a deletion leaves a row marked
// deleting; the next process's Resume finishes the job.
func TestDeleterResumesInterruptedDeletions(t *testing.T) {
	f := newDelFixture(t)
	ctx := t.Context()
	t0 := delNow.Add(-time.Hour)
	// Killed right after marking.
	marked := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	// Killed after the data object went, before the manifest.
	halfway := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(time.Minute), time.Time{})
	// Killed after both objects went, before the row.
	objectsGone := f.addSet(t, "rm-b", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0, time.Time{})
	// A failed set has no objects.
	failed := f.addSet(t, "rm-b", rdsbackup.BackupFailed, rdsbackup.BackupAutomated, t0.Add(time.Minute), time.Time{})
	keep := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupManual, t0.Add(2*time.Minute), time.Time{})

	if err := f.db.MarkBackupSetsDeleting(ctx, []int64{marked.ID, halfway.ID, objectsGone.ID, failed.ID}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{halfway.ObjectKey, objectsGone.ObjectKey, backup.ManifestKey("rm-b", objectsGone.ID)} {
		if err := f.fs.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	f.checkStorageMatchesCatalog(t, true)

	if err := f.newDeleter().Resume(ctx); err != nil {
		t.Fatal(err)
	}
	f.gone(t, marked, halfway, objectsGone, failed)
	f.present(t, keep)
	f.checkStorageMatchesCatalog(t, false)
	// Nothing left to resume.
	if err := f.newDeleter().Resume(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSweepDeletesExpiredSets(t *testing.T) {
	f := newDelFixture(t)
	day := 24 * time.Hour
	past := func(d int) time.Time { return delNow.Add(-time.Duration(d) * day) }
	auto, manual := rdsbackup.BackupAutomated, rdsbackup.BackupManual
	ok, failed := rdsbackup.BackupSuccess, rdsbackup.BackupFailed

	// rm-a: expired Success sets, the newest of which is kept; an expired
	// Failed set newer than all of them; an unexpired set; a manual set
	// without expiry.
	a1 := f.addSet(t, "rm-a", ok, auto, past(30), past(20))
	a2 := f.addSet(t, "rm-a", ok, auto, past(29), past(19))
	aNewest := f.addSet(t, "rm-a", ok, auto, past(28), past(18))
	aFailed := f.addSet(t, "rm-a", failed, auto, past(27), past(17))
	aFresh := f.addSet(t, "rm-a", failed, auto, past(1), delNow.Add(6*day))
	aManual := f.addSet(t, "rm-a", ok, manual, past(400), time.Time{})
	// rm-b: its only Success set has long expired: kept.
	bOnly := f.addSet(t, "rm-b", ok, auto, past(100), past(93))
	bFailed := f.addSet(t, "rm-b", failed, auto, past(99), past(92))
	// rm-c: the expired set goes, the newer unexpired Success stays.
	c1 := f.addSet(t, "rm-c", ok, auto, past(9), past(2))
	c2 := f.addSet(t, "rm-c", ok, auto, past(1), delNow.Add(6*day))

	n, err := f.deleter.Sweep(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("Sweep deleted %d sets, want 5", n)
	}
	f.gone(t, a1, a2, aFailed, bFailed, c1)
	f.present(t, aNewest, aFresh, aManual, bOnly, c2)
	f.checkStorageMatchesCatalog(t, false)

	// A second sweep finds nothing.
	if n, err := f.deleter.Sweep(t.Context()); err != nil || n != 0 {
		t.Errorf("second sweep: %d %v", n, err)
	}
	// Once a newer Success set exists, the kept one expires too.
	bNew := f.addSet(t, "rm-b", ok, auto, past(0), delNow.Add(7*day))
	if n, err := f.deleter.Sweep(t.Context()); err != nil || n != 1 {
		t.Errorf("sweep after a newer backup of rm-b: %d %v, want 1", n, err)
	}
	f.gone(t, bOnly)
	f.present(t, bNew)
	f.checkStorageMatchesCatalog(t, false)
}

func TestSweepManyBatches(t *testing.T) {
	f := newDelFixture(t)
	f.cat.skipCheck = true
	// More expired sets than one sweep batch (500: the sweep loops), most without objects
	// (Failed), a few with, and the instance's newest Success set.
	var sets []*rdsbackup.BackupSet
	for i := range 520 {
		start := delNow.Add(-30*24*time.Hour + time.Duration(i)*time.Second)
		sets = append(sets, &rdsbackup.BackupSet{
			ID: int64(10000 + i), InstanceID: "rm-a", Status: rdsbackup.BackupFailed, StartTime: start, EndTime: start.Add(time.Second),
			Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupAutomated, Method: rdsbackup.MethodLogical,
			Initiator: rdsbackup.InitiatorSystem, StoreStatus: rdsbackup.StoreDisabled, MetaStatus: "EMPTY",
			FailureReason: "x", ExpectExpireTime: start.Add(7 * 24 * time.Hour),
		})
	}
	if err := f.db.ImportBackupSets(t.Context(), sets); err != nil {
		t.Fatal(err)
	}
	var withObjects []*rdsbackup.BackupSet
	for i := range 5 {
		withObjects = append(withObjects, f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated,
			delNow.Add(-20*24*time.Hour+time.Duration(i)*time.Hour), delNow.Add(-13*24*time.Hour)))
	}
	newest := withObjects[4]

	n, err := f.deleter.Sweep(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 524 {
		t.Errorf("Sweep deleted %d sets, want 524", n)
	}
	f.gone(t, withObjects[:4]...)
	f.present(t, newest)
	left, total, err := f.db.FindBackupSets(t.Context(), rdsbackup.BackupFilter{InstanceID: "rm-a"})
	if err != nil || total != 1 || left[0].ID != newest.ID {
		t.Errorf("left after the sweep: %v (total %d) %v", delIDs(left), total, err)
	}
	f.checkStorageMatchesCatalog(t, false)
}

// A sweep whose object deletes fail leaves the sets hidden, never a row
// without data; a later Resume finishes them.
func TestSweepStorageFailure(t *testing.T) {
	f := newDelFixture(t)
	day := 24 * time.Hour
	old1 := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, delNow.Add(-30*day), delNow.Add(-23*day))
	old2 := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, delNow.Add(-29*day), delNow.Add(-22*day))
	newest := f.addSet(t, "rm-a", rdsbackup.BackupSuccess, rdsbackup.BackupAutomated, delNow.Add(-day), delNow.Add(6*day))
	f.faulty.Inject(storagetest.Fault{Op: storagetest.OpDelete, Prefix: path.Dir(old1.ObjectKey) + "/"})

	if _, err := f.deleter.Sweep(t.Context()); err != nil {
		t.Errorf("Sweep: %v", err)
	}
	f.gone(t, old2)
	f.present(t, newest)
	f.checkStorageMatchesCatalog(t, true)

	f.faulty.Clear()
	if err := f.newDeleter().Resume(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.gone(t, old1)
	f.checkStorageMatchesCatalog(t, false)
}

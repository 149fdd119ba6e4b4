package logs_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/logs"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

// fakeStreamer writes the files it is told to into the spool and reports
// them complete; it records the resume points it was started from. It is
// a fake of the engines' streamers (tested against real servers in
// engine/mysql): here the supervisor is the point.
type fakeStreamer struct {
	mu      sync.Mutex
	resumes []int64 // Seq of spec.Resume per run (0: none)
	files   chan fakeFile
}

type fakeFile struct {
	seq     int64
	body    []byte
	partial bool
	end     time.Time
}

func (f *fakeStreamer) CheckLogSource(ctx context.Context, inst *rdsbackup.Instance) error {
	return nil
}
func (f *fakeStreamer) DropLogSource(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec) error {
	return nil
}

func (f *fakeStreamer) StreamLogs(ctx context.Context, inst *rdsbackup.Instance, spec rdsbackup.StreamSpec, sink rdsbackup.LogSink) error {
	f.mu.Lock()
	var r int64
	if spec.Resume != nil {
		r = spec.Resume.Seq
	}
	f.resumes = append(f.resumes, r)
	f.mu.Unlock()
	if spec.ServerID < 1<<31 {
		return fmt.Errorf("server id %d", spec.ServerID)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ff := <-f.files:
			name := fmt.Sprintf("bin.%06d", ff.seq)
			path := filepath.Join(spec.SpoolDir, name)
			if err := os.WriteFile(path, ff.body, 0o600); err != nil {
				return err
			}
			sl := rdsbackup.SpooledLog{Path: path, Name: name, Seq: ff.seq, BeginTime: ff.end.Add(-time.Minute), EndTime: ff.end,
				Start: rdsbackup.LogPosition{File: name, Offset: 4}, End: rdsbackup.LogPosition{File: name, Offset: int64(len(ff.body))},
				RawSize: int64(len(ff.body)), HostID: "7"}
			if ff.partial {
				if err := sink.PartialLog(ctx, sl); err != nil {
					return err
				}
				continue
			}
			if err := sink.CompleteLog(ctx, sl); err != nil {
				return err
			}
		}
	}
}

func openCatalog(t *testing.T, dir string, now func() time.Time) *sqlite.DB {
	box, err := aesgcm.New(bytes.Repeat([]byte{7}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db := sqlite.NewDB(filepath.Join(dir, "catalog.db"), box)
	db.Now = now
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func storedFiles(t *testing.T, db *sqlite.DB, inst string) []*rdsbackup.LogFile {
	t.Helper()
	files, _, err := db.FindLogFiles(context.Background(), rdsbackup.LogFileFilter{InstanceID: inst})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestSupervisor: complete files are stored compressed with their CRC64
// and recorded; a storage failure keeps them queued until storage works;
// a missing file is recorded as a gap; the file being written is stored as
// a partial object and replaced; a restart resumes after the newest file
// stored or queued; turning log backup off stops the stream.
func TestSupervisor(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openCatalog(t, dir, time.Now)
	inst := &rdsbackup.Instance{ID: "rm-sup", Engine: rdsbackup.EngineMariaDB, DSN: "u:p@tcp(127.0.0.1:1)/"}
	if err := db.SyncInstances(ctx, []*rdsbackup.Instance{inst}); err != nil {
		t.Fatal(err)
	}
	pol := rdsbackup.DefaultBackupPolicy(inst.ID)
	pol.EnableBackupLog = true
	if err := db.PutBackupPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	store := storagetest.NewFaulty(localfs.New(filepath.Join(dir, "storage")))
	fs := &fakeStreamer{files: make(chan fakeFile)}
	sup := logs.NewSupervisor(db, store, map[rdsbackup.Engine]rdsbackup.LogStreamer{rdsbackup.EngineMariaDB: fs}, filepath.Join(dir, "logs"))
	sup.Interval, sup.RetryInitial, sup.RetryMax, sup.UploadInterval = 50*time.Millisecond, 10*time.Millisecond, 50*time.Millisecond, time.Millisecond
	done := make(chan struct{})
	go func() { defer close(done); sup.Run(ctx) }()

	now := time.Now().UTC().Truncate(time.Second)
	body := func(seq int64) []byte { return bytes.Repeat([]byte("event "+strconv.FormatInt(seq, 10)+" "), 200) }
	fs.files <- fakeFile{seq: 1, body: body(1), end: now}
	waitFor(t, "file 1 stored", func() bool { return len(storedFiles(t, db, inst.ID)) == 1 })
	f1 := storedFiles(t, db, inst.ID)[0]
	if f1.Status != rdsbackup.LogCompleted || f1.ObjectKey != logs.ObjectKey(inst.ID, "bin.000001") || f1.HostID != "7" || f1.RawSize != int64(len(body(1))) {
		t.Errorf("file 1: %+v", f1)
	}
	checkObject(t, store, f1, body(1))

	// Storage fails: file 2 stays queued (in ready/), then goes.
	store.Inject(storagetest.Fault{Op: storagetest.OpCommit, Prefix: "logs/"})
	fs.files <- fakeFile{seq: 2, body: body(2), end: now.Add(time.Minute)}
	waitFor(t, "a failed upload", func() bool { st, _ := sup.State(inst.ID); return st.Pending == 1 })
	if n := len(storedFiles(t, db, inst.ID)); n != 1 {
		t.Errorf("%d files stored while storage fails", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", inst.ID, "ready", "bin.000002")); err != nil {
		t.Errorf("file 2 is not queued: %v", err)
	}
	store.Clear()
	waitFor(t, "file 2 stored after storage came back", func() bool { return len(storedFiles(t, db, inst.ID)) == 2 })
	checkObject(t, store, storedFiles(t, db, inst.ID)[1], body(2))

	// The file being written: a partial object, replaced by the complete one.
	fs.files <- fakeFile{seq: 3, body: body(3)[:100], partial: true, end: now.Add(2 * time.Minute)}
	waitFor(t, "the partial file 3", func() bool { return len(storedFiles(t, db, inst.ID)) == 3 })
	if p := storedFiles(t, db, inst.ID)[2]; p.Status != rdsbackup.LogUploading || p.ObjectKey != logs.PartialKey(inst.ID, "bin.000003") {
		t.Errorf("partial: %+v", p)
	} else {
		checkObject(t, store, p, body(3)[:100])
	}
	fs.files <- fakeFile{seq: 3, body: body(3), end: now.Add(2 * time.Minute)}
	waitFor(t, "file 3 complete", func() bool {
		fs := storedFiles(t, db, inst.ID)
		return len(fs) == 3 && fs[2].Status == rdsbackup.LogCompleted
	})
	if _, err := store.Stat(ctx, logs.PartialKey(inst.ID, "bin.000003")); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("the partial object is left: %v", err)
	}

	// File 5 without 4: a gap after 3.
	fs.files <- fakeFile{seq: 5, body: body(5), end: now.Add(4 * time.Minute)}
	waitFor(t, "file 5", func() bool { return len(storedFiles(t, db, inst.ID)) == 4 })
	gaps, err := db.FindLogGaps(ctx, inst.ID)
	if err != nil || len(gaps) != 1 || gaps[0].AfterSeq != 3 || gaps[0].BeforeSeq != 5 {
		t.Errorf("gaps %+v, %v", gaps, err)
	}

	// Off: the stream stops; on again: it resumes after file 5.
	pol.EnableBackupLog = false
	if err := db.PutBackupPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	sup.Kick()
	waitFor(t, "the stream stopped", func() bool { _, ok := sup.State(inst.ID); return !ok })
	pol.EnableBackupLog = true
	if err := db.PutBackupPolicy(ctx, pol); err != nil {
		t.Fatal(err)
	}
	sup.Kick()
	waitFor(t, "the stream restarted", func() bool { fs.mu.Lock(); defer fs.mu.Unlock(); return len(fs.resumes) >= 2 })
	fs.mu.Lock()
	if fs.resumes[0] != 0 || fs.resumes[len(fs.resumes)-1] != 5 {
		t.Errorf("resumed from %v, want 0 then 5", fs.resumes)
	}
	fs.mu.Unlock()
	cancel()
	<-done
}

func checkObject(t *testing.T, store rdsbackup.ObjectStore, f *rdsbackup.LogFile, want []byte) {
	t.Helper()
	rc, err := store.Open(context.Background(), f.ObjectKey, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != f.Size || crc(raw) != f.Checksum {
		t.Errorf("%s: %d bytes CRC64 %s, recorded %d %s", f.Name, len(raw), crc(raw), f.Size, f.Checksum)
	}
	dec, _ := zstd.NewReader(bytes.NewReader(raw))
	defer dec.Close()
	got, err := io.ReadAll(dec)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s: decompressed %d bytes, %v; want %d", f.Name, len(got), err, len(want))
	}
}

func crc(b []byte) string {
	return strconv.FormatUint(crc64.Checksum(b, crc64.MakeTable(crc64.ECMA)), 10)
}

// TestRetention: with a controlled clock, logs older than the retention go,
// except those from the earliest position of a retained set on; a set's
// deletion lets them go.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db := openCatalog(t, dir, func() time.Time { return t0 })
	store := localfs.New(filepath.Join(dir, "storage"))
	sup := logs.NewSupervisor(db, store, nil, filepath.Join(dir, "logs"))
	const inst = "rm-ret"
	for seq := int64(1); seq <= 6; seq++ {
		name := fmt.Sprintf("bin.%06d", seq)
		key := logs.ObjectKey(inst, name)
		w, err := store.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		end := t0.Add(time.Duration(seq) * 24 * time.Hour)
		if err := db.PutLogFile(ctx, &rdsbackup.LogFile{InstanceID: inst, Name: name, Seq: seq, BeginTime: end.Add(-time.Hour), EndTime: end,
			Size: 1, Checksum: "1", ObjectKey: key, Status: rdsbackup.LogCompleted}); err != nil {
			t.Fatal(err)
		}
	}
	set := &rdsbackup.BackupSet{InstanceID: inst, Status: rdsbackup.BackupSuccess, Type: rdsbackup.FullBackup, StartTime: t0.Add(47 * time.Hour),
		EndTime: t0.Add(48 * time.Hour), Available: true, ObjectKey: "backups/x", Method: rdsbackup.MethodLogical, Mode: rdsbackup.BackupManual}
	if err := db.CreateBackupSet(ctx, set); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSetLogPositions(ctx, set.ID, map[string]rdsbackup.LogPosition{"shop": {File: "bin.000002", Offset: 99}}); err != nil {
		t.Fatal(err)
	}
	seqs := func() []int64 {
		var out []int64
		for _, f := range storedFiles(t, db, inst) {
			out = append(out, f.Seq)
		}
		return out
	}
	// Cutoff after day 5: files 1-4 are old, but the set starts in 2.
	if err := sup.ExpireInstance(ctx, inst, t0.Add(5*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seqs()); got != "[2 3 4 5 6]" {
		t.Errorf("after expiry with a set in file 2: %s", got)
	}
	if _, err := store.Stat(ctx, logs.ObjectKey(inst, "bin.000001")); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("the object of file 1 is left: %v", err)
	}
	if err := db.DeleteBackupSet(ctx, set.ID); err != nil {
		t.Fatal(err)
	}
	if err := sup.ExpireInstance(ctx, inst, t0.Add(5*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(seqs()); got != "[5 6]" {
		t.Errorf("after expiry without the set: %s", got)
	}
}

package backup_test

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

// fakeEngine streams fixed parts; it can fail mid-part or wait for a signal.
type fakeEngine struct {
	parts    map[string][]byte // database → dump bytes
	order    []string
	failAt   int64         // fail after this many bytes of the first part (0: never)
	release  chan struct{} // when set, Backup waits on it after the first part
	started  chan struct{}
	startOne sync.Once
	version  string // the server's version; "" means 10.11
	probeErr error  // when set, Probe fails with it
}

func (e *fakeEngine) serverInfo() rdsbackup.ServerInfo {
	if e.version == "" {
		return rdsbackup.ServerInfo{Version: "10.11", HostID: "7"}
	}
	return rdsbackup.ServerInfo{Version: e.version, HostID: "7"}
}

func (e *fakeEngine) Probe(ctx context.Context, inst *rdsbackup.Instance) (rdsbackup.ServerInfo, error) {
	if e.probeErr != nil {
		return rdsbackup.ServerInfo{}, e.probeErr
	}
	return e.serverInfo(), nil
}

func (e *fakeEngine) Databases(ctx context.Context, inst *rdsbackup.Instance) ([]string, error) {
	return e.order, nil
}

func (e *fakeEngine) EstimateSize(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest) (int64, error) {
	var n int64
	for _, p := range e.parts {
		n += int64(len(p))
	}
	return n, nil
}

var errToolDied = errors.New("mariadb-dump: Lost connection to server during query (exit status 2)")

func (e *fakeEngine) Backup(ctx context.Context, inst *rdsbackup.Instance, req rdsbackup.BackupRequest, sink rdsbackup.PartSink) (rdsbackup.BackupResult, error) {
	dbs := req.Databases
	if dbs == nil {
		dbs = e.order
	}
	for i, db := range dbs {
		data := e.parts[db]
		var r io.Reader = bytes.NewReader(data)
		if e.failAt > 0 && i == 0 {
			r = io.MultiReader(bytes.NewReader(data[:e.failAt]), errReader{})
		}
		if err := sink.WritePart(ctx, rdsbackup.Part{Name: db, Kind: rdsbackup.PartDatabase}, r); err != nil {
			return rdsbackup.BackupResult{}, err
		}
		if i == 0 && e.release != nil {
			e.startOne.Do(func() { close(e.started) })
			select {
			case <-e.release:
			case <-ctx.Done():
				return rdsbackup.BackupResult{}, ctx.Err()
			}
		}
	}
	return rdsbackup.BackupResult{Info: e.serverInfo(), ConsistentTime: 1700000000, Databases: dbs}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errToolDied }

type fixture struct {
	db     *sqlite.DB
	fs     *localfs.FS
	faulty *storagetest.Faulty
	runner *backup.Runner
	engine *fakeEngine
	root   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	box, _ := aesgcm.New(bytes.Repeat([]byte{1}, aesgcm.KeySize))
	db := sqlite.NewDB(filepath.Join(dir, "catalog.db"), box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	insts := []*rdsbackup.Instance{
		{ID: "rm-a1", Engine: rdsbackup.EngineMariaDB, DSN: "root:@tcp(127.0.0.1:1)/"},
		{ID: "mssql-1", Engine: rdsbackup.EngineSQLServer, DSN: "sqlserver://u:p@h:1"},
	}
	if err := db.SyncInstances(t.Context(), insts); err != nil {
		t.Fatal(err)
	}
	// Dumps big enough to span several compression blocks, partly random.
	shop := bytes.Repeat([]byte("INSERT INTO t VALUES (1,'x');\n"), 50000)
	crm := make([]byte, 300000)
	for i := range crm {
		crm[i] = byte(i*7 + i/13)
	}
	eng := &fakeEngine{parts: map[string][]byte{"shop": shop, "crm": crm}, order: []string{"shop", "crm"}}
	fs := localfs.New(filepath.Join(dir, "store"))
	faulty := storagetest.NewFaulty(fs)
	r := backup.NewRunner(db, faulty, map[rdsbackup.Engine]rdsbackup.BackupEngine{rdsbackup.EngineMariaDB: eng})
	r.ProgressInterval = 5 * time.Millisecond
	t.Cleanup(func() { r.Close() })
	return &fixture{db: db, fs: fs, faulty: faulty, runner: r, engine: eng, root: filepath.Join(dir, "store")}
}

func logical() rdsbackup.BackupOptions {
	return rdsbackup.BackupOptions{Method: rdsbackup.MethodLogical}
}

// waitJob polls the catalog until the job ends.
func waitJob(t *testing.T, db *sqlite.DB, id int64) *rdsbackup.Job {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		jobs, err := db.FindJobs(t.Context(), rdsbackup.JobFilter{ID: &id})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("find job %d: %v %v", id, jobs, err)
		}
		if jobs[0].Status.Done() {
			return jobs[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("job %d did not finish", id)
	return nil
}

func readObject(t *testing.T, store rdsbackup.ObjectStore, key string, off, n int64) []byte {
	t.Helper()
	rc, err := store.Open(t.Context(), key, off, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unzstd(t *testing.T, b []byte) []byte {
	t.Helper()
	d, _ := zstd.NewReader(nil)
	defer d.Close()
	out, err := d.DecodeAll(b, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

func crc(b []byte) string {
	return strconv.FormatUint(crc64.Checksum(b, crc64.MakeTable(crc64.ECMA)), 10)
}

// noObjects checks that storage holds nothing (temp files included).
func (f *fixture) noObjects(t *testing.T) {
	t.Helper()
	objs, err := rdsbackup.CollectObjects(f.fs.List(t.Context(), ""))
	if err != nil || len(objs) != 0 {
		t.Fatalf("storage not empty: %v %v", objs, err)
	}
	tmp, _ := os.ReadDir(filepath.Join(f.root, ".tmp"))
	if len(tmp) != 0 {
		t.Fatalf("temp files left: %v", tmp)
	}
}

func TestBackupSuccess(t *testing.T) {
	f := newFixture(t)
	job, err := f.runner.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, f.db, job.ID)
	if done.Status != rdsbackup.JobFinished || done.BackupSetID != job.ID || done.Progress != 100 {
		t.Fatalf("job: %+v", done)
	}
	set, err := f.db.FindBackupSet(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if set.Status != rdsbackup.BackupSuccess || !set.Available || set.Mode != rdsbackup.BackupManual ||
		set.Initiator != rdsbackup.InitiatorUser || set.StoreStatus != rdsbackup.StoreEnabled || set.MetaStatus != "OK" ||
		set.EngineVersion != "10.11" || set.HostInstanceID != "7" || set.ConsistentTime != 1700000000 ||
		len(set.Artifacts) != 2 || set.Location != backup.Location {
		t.Fatalf("set: %+v", set)
	}
	obj := readObject(t, f.fs, set.ObjectKey, 0, -1)
	if int64(len(obj)) != set.Size || crc(obj) != set.Checksum {
		t.Fatalf("object: %d bytes crc %s; catalog says %d bytes crc %s", len(obj), crc(obj), set.Size, set.Checksum)
	}
	// The whole object decodes to every dump in order (the manifest frame is skipped).
	want := append(append([]byte{}, f.engine.parts["shop"]...), f.engine.parts["crm"]...)
	if !bytes.Equal(unzstd(t, obj), want) {
		t.Fatal("whole object does not decode to the dumps in order")
	}
	// Each artifact's range is a zstd stream of its dump, with its own CRC.
	for _, a := range set.Artifacts {
		part := obj[a.Offset : a.Offset+a.Length]
		if crc(part) != a.Checksum {
			t.Errorf("%s: crc %s, catalog %s", a.Database, crc(part), a.Checksum)
		}
		if !bytes.Equal(unzstd(t, part), f.engine.parts[a.Database]) {
			t.Errorf("%s: range does not decode to its dump", a.Database)
		}
	}
	// The trailer describes the set.
	m, err := backup.ReadTrailer(bytes.NewReader(obj), int64(len(obj)))
	if err != nil || m.ID != set.ID || len(m.Parts) != 2 || m.Parts[1].Offset != set.Artifacts[1].Offset {
		t.Fatalf("trailer: %+v %v", m, err)
	}
}

func TestBackupOneDatabase(t *testing.T) {
	f := newFixture(t)
	opts := logical()
	opts.Strategy, opts.Databases = "db", []string{"crm"}
	job, err := f.runner.StartBackup(t.Context(), "rm-a1", opts)
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, f.db, job.ID)
	set, _ := f.db.FindBackupSet(t.Context(), job.ID)
	if len(set.Artifacts) != 1 || set.Artifacts[0].Database != "crm" || set.Scale != "Database" || len(set.DBNames) != 1 {
		t.Fatalf("set: %+v", set)
	}
}

// failed checks the outcome every failure must have.
func (f *fixture) failed(t *testing.T, jobID int64, reason string) {
	t.Helper()
	job := waitJob(t, f.db, jobID)
	if job.Status != rdsbackup.JobFailed || !bytes.Contains([]byte(job.Error), []byte(reason)) {
		t.Fatalf("job: %+v, want Failed with %q", job, reason)
	}
	set, err := f.db.FindBackupSet(t.Context(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	if set.Status != rdsbackup.BackupFailed || set.Available || set.ObjectKey != "" || set.Size != 0 ||
		!bytes.Contains([]byte(set.FailureReason), []byte(reason)) {
		t.Fatalf("set: %+v", set)
	}
	f.noObjects(t)
}

func TestBackupToolFailsMidStream(t *testing.T) {
	f := newFixture(t)
	f.engine.failAt = 100000
	job, err := f.runner.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	f.failed(t, job.ID, "Lost connection")
}

// The version a backup reads from the server is recorded on the instance,
// kept when a later backup cannot connect, and replaced when the server
// reports another one, even if that backup then fails.
func TestBackupRecordsEngineVersion(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	version := func() string {
		t.Helper()
		inst, err := f.db.FindInstance(ctx, "rm-a1")
		if err != nil {
			t.Fatal(err)
		}
		return inst.EngineVersion
	}
	backUp := func() *rdsbackup.BackupSet {
		t.Helper()
		job, err := f.runner.StartBackup(ctx, "rm-a1", logical())
		if err != nil {
			t.Fatal(err)
		}
		waitJob(t, f.db, job.ID)
		set, err := f.db.FindBackupSet(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	if v := version(); v != "" {
		t.Fatalf("EngineVersion before any contact: %q, want empty", v)
	}
	if set := backUp(); set.Status != rdsbackup.BackupSuccess || set.EngineVersion != "10.11" || version() != "10.11" {
		t.Fatalf("after a backup: set %s with EngineVersion %q, instance %q; want Success, 10.11, 10.11", set.Status, set.EngineVersion, version())
	}

	f.engine.probeErr = errors.New("dial tcp 127.0.0.1:1: connection refused")
	if set := backUp(); set.Status != rdsbackup.BackupFailed || set.EngineVersion != "10.11" || version() != "10.11" {
		t.Errorf("after a backup that could not connect: set %s with EngineVersion %q, instance %q; want Failed, 10.11, 10.11", set.Status, set.EngineVersion, version())
	}

	f.engine.probeErr, f.engine.version, f.engine.failAt = nil, "11.4", 100000
	if set := backUp(); set.Status != rdsbackup.BackupFailed || set.EngineVersion != "11.4" || version() != "11.4" {
		t.Errorf("after an upgraded server's failed backup: set %s with EngineVersion %q, instance %q; want Failed, 11.4, 11.4", set.Status, set.EngineVersion, version())
	}
}

func TestBackupStorageFails(t *testing.T) {
	for _, fault := range []storagetest.Fault{
		{Op: storagetest.OpWrite, After: 100},
		{Op: storagetest.OpCommit},
		{Op: storagetest.OpCreate},
		{Op: storagetest.OpCommit, Prefix: "backups/rm-a1/", Times: 0, Err: fmt.Errorf("disk full")},
	} {
		t.Run(fmt.Sprint(fault.Op), func(t *testing.T) {
			f := newFixture(t)
			f.faulty.Inject(fault)
			job, err := f.runner.StartBackup(t.Context(), "rm-a1", logical())
			if err != nil {
				t.Fatal(err)
			}
			want := "injected fault"
			if fault.Err != nil {
				want = fault.Err.Error()
			}
			f.failed(t, job.ID, want)
		})
	}
}

func TestBackupManifestWriteFails(t *testing.T) {
	f := newFixture(t)
	// The set object commits, then its manifest cannot be written: the
	// committed object must go too.
	f.faulty.Inject(storagetest.Fault{Op: storagetest.OpCommit, Prefix: backup.ManifestKey("rm-a1", 1)})
	job, err := f.runner.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	if job.ID != 1 {
		t.Fatalf("job id %d: the fault above targets job 1", job.ID)
	}
	f.failed(t, job.ID, "manifest")
}

func TestBackupRefusals(t *testing.T) {
	f := newFixture(t)
	f.engine.release, f.engine.started = make(chan struct{}), make(chan struct{})
	job, err := f.runner.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	<-f.engine.started
	if _, err := f.runner.StartBackup(t.Context(), "rm-a1", logical()); rdsbackup.ErrorCode(err) != rdsbackup.EBackupRunning {
		t.Errorf("second backup while one runs: %v, want %s", err, rdsbackup.EBackupRunning)
	}
	close(f.engine.release)
	if j := waitJob(t, f.db, job.ID); j.Status != rdsbackup.JobFinished {
		t.Fatalf("first job: %+v", j)
	}
	opts := logical()
	opts.Strategy, opts.Databases = "db", []string{"shop", "nope"}
	if _, err := f.runner.StartBackup(t.Context(), "rm-a1", opts); rdsbackup.ErrorCode(err) != rdsbackup.EDBNameNotFound {
		t.Errorf("unknown database: %v", err)
	}
	if _, err := f.runner.StartBackup(t.Context(), "mssql-1", logical()); rdsbackup.ErrorCode(err) != rdsbackup.EUnsupportedEngine {
		t.Errorf("SQL Server: %v", err)
	}
	if _, err := f.runner.StartBackup(t.Context(), "rm-a1", rdsbackup.BackupOptions{Method: rdsbackup.MethodSnapshot}); rdsbackup.ErrorCode(err) != rdsbackup.EUnsupportedMethod {
		t.Errorf("Snapshot: %v", err)
	}
	if _, err := f.runner.StartBackup(t.Context(), "rm-nope", logical()); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("unknown instance: %v", err)
	}
	// None of the refusals made a job.
	jobs, _ := f.db.FindJobs(t.Context(), rdsbackup.JobFilter{})
	if len(jobs) != 1 {
		t.Fatalf("jobs after refusals: %d, want 1", len(jobs))
	}
}

func TestRecoverInterruptedJob(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	// A job left Uploading by a killed process, with a partial object and a
	// temp file.
	job := &rdsbackup.Job{InstanceID: "rm-a1", Status: rdsbackup.JobUploading, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Strategy: "instance"}
	if err := f.db.CreateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	w, _ := f.fs.Create(ctx, backup.ObjectKey("rm-a1", job.ID))
	w.Write([]byte("partial"))
	w.Commit()
	tmp, _ := f.fs.Create(ctx, "backups/rm-a1/other")
	tmp.Write([]byte("half-written"))
	// (not committed: a temp file, as a killed writer leaves it)
	if err := f.fs.CleanTemp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.runner.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	f.failed(t, job.ID, "interrupted")

	// A job whose set had been recorded before the kill is Finished, and its
	// data kept.
	job2 := &rdsbackup.Job{InstanceID: "rm-a1", Status: rdsbackup.JobChecking, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical}
	f.db.CreateJob(ctx, job2)
	f.db.CreateBackupSet(ctx, &rdsbackup.BackupSet{ID: job2.ID, InstanceID: "rm-a1", Status: rdsbackup.BackupSuccess, Available: true,
		ObjectKey: backup.ObjectKey("rm-a1", job2.ID), StartTime: time.Now(), Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual,
		Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMariaDB})
	if err := f.runner.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, f.db, job2.ID); j.Status != rdsbackup.JobFinished || j.BackupSetID != job2.ID {
		t.Fatalf("recorded job: %+v", j)
	}
}

func TestRebuildCatalogFromStorage(t *testing.T) {
	f := newFixture(t)
	job, err := f.runner.StartBackup(t.Context(), "rm-a1", logical())
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, f.db, job.ID)
	orig, _ := f.db.FindBackupSet(t.Context(), job.ID)

	// A fresh, empty catalog rebuilt from storage alone.
	box, _ := aesgcm.New(bytes.Repeat([]byte{1}, aesgcm.KeySize))
	fresh := sqlite.NewDB(filepath.Join(t.TempDir(), "catalog.db"), box)
	if err := fresh.Open(); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	// A manifest whose object is gone must not be imported.
	w, _ := f.fs.Create(t.Context(), backup.ManifestKey("rm-a1", 999))
	w.Write([]byte(`{"version":1,"backupId":999,"instanceId":"rm-a1","objectKey":"backups/rm-a1/999/set.zst","size":10}`))
	w.Commit()

	res, err := backup.Rebuild(t.Context(), f.fs, fresh)
	if err != nil || res.Imported != 1 || len(res.Skipped) != 1 {
		t.Fatalf("rebuild: %+v %v", res, err)
	}
	got, err := fresh.FindBackupSet(t.Context(), job.ID)
	if err != nil {
		t.Fatal(err)
	}
	orig.ExpectExpireTime, got.ExpectExpireTime = time.Time{}, time.Time{}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", orig) {
		t.Fatalf("rebuilt set differs:\n got %+v\nwant %+v", got, orig)
	}
	if _, err := fresh.FindBackupSet(t.Context(), 999); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Fatalf("set without object imported: %v", err)
	}
	// Rebuilding again changes nothing.
	if res, err := backup.Rebuild(t.Context(), f.fs, fresh); err != nil || res.Imported != 0 || res.Present != 1 {
		t.Fatalf("second rebuild: %+v %v", res, err)
	}
}

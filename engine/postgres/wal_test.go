package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
)

const segSize = 16 << 20

// walStore keeps copies of the files StreamWAL delivers, as the object
// store would, and records gaps and errors.
type walStore struct {
	t     *testing.T
	dir   string
	mu    sync.Mutex
	files []postgres.WALFile
	gaps  []postgres.WALGap
	errs  []error
	fail  atomic.Bool // OnFile fails while set
	// partial is the newest copy of the segment being written.
	partial postgres.WALFile
}

func (s *walStore) onFile(ctx context.Context, f postgres.WALFile) error {
	if s.fail.Load() {
		return errors.New("store unavailable")
	}
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return err
	}
	if int64(len(b)) != f.Size || crc64.Checksum(b, crc64.MakeTable(crc64.ECMA)) != f.CRC64 {
		s.t.Errorf("%s: size/CRC %d/%d do not match the file's bytes", f.Name, f.Size, f.CRC64)
	}
	// The sink takes the file out of the spool.
	if err := os.Rename(f.Path, filepath.Join(s.dir, f.Name)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.files {
		if g.Name == f.Name && !f.History {
			s.t.Errorf("%s delivered twice", f.Name)
		}
	}
	s.files = append(s.files, f)
	return nil
}

// onPartial keeps the newest copy of the segment being written.
func (s *walStore) onPartial(ctx context.Context, f postgres.WALFile) error {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return err
	}
	if int64(len(b)) < f.Size || !f.Partial {
		s.t.Errorf("partial %s: %d bytes, Size %d, Partial %v", f.Name, len(b), f.Size, f.Partial)
	}
	b = b[:f.Size]
	if crc64.Checksum(b, crc64.MakeTable(crc64.ECMA)) != f.CRC64 {
		s.t.Errorf("partial %s: CRC does not match its first %d bytes", f.Name, f.Size)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "partial-"+f.Name), b, 0o600); err != nil {
		return err
	}
	s.mu.Lock()
	s.partial = f
	s.mu.Unlock()
	return nil
}

func (s *walStore) lastSegment() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.files) - 1; i >= 0; i-- {
		if !s.files[i].History {
			return s.files[i].Name
		}
	}
	return ""
}

func (s *walStore) open(ctx context.Context, f postgres.WALFile) (io.ReadCloser, error) {
	if f.Partial {
		return os.Open(filepath.Join(s.dir, "partial-"+f.Name))
	}
	return os.Open(filepath.Join(s.dir, f.Name))
}

func (s *walStore) list() []postgres.WALFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.files)
}

func (s *walStore) errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// waitFor waits until segment name (or a later one) is delivered.
func (s *walStore) waitFor(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range s.list() {
			if !f.History && f.Name[8:] >= name[8:] {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("segment %s not delivered within a minute; have %v; errors %v", name, names(s.list()), s.errors())
}

func names(fs []postgres.WALFile) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// streamWAL runs StreamWAL into a new spool, again after each return as
// the service's supervisor does, until the test ends or stop is called.
func streamWAL(t *testing.T, e *testEngine, in *rdsbackup.Instance, synchronous bool) (store *walStore, spool string, stop func()) {
	t.Helper()
	store = &walStore{t: t, dir: t.TempDir()}
	spool = filepath.Join(t.TempDir(), "spool")
	return store, spool, superviseWAL(t, e, in, store, spool, synchronous)
}

func superviseWAL(t *testing.T, e *testEngine, in *rdsbackup.Instance, store *walStore, spool string, synchronous bool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			err := e.StreamWAL(ctx, in, postgres.WALStreamOptions{
				SpoolDir:    spool,
				Resume:      store.lastSegment(),
				Synchronous: synchronous,
				OnFile:      store.onFile,
				OnPartial:   store.onPartial,
				OnGap: func(ctx context.Context, g postgres.WALGap) error {
					store.mu.Lock()
					store.gaps = append(store.gaps, g)
					store.mu.Unlock()
					return nil
				},
				PollInterval:    50 * time.Millisecond,
				PartialInterval: 100 * time.Millisecond,
			})
			if err != nil {
				store.mu.Lock()
				store.errs = append(store.errs, err)
				store.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	// Streaming has begun once the slot is in use.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := e.Slot(context.Background(), in, "")
		if err == nil && st.Active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot is not in use after 30 s: %+v, %v; errors %v", st, err, store.errors())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop
}

// switchWAL ends the current segment and returns its name.
func switchWAL(t *testing.T, db *sql.DB) string {
	t.Helper()
	var name string
	if err := db.QueryRow(`SELECT pg_walfile_name(pg_switch_wal())`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

func serverNow(t *testing.T, db *sql.DB) time.Time {
	t.Helper()
	var now time.Time
	if err := db.QueryRow(`SELECT clock_timestamp()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	return now
}

func ids(t *testing.T, url, table string) []int {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id FROM ` + table + ` ORDER BY id`)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var id int
		rows.Scan(&id)
		out = append(out, id)
	}
	return out
}

func tableExists(t *testing.T, url, table string) bool {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok bool
	if err := db.QueryRow(`SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// checkContiguous checks that the segments delivered follow each other.
func checkContiguous(t *testing.T, files []postgres.WALFile) {
	t.Helper()
	var prev string
	for _, f := range files {
		if f.History {
			continue
		}
		if f.Size != segSize {
			t.Errorf("%s: size %d", f.Name, f.Size)
		}
		if f.EndLSN-f.StartLSN != segSize || postgres.SegmentOf(f.Timeline, f.StartLSN, segSize) != f.Name {
			t.Errorf("%s: LSNs %v-%v", f.Name, f.StartLSN, f.EndLSN)
		}
		if prev != "" {
			var tli, log, seg, ptli, plog, pseg uint64
			fmt.Sscanf(f.Name, "%08X%08X%08X", &tli, &log, &seg)
			fmt.Sscanf(prev, "%08X%08X%08X", &ptli, &plog, &pseg)
			if tli != ptli || log*256+seg != plog*256+pseg+1 {
				t.Errorf("segment %s follows %s: a gap or a duplicate", f.Name, prev)
			}
		}
		prev = f.Name
	}
}

// TestWALStreamAndRestoreToTime streams WAL while rows are written,
// takes a physical backup, notes a time T, writes more rows and drops a
// table, and restores to T, to the end, and to times the WAL does not
// reach.
func TestWALStreamAndRestoreToTime(t *testing.T) {
	const pw = "wal pw:@/%'\"$ x"
	// No autovacuum: its commits would land in the segment meant to have
	// none.
	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: pw, Settings: map[string]string{"autovacuum": "off"}})
	e := newEngine(t)
	ctx := ctxT(t, 4*time.Minute)
	in := inst(srv.URL("postgres"))
	store, spool, stop := streamWAL(t, e, in, true)
	if fi, err := os.Stat(spool); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("spool mode %v, %v; want 0700", fi.Mode(), err)
	}

	db := srv.NewDatabase(t)
	sdb := srv.DB(t, db)
	exec1(t, sdb, `CREATE TABLE items (id int PRIMARY KEY, note text, data bytea)`,
		`CREATE TABLE doomed (id int)`, `INSERT INTO doomed VALUES (1)`,
		`INSERT INTO items VALUES (1, NULL, '\x00ff'), (2, 'ünïcödé ☃', NULL)`)
	sink := newSink(t)
	res, err := e.Backup(ctx, in, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, sink)
	if err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 6; i++ {
		exec1(t, sdb, fmt.Sprintf(`INSERT INTO items VALUES (%d, 'before', NULL)`, i))
	}
	mid := switchWAL(t, sdb)
	time.Sleep(1100 * time.Millisecond)
	target := serverNow(t, sdb)
	time.Sleep(1100 * time.Millisecond)
	for i := 7; i <= 9; i++ {
		exec1(t, sdb, fmt.Sprintf(`INSERT INTO items VALUES (%d, 'after', NULL)`, i))
	}
	exec1(t, sdb, `DROP TABLE doomed`)
	last := switchWAL(t, sdb)
	store.waitFor(t, last)
	// A segment without a transaction (a checkpoint only).
	time.Sleep(1100 * time.Millisecond)
	exec1(t, sdb, `CHECKPOINT`)
	quiet := switchWAL(t, sdb)
	store.waitFor(t, quiet)
	// Rows in the segment being written reach the store as a partial copy.
	exec1(t, sdb, `INSERT INTO items VALUES (10, 'partial', NULL)`, `INSERT INTO items VALUES (11, 'partial', NULL)`)
	var lsnText string
	if err := sdb.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&lsnText); err != nil {
		t.Fatal(err)
	}
	endLSN, _ := postgres.ParseLSN(lsnText)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		store.mu.Lock()
		p := store.partial
		store.mu.Unlock()
		if p.Partial && p.EndLSN >= endLSN {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no partial copy up to %v: %+v", endLSN, p)
		}
	}
	stop()
	partial := store.partial
	files := store.list()
	t.Logf("delivered %v", names(files))
	checkContiguous(t, files)
	if errs := store.errors(); len(errs) > 0 || len(store.gaps) > 0 {
		t.Errorf("errors %v, gaps %v", errs, store.gaps)
	}

	// Time spans: the segment ending at mid holds the commits before the
	// target, the last one those after.
	var midFile, lastFile, quietFile postgres.WALFile
	for _, f := range files {
		switch f.Name {
		case mid:
			midFile = f
		case last:
			lastFile = f
		case quiet:
			quietFile = f
		}
		if !f.History && (f.BeginTime.After(f.EndTime) || f.BeginTime.IsZero()) {
			t.Errorf("%s: span %v–%v", f.Name, f.BeginTime, f.EndTime)
		}
	}
	if !midFile.HasCommits || !midFile.EndTime.Before(target) || !lastFile.HasCommits || !lastFile.BeginTime.After(target) {
		t.Errorf("spans: %s %v–%v (commits %v), %s %v–%v (commits %v); target %v", mid, midFile.BeginTime, midFile.EndTime, midFile.HasCommits,
			last, lastFile.BeginTime, lastFile.EndTime, lastFile.HasCommits, target)
	}

	// Its span is the last commit before it, not when it was received.
	if quietFile.HasCommits || !quietFile.BeginTime.Equal(lastFile.EndTime) || !quietFile.EndTime.Equal(lastFile.EndTime) || !quietFile.ReceivedAt.After(lastFile.EndTime.Add(time.Second)) {
		t.Errorf("segment without commits %s: %+v; the one before ends at %v", quiet, quietFile, lastFile.EndTime)
	}

	base := time.Unix(res.ConsistentTime, 0)
	t.Run("to T", func(t *testing.T) {
		r, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Target: target, Files: files, Open: store.open, BaseConsistentTime: base})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		if !strings.Contains(r.StoppedAt, "recovery stopping before commit") {
			t.Errorf("StoppedAt = %q", r.StoppedAt)
		}
		u := r.URL("postgres", db)
		if got := ids(t, u, "items"); !slices.Equal(got, seq(1, 6)) {
			t.Errorf("restored to T: ids %v, want 1..6", got)
		}
		if !tableExists(t, u, "doomed") {
			t.Error("restored to T: the table dropped after T is missing")
		}
		var note, data *string
		rdb, _ := sql.Open("pgx", u)
		defer rdb.Close()
		if err := rdb.QueryRow(`SELECT (SELECT note FROM items WHERE id = 2), (SELECT encode(data, 'hex') FROM items WHERE id = 1)`).Scan(&note, &data); err != nil ||
			note == nil || *note != "ünïcödé ☃" || data == nil || *data != "00ff" {
			t.Errorf("restored values %v %v, %v", note, data, err)
		}
		// The server opened read-write, on a new timeline.
		var inRecovery bool
		if err := rdb.QueryRow(`SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || inRecovery {
			t.Errorf("pg_is_in_recovery = %v, %v", inRecovery, err)
		}
		r.Stop()
		if _, err := os.Stat(r.SocketDir); err == nil {
			t.Error("the recovery's private directory is left")
		}
		if _, err := os.Stat(filepath.Join(r.DataDir, "recovery.signal")); err == nil {
			t.Error("recovery.signal is left")
		}
	})
	t.Run("latest", func(t *testing.T) {
		r, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Files: files, Open: store.open})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		u := r.URL("postgres", db)
		if got := ids(t, u, "items"); !slices.Equal(got, seq(1, 9)) {
			t.Errorf("restored to the end: ids %v, want 1..9", got)
		}
		if tableExists(t, u, "doomed") {
			t.Error("restored to the end: the dropped table is there")
		}
		if r.LastTransaction.IsZero() || r.LastTransaction.Before(target) {
			t.Errorf("LastTransaction = %v", r.LastTransaction)
		}
	})
	t.Run("after the last commit", func(t *testing.T) {
		// Files known to reach past the target hold no commit after it:
		// PostgreSQL cannot stop there and replays them all.
		unknown := slices.Clone(files)
		for i := range unknown {
			unknown[i].HasCommits = false
		}
		after := lastFile.EndTime.Add(500 * time.Millisecond)
		r, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Target: after, Until: after.Add(time.Second), Files: unknown, Open: store.open})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		if got := ids(t, r.URL("postgres", db), "items"); !slices.Equal(got, seq(1, 9)) {
			t.Errorf("restored after the last commit: ids %v, want 1..9", got)
		}
	})
	t.Run("latest with the partial segment", func(t *testing.T) {
		if !partial.HasCommits || partial.EndTime.Before(lastFile.EndTime) {
			t.Errorf("partial span %v–%v, commits %v", partial.BeginTime, partial.EndTime, partial.HasCommits)
		}
		r, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Files: append(slices.Clone(files), partial), Open: store.open})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		if got := ids(t, r.URL("postgres", db), "items"); !slices.Equal(got, seq(1, 11)) {
			t.Errorf("restored with the partial segment: ids %v, want 1..11", got)
		}
	})
	// Without the last segment the WAL held ends before T+1s.
	short := files[:len(files)-1]
	for len(short) > 0 && short[len(short)-1].Name[8:] >= last[8:] {
		short = short[:len(short)-1]
	}
	t.Run("beyond the WAL", func(t *testing.T) {
		_, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Target: target.Add(time.Second), Files: short, Open: store.open})
		var re *postgres.RecoveryError
		if !errors.As(err, &re) || re.Reason != "wal-ends-before-target" || !strings.Contains(err.Error(), "ends before the target time") {
			t.Fatalf("error %v, want the WAL to end before the target", err)
		}
		t.Log(err)
	})
	t.Run("PostgreSQL finds the WAL short", func(t *testing.T) {
		// The files claim a commit after the target that is not in them:
		// only PostgreSQL can tell.
		lying := slices.Clone(short)
		lying[len(lying)-1].EndTime = target.Add(time.Hour)
		lying[len(lying)-1].HasCommits = true
		_, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Target: target.Add(time.Second), Files: lying, Open: store.open})
		var re *postgres.RecoveryError
		if !errors.As(err, &re) || re.Reason != "wal-ends-before-target" || !strings.Contains(re.Log, "recovery ended before configured recovery target was reached") {
			t.Fatalf("error %v, want PostgreSQL's report that the WAL ends before the target", err)
		}
		t.Log(err)
	})
	t.Run("a file cannot be fetched", func(t *testing.T) {
		failing := func(ctx context.Context, f postgres.WALFile) (io.ReadCloser, error) {
			if f.Name == mid {
				return nil, errors.New("object store down")
			}
			return store.open(ctx, f)
		}
		dir := postgresDir(t)
		_, err := e.RecoverToTime(ctx, sink.open(t, 0), dir, postgres.PITROptions{Target: target, Files: files, Open: failing})
		if err == nil || !strings.Contains(err.Error(), "fetch WAL file "+mid) || !strings.Contains(err.Error(), "object store down") {
			t.Fatalf("error %v, want the fetch failure", err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".rdsbackup-pitr-*")); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	t.Run("before the backup", func(t *testing.T) {
		_, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Target: base.Add(-time.Hour), Files: files, Open: store.open, BaseConsistentTime: base})
		var re *postgres.RecoveryError
		if !errors.As(err, &re) || re.Reason != "target-before-backup" {
			t.Fatalf("error %v, want target-before-backup", err)
		}
	})
	e.checkArgv(t, pw)
}

// TestWALStreamResumes kills pg_receivewal twice while rows are written,
// fails the store for a while, and stops and starts the server: every
// segment is delivered once, in order, and a restore to the end has every
// row.
func TestWALStreamResumes(t *testing.T) {
	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "resume"})
	e := newEngine(t)
	ctx := ctxT(t, 4*time.Minute)
	in := inst(srv.URL("postgres"))
	store, _, stop := streamWAL(t, e, in, false)
	db := srv.NewDatabase(t)
	sdb := srv.DB(t, db)
	exec1(t, sdb, `CREATE TABLE items (id int PRIMARY KEY)`)
	sink := newSink(t)
	if _, err := e.Backup(ctx, in, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, sink); err != nil {
		t.Fatal(err)
	}
	const rows = 600
	killedPid := 0
	for i := 1; i <= rows; i++ {
		exec1(t, sdb, fmt.Sprintf(`INSERT INTO items VALUES (%d)`, i))
		switch i {
		case 100, 300:
			pid := receiver(t, killedPid)
			syscall.Kill(pid, syscall.SIGKILL)
			killedPid = pid
		case 200:
			store.fail.Store(true)
		case 400:
			// The segment switched at 300 was refused at least once.
			for deadline := time.Now().Add(30 * time.Second); !slices.ContainsFunc(store.errors(), func(err error) bool {
				return strings.Contains(err.Error(), "store unavailable")
			}); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no delivery was refused while the store failed")
				}
			}
			store.fail.Store(false)
		}
		if i%150 == 0 {
			switchWAL(t, sdb)
		}
	}
	// The server stopped and started again while streaming.
	srv.Stop()
	time.Sleep(300 * time.Millisecond)
	srv.Start(t)
	sdb = srv.DB(t, db)
	for i := rows + 1; i <= rows+100; i++ {
		exec1(t, sdb, fmt.Sprintf(`INSERT INTO items VALUES (%d)`, i))
	}
	lastSeg := switchWAL(t, sdb)
	store.waitFor(t, lastSeg)
	stop()
	files := store.list()
	t.Logf("delivered %v; errors %v", names(files), store.errors())
	checkContiguous(t, files)
	if len(store.gaps) > 0 {
		t.Errorf("gaps %v", store.gaps)
	}
	killed, failed := 0, 0
	for _, err := range store.errors() {
		switch {
		case strings.Contains(err.Error(), "signal: killed"):
			killed++
		case strings.Contains(err.Error(), "store unavailable"):
			failed++
		}
	}
	// A kill while a delivery fails may end the run as that failure.
	if killed == 0 || failed == 0 {
		t.Errorf("saw %d kills and %d store failures, want some of both", killed, failed)
	}
	r, err := e.RecoverToTime(ctx, sink.open(t, 0), postgresDir(t), postgres.PITROptions{Files: files, Open: store.open})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if got := ids(t, r.URL("postgres", db), "items"); !slices.Equal(got, seq(1, rows+100)) {
		t.Errorf("restored %d rows (%v…), want 1..%d", len(got), got[:min(len(got), 5)], rows+100)
	}
}

// receiver waits for the pg_receivewal child that is not old.
func receiver(t *testing.T, old int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := children("pg_receivewal")
		if len(pids) == 1 && pids[0] != old {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg_receivewal processes: %v (the one killed: %d)", pids, old)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLogBackupPreconditions(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	e := newEngine(t)
	t.Run("wal_level minimal", func(t *testing.T) {
		srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
		err := e.CheckLogBackup(ctx, inst(srv.URL("postgres")))
		var le *postgres.LogBackupUnavailableError
		if !errors.As(err, &le) || le.Setting != "wal_level" || le.Have != "minimal" || !strings.Contains(err.Error(), "wal_level") {
			t.Fatalf("error %v, want one naming wal_level", err)
		}
		err = e.StreamWAL(ctx, inst(srv.URL("postgres")), postgres.WALStreamOptions{SpoolDir: t.TempDir(), OnFile: func(context.Context, postgres.WALFile) error { return nil }})
		if !errors.As(err, &le) {
			t.Errorf("StreamWAL: %v, want the same refusal", err)
		}
		var re *rdsbackup.Error
		if err := e.CheckLogSource(ctx, inst(srv.URL("postgres"))); !errors.As(err, &re) || re.Code != rdsbackup.EINVALID || !strings.Contains(err.Error(), "wal_level") {
			t.Errorf("CheckLogSource: %v, want EINVALID naming wal_level", err)
		}
	})
	srv := enginetest.SharedPostgres(t)
	admin := srv.DB(t, "postgres")
	role := "norepl_" + strings.ToLower(fmt.Sprint(time.Now().UnixNano()%100000))
	exec1(t, admin, `CREATE ROLE `+role+` LOGIN PASSWORD 'norepl pw'`)
	t.Cleanup(func() { admin.Exec(`DROP ROLE ` + role) })
	pu, _ := url.Parse(srv.URL("postgres"))
	pu.User = url.UserPassword(role, "norepl pw")
	u := pu.String()
	t.Run("no REPLICATION", func(t *testing.T) {
		err := e.CheckLogBackup(ctx, inst(u))
		var le *postgres.LogBackupUnavailableError
		if !errors.As(err, &le) || le.Setting != "REPLICATION" || !strings.Contains(err.Error(), "REPLICATION") {
			t.Fatalf("error %v, want one naming REPLICATION", err)
		}
	})
	t.Run("REPLICATION", func(t *testing.T) {
		exec1(t, admin, `ALTER ROLE `+role+` REPLICATION`)
		if err := e.CheckLogBackup(ctx, inst(u)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWALSlot checks the slot's name, that streaming keeps WAL on the
// server while it is stopped, and that DropSlot frees it.
func TestWALSlot(t *testing.T) {
	for id, want := range map[string]string{
		"pg-test": "rdsbackup_pg_test_", "plain_1": "rdsbackup_plain_1", "UPPER": "rdsbackup_upper_",
		strings.Repeat("x", 80): "rdsbackup_xxxx",
	} {
		got := postgres.SlotName(id)
		if !strings.HasPrefix(got, want) || len(got) > 63 {
			t.Errorf("SlotName(%q) = %q, want %q…", id, got, want)
		}
	}
	if id := "a-b"; postgres.SlotName(id) == postgres.SlotName("a_b") || postgres.SlotName(id) != postgres.SlotName(strings.Clone(id)) {
		t.Error("slot names collide or are not stable")
	}

	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{})
	e := newEngine(t)
	ctx := ctxT(t, 2*time.Minute)
	in := inst(srv.URL("postgres"))
	_, _, stop := streamWAL(t, e, in, false)
	stop()
	sdb := srv.DB(t, "postgres")
	switchWAL(t, sdb)
	exec1(t, sdb, `CREATE TABLE filler AS SELECT g FROM generate_series(1, 100000) g`)
	st, err := e.Slot(ctx, in, "")
	if err != nil || !st.Exists || st.Active || st.RetainedBytes < 1<<20 || st.WALStatus == "" {
		t.Fatalf("slot after streaming stopped: %+v, %v; want it to hold WAL back", st, err)
	}
	if err := e.DropSlot(ctx, in, "", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, err := e.Slot(ctx, in, ""); err != nil || st.Exists {
		t.Errorf("slot after DropSlot: %+v, %v", st, err)
	}
	if err := e.DropSlot(ctx, in, "", time.Second); err != nil {
		t.Errorf("dropping a missing slot: %v", err)
	}

	// Without a replication entry in pg_hba.conf the stream cannot start.
	if err := os.WriteFile(filepath.Join(srv.DataDir, "pg_hba.conf"), []byte("local all all trust\nhost all all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exec1(t, sdb, `SELECT pg_reload_conf()`)
	time.Sleep(200 * time.Millisecond)
	err = e.CheckLogBackup(ctx, in)
	var le *postgres.LogBackupUnavailableError
	if !errors.As(err, &le) || le.Setting != "pg_hba.conf replication entry" {
		t.Errorf("without a replication entry: %v", err)
	}
	var re *rdsbackup.Error
	if err := e.CheckLogSource(ctx, in); !errors.As(err, &re) || re.Code != rdsbackup.EINVALID || !strings.Contains(err.Error(), "pg_hba.conf") {
		t.Errorf("CheckLogSource without a replication entry: %v", err)
	}
}

// portSink is a LogSink that keeps complete files, as the service's
// uploader would.
type portSink struct {
	dir   string
	mu    sync.Mutex
	files []*rdsbackup.LogFile
	gaps  []rdsbackup.LogGap
}

func (s *portSink) CompleteLog(ctx context.Context, f rdsbackup.SpooledLog) error {
	if err := os.Rename(f.Path, filepath.Join(s.dir, f.Name)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = append(s.files, &rdsbackup.LogFile{Name: f.Name, Kind: f.Kind, Seq: f.Seq, BeginTime: f.BeginTime, EndTime: f.EndTime,
		Start: f.Start, End: f.End, RawSize: f.RawSize, HostID: f.HostID, Status: rdsbackup.LogCompleted})
	return nil
}

func (s *portSink) PartialLog(ctx context.Context, f rdsbackup.SpooledLog) error { return nil }

func (s *portSink) Gap(ctx context.Context, g rdsbackup.LogGap) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gaps = append(s.gaps, g)
	return nil
}

func (s *portSink) last() *rdsbackup.LogFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.files) - 1; i >= 0; i-- {
		if s.files[i].Kind == rdsbackup.LogKindLog {
			return s.files[i]
		}
	}
	return nil
}

// untilNextSecond sleeps until 100 ms after the next whole second.
func untilNextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 100*time.Millisecond).Sub(now))
}

// TestPointInTimeThroughPorts streams through StreamLogs and restores
// through RestoreToTime, to a whole second, into an instance under new
// names and into a data directory.
func TestPointInTimeThroughPorts(t *testing.T) {
	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "ports pw"})
	e := newEngine(t)
	ctx := ctxT(t, 3*time.Minute)
	in := inst(srv.URL("postgres"))
	if err := e.CheckLogSource(ctx, in); err != nil {
		t.Fatal(err)
	}
	sink := &portSink{dir: t.TempDir()}
	spec := rdsbackup.StreamSpec{SpoolDir: filepath.Join(t.TempDir(), "spool"), Slot: postgres.SlotName(in.ID)}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			spec := spec
			spec.Resume = sink.last()
			if err := e.StreamLogs(sctx, in, spec, sink); err != nil {
				t.Logf("StreamLogs: %v", err)
			}
			select {
			case <-sctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	defer func() { cancel(); <-done }()

	db := srv.NewDatabase(t)
	sdb := srv.DB(t, db)
	exec1(t, sdb, `CREATE TABLE items (id int PRIMARY KEY, v text)`)
	parts := newSink(t)
	res, err := e.Backup(ctx, in, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, parts)
	if err != nil {
		t.Fatal(err)
	}
	untilNextSecond()
	exec1(t, sdb, `INSERT INTO items VALUES (1, NULL)`)
	untilNextSecond()
	exec1(t, sdb, `INSERT INTO items VALUES (2, 'ü')`)
	target := serverNow(t, sdb).Truncate(time.Second)
	untilNextSecond()
	exec1(t, sdb, `INSERT INTO items VALUES (3, 'after')`)
	last := switchWAL(t, sdb)
	for deadline := time.Now().Add(60 * time.Second); sink.last() == nil || sink.last().Name < last; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not delivered", last)
		}
	}
	cancel()
	<-done
	if len(sink.gaps) > 0 {
		t.Errorf("gaps %+v", sink.gaps)
	}
	// The set records where in the WAL it starts: a segment the stream
	// delivered.
	pos, ok := res.LogPositions["instance"]
	lsn, err := postgres.ParseLSN(pos.LSN)
	if !ok || err != nil || pos.Timeline != 1 || pos.File != postgres.SegmentOf(1, lsn, segSize) || pos.Offset != int64(lsn)%segSize ||
		!slices.ContainsFunc(sink.files, func(f *rdsbackup.LogFile) bool { return f.Name == pos.File && f.Seq == int64(lsn)/segSize }) {
		t.Errorf("set log position %+v (%v); delivered %v", pos, err, sink.files)
	}
	for _, f := range sink.files {
		if f.Kind == rdsbackup.LogKindLog && (f.End.Offset != segSize || f.Start.File != f.Name || f.RawSize != segSize ||
			f.BeginTime.Nanosecond() != 0 || f.EndTime.Nanosecond() != 0) {
			t.Errorf("log file %+v", f)
		}
	}
	set := &rdsbackup.BackupSet{ID: 7, Method: rdsbackup.MethodPhysical, EndTime: time.Unix(res.ConsistentTime, 0),
		Artifacts: []rdsbackup.Artifact{{Kind: rdsbackup.PartPhysical}}}
	req := rdsbackup.PointInTimeRequest{
		Source: in, Target: in, WorkDir: t.TempDir(), Set: set, Time: target, Logs: sink.files,
		Databases: map[string]string{db: db + "_at_t"},
		OpenPart:  func(ctx context.Context, a rdsbackup.Artifact) (io.ReadCloser, error) { return parts.open(t, 0), nil },
		OpenLog: func(ctx context.Context, f *rdsbackup.LogFile) (io.ReadCloser, error) {
			return os.Open(filepath.Join(sink.dir, f.Name))
		},
	}
	t.Cleanup(func() { srv.DB(t, "postgres").Exec(`DROP DATABASE IF EXISTS "` + db + `_at_t"`) })
	var percents []int
	if err := e.RestoreToTime(ctx, req, func(p int) { percents = append(percents, p) }); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, srv.URL(db+"_at_t"), "items"); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("restored to %v under a new name: ids %v, want 1, 2", target, got)
	}
	if len(percents) == 0 || percents[len(percents)-1] != 100 {
		t.Errorf("progress %v", percents)
	}
	// The name exists now: refused before anything is written.
	req.WorkDir = t.TempDir()
	err = e.RestoreToTime(ctx, req, nil)
	var re *rdsbackup.Error
	if !errors.As(err, &re) || re.Code != rdsbackup.ECONFLICT {
		t.Errorf("restore onto an existing name: %v, want ECONFLICT", err)
	}
	// A logical set cannot be rolled forward.
	logical := *set
	logical.Method, logical.Artifacts = rdsbackup.MethodLogical, []rdsbackup.Artifact{{Kind: rdsbackup.PartDatabase, Database: db}}
	req.Set, req.Databases = &logical, map[string]string{db: db + "_x"}
	if err := e.RestoreToTime(ctx, req, nil); !errors.As(err, &re) || re.Code != rdsbackup.EUnsupportedMethod || !strings.Contains(err.Error(), "physical") {
		t.Errorf("restore of a logical set to a time: %v", err)
	}

	// Into a data directory, as the CLI does; then start it.
	req = rdsbackup.PointInTimeRequest{Source: in, DataDir: postgresDir(t), Set: set, Time: target, Logs: sink.files, OpenPart: req.OpenPart, OpenLog: req.OpenLog}
	if err := e.RestoreToTime(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	u := startOn(t, srv, req.DataDir)
	if got := ids(t, strings.Replace(u, "/postgres?", "/"+db+"?", 1), "items"); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("restored into a data directory: ids %v, want 1, 2", got)
	}
	// Log backup turned off: the slot goes.
	if err := e.DropLogSource(ctx, in, spec); err != nil {
		t.Fatal(err)
	}
	if st, err := e.Slot(ctx, in, spec.Slot); err != nil || st.Exists {
		t.Errorf("slot after DropLogSource: %+v, %v", st, err)
	}
}

// TestWALSlotLost lets the server invalidate the slot while the stream is
// stopped (max_slot_wal_keep_size): the next run reports the gap after the
// last stored segment and the stream goes on from the server's WAL.
func TestWALSlotLost(t *testing.T) {
	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Settings: map[string]string{"max_slot_wal_keep_size": "32MB", "wal_keep_size": "0"}})
	e := newEngine(t)
	ctx := ctxT(t, 2*time.Minute)
	in := inst(srv.URL("postgres"))
	store, spool, stop := streamWAL(t, e, in, false)
	sdb := srv.DB(t, "postgres")
	exec1(t, sdb, `CREATE TABLE items (id int)`)
	before := switchWAL(t, sdb)
	store.waitFor(t, before)
	stop()
	lastBefore := store.lastSegment()

	for i := 0; i < 6; i++ {
		exec1(t, sdb, fmt.Sprintf(`INSERT INTO items VALUES (%d)`, i))
		switchWAL(t, sdb)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		exec1(t, sdb, `CHECKPOINT`)
		st, err := e.Slot(ctx, in, "")
		if err == nil && st.WALStatus == "lost" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot was not invalidated: %+v, %v", st, err)
		}
	}

	superviseWAL(t, e, in, store, spool, false)
	exec1(t, sdb, `INSERT INTO items VALUES (100)`)
	after := switchWAL(t, sdb)
	store.waitFor(t, after)
	store.mu.Lock()
	gaps := slices.Clone(store.gaps)
	store.mu.Unlock()
	if len(gaps) != 1 || gaps[0].After != lastBefore || !strings.Contains(gaps[0].Reason, "removed WAL") {
		t.Fatalf("gaps %+v, want one after %s", gaps, lastBefore)
	}
	t.Logf("gap: %+v; errors %v", gaps[0], store.errors())
	files := store.list()
	var next string
	for _, f := range files {
		if !f.History && f.Name > lastBefore {
			next = f.Name
			break
		}
	}
	if next == "" || next[8:] <= postgres.SegmentOf(1, postgres.LSN((files[0].Seq+2)*segSize), segSize)[8:] {
		t.Errorf("after the gap the stream went on at %q (last before: %s); delivered %v", next, lastBefore, names(files))
	}
	if st, err := e.Slot(ctx, in, ""); err != nil || !st.Exists || st.WALStatus == "lost" {
		t.Errorf("slot after the gap: %+v, %v", st, err)
	}
}

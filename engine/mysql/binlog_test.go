//go:build linux

package mysql_test

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// collectSink keeps the complete files a streamer reports in its own
// directory, as the supervisor's upload queue does.
type collectSink struct {
	dir string

	mu       sync.Mutex
	complete []rdsbackup.SpooledLog
	partials int
	gaps     []rdsbackup.LogGap
}

func (s *collectSink) CompleteLog(ctx context.Context, f rdsbackup.SpooledLog) error {
	dst := filepath.Join(s.dir, f.Name)
	if err := os.Rename(f.Path, dst); err != nil {
		return err
	}
	f.Path = dst
	s.mu.Lock()
	s.complete = append(s.complete, f)
	s.mu.Unlock()
	return nil
}

func (s *collectSink) PartialLog(ctx context.Context, f rdsbackup.SpooledLog) error {
	s.mu.Lock()
	s.partials++
	s.mu.Unlock()
	return nil
}

func (s *collectSink) Gap(ctx context.Context, g rdsbackup.LogGap) error {
	s.mu.Lock()
	s.gaps = append(s.gaps, g)
	s.mu.Unlock()
	return nil
}

func (s *collectSink) files() []rdsbackup.SpooledLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rdsbackup.SpooledLog(nil), s.complete...)
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func rowServer(t *testing.T) (*enginetest.MariaDB, *rdsbackup.Instance) {
	srv := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 9, LogBin: true, RootPassword: "binlog pw#1", Args: []string{"--binlog-format=ROW"}})
	logOnFailure(t, srv)
	return srv, &rdsbackup.Instance{ID: "rm-binlog", Engine: rdsbackup.EngineMariaDB, DSN: srv.DSN("")}
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestCheckLogSource: each missing setting or privilege is named.
func TestCheckLogSource(t *testing.T) {
	t.Parallel()
	srv, inst := rowServer(t)
	e := newEngine(t)
	ctx := context.Background()
	if err := e.CheckLogSource(ctx, inst); err != nil {
		t.Fatalf("a ROW server with root: %v", err)
	}
	root := srv.DB(t, "")
	mustExec(t, root, "CREATE USER 'reader'@'%' IDENTIFIED BY 'reader pw'", "GRANT SELECT ON *.* TO 'reader'@'%'",
		"CREATE USER 'repl'@'%' IDENTIFIED BY 'repl pw'", "GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO 'repl'@'%'")
	dsn := func(user, pw string) string {
		return strings.Replace(srv.DSN(""), "root:"+srv.Password, user+":"+pw, 1)
	}
	err := e.CheckLogSource(ctx, &rdsbackup.Instance{ID: inst.ID, Engine: inst.Engine, DSN: dsn("reader", "reader pw")})
	if rdsbackup.ErrorCode(err) != rdsbackup.EINVALID || !strings.Contains(rdsbackup.ErrorMessage(err), "REPLICATION SLAVE and REPLICATION CLIENT") {
		t.Errorf("a user without replication privileges: %v", err)
	}
	if err := e.CheckLogSource(ctx, &rdsbackup.Instance{ID: inst.ID, Engine: inst.Engine, DSN: dsn("repl", "repl pw")}); err != nil {
		t.Errorf("a replication user: %v", err)
	}
	mustExec(t, root, "SET GLOBAL binlog_format = 'MIXED'")
	err = e.CheckLogSource(ctx, inst)
	mustExec(t, root, "SET GLOBAL binlog_format = 'ROW'")
	if rdsbackup.ErrorCode(err) != rdsbackup.EINVALID || !strings.Contains(rdsbackup.ErrorMessage(err), "binlog_format=ROW") {
		t.Errorf("binlog_format MIXED: %v", err)
	}
	shared, sinst := sharedInstance(t)
	_ = shared
	plain := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{})
	err = e.CheckLogSource(ctx, &rdsbackup.Instance{ID: "rm-nolog", Engine: sinst.Engine, DSN: plain.DSN("")})
	if rdsbackup.ErrorCode(err) != rdsbackup.EINVALID || !strings.Contains(rdsbackup.ErrorMessage(err), "log_bin is OFF") {
		t.Errorf("no binary log: %v", err)
	}
}

// TestStreamAndRestoreToTime streams the binary log while rows are written
// before and after a time T, kills the server in the middle (the stream
// breaks, and resumes from the last complete file without a gap or a
// duplicate), and restores a logical set taken before T rolled forward to
// T, in a non-UTC time zone: the target holds exactly the rows of T.
func TestStreamAndRestoreToTime(t *testing.T) {
	t.Setenv("TZ", "America/New_York") // --stop-datetime must still be read as UTC
	srv, inst := rowServer(t)
	e := newEngine(t)
	root := srv.DB(t, "")
	mustExec(t, root, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARBINARY(20) NULL, s VARCHAR(20) CHARACTER SET utf8mb4 NULL)",
		"INSERT INTO shop.t VALUES (1, 'base', 'base')", "CREATE DATABASE other", "CREATE TABLE other.o (id INT PRIMARY KEY)")

	spool, queue := t.TempDir(), t.TempDir()
	sink := &collectSink{dir: queue}
	stream := func(resume *rdsbackup.LogFile) (stop func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- e.StreamLogs(ctx, inst, rdsbackup.StreamSpec{SpoolDir: spool, ServerID: 4000000001, Resume: resume}, sink)
		}()
		return func() error { cancel(); return <-done }
	}
	stop := stream(nil)

	// The base set, with a position per database.
	fs := newFileSink(t)
	res, err := e.Backup(context.Background(), inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, fs)
	if err != nil {
		t.Fatal(err)
	}
	if p := res.LogPositions["shop"]; p.File == "" || p.Offset < 4 {
		t.Fatalf("positions %+v", res.LogPositions)
	}
	setEnd := time.Now()

	mustExec(t, root, "INSERT INTO shop.t VALUES (2, NULL, 'ünïcødé ✓')", "INSERT INTO shop.t VALUES (3, X'00FF10', NULL)", "INSERT INTO other.o VALUES (1)",
		"FLUSH BINARY LOGS", "UPDATE shop.t SET s = 'changed' WHERE id = 1")
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	mustExec(t, root, "INSERT INTO shop.t VALUES (4, 'after', 'after')")

	// The server is killed: the stream breaks and resumes, once the
	// server is back, after the last complete file.
	waitFor(t, "the first complete file", func() bool { return len(sink.files()) >= 1 })
	srv.Kill()
	if err := stop(); err == nil {
		t.Log("the stream had not noticed the kill yet")
	} else {
		t.Logf("the stream broke: %v", err)
	}
	srv.Start(t)
	root = srv.DB(t, "")
	got := sink.files()
	last := got[len(got)-1]
	resume := &rdsbackup.LogFile{Name: last.Name, Seq: last.Seq, EndTime: last.EndTime}
	stop = stream(resume)
	mustExec(t, root, "DELETE FROM shop.t WHERE id = 2", "DROP TABLE other.o", "FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
	waitFor(t, "the files after the restart", func() bool { return len(sink.files()) >= len(got)+3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	files := sink.files()
	for i := 1; i < len(files); i++ {
		if files[i].Seq != files[i-1].Seq+1 {
			t.Errorf("files %s then %s: a gap or a duplicate", files[i-1].Name, files[i].Name)
		}
	}
	if len(sink.gaps) != 0 {
		t.Errorf("gaps: %+v", sink.gaps)
	}
	for _, f := range files {
		if f.BeginTime.IsZero() || f.EndTime.Before(f.BeginTime) || f.RawSize < 100 {
			t.Errorf("file %+v", f)
		}
		st, err := os.Stat(f.Path)
		if err != nil || st.Size() != f.RawSize {
			t.Errorf("file %s: size %v, reported %d", f.Name, st, f.RawSize)
		}
	}
	if files[0].BeginTime.After(setEnd) {
		t.Errorf("the first file begins at %v, after the set", files[0].BeginTime)
	}

	// Restore to T into another server, shop under a new name.
	dst := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "dst pw"})
	var logs []*rdsbackup.LogFile
	for _, f := range files {
		logs = append(logs, &rdsbackup.LogFile{Name: f.Name, Seq: f.Seq, BeginTime: f.BeginTime, EndTime: f.EndTime, RawSize: f.RawSize})
	}
	set := &rdsbackup.BackupSet{ID: 1, Method: rdsbackup.MethodLogical}
	for i, p := range fs.parts {
		set.Artifacts = append(set.Artifacts, rdsbackup.Artifact{Database: p.part.Name, Kind: p.part.Kind, Offset: int64(i)})
	}
	req := rdsbackup.PointInTimeRequest{
		Source: inst, Target: &rdsbackup.Instance{ID: "rm-dst", Engine: rdsbackup.EngineMariaDB, DSN: dst.DSN("")},
		WorkDir: t.TempDir(), Set: set, Positions: res.LogPositions, Logs: logs, Time: target,
		Databases: map[string]string{"shop": "shop_at_t", "other": "other"},
		OpenPart: func(ctx context.Context, a rdsbackup.Artifact) (io.ReadCloser, error) {
			return fs.open(t, int(a.Offset)), nil
		},
		OpenLog: func(ctx context.Context, f *rdsbackup.LogFile) (io.ReadCloser, error) {
			return os.Open(filepath.Join(queue, f.Name))
		},
	}
	var pcts []int
	if err := e.RestoreToTime(context.Background(), req, func(p int) { pcts = append(pcts, p) }); err != nil {
		t.Fatal(err)
	}
	if len(pcts) == 0 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress %v", pcts)
	}
	rows := dst.DB(t, "")
	var list []string
	r, err := rows.Query("SELECT id, COALESCE(HEX(v), 'NULL'), COALESCE(s, 'NULL') FROM shop_at_t.t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id int
		var v, s string
		if err := r.Scan(&id, &v, &s); err != nil {
			t.Fatal(err)
		}
		list = append(list, strings.Join([]string{string(rune('0' + id)), v, s}, "|"))
	}
	want := []string{"1|62617365|changed", "2|NULL|ünïcødé ✓", "3|00FF10|NULL"}
	if strings.Join(list, "\n") != strings.Join(want, "\n") {
		t.Errorf("shop at T:\n%s\nwant\n%s", strings.Join(list, "\n"), strings.Join(want, "\n"))
	}
	var n int
	if err := rows.QueryRow("SELECT COUNT(*) FROM other.o").Scan(&n); err != nil || n != 1 {
		t.Errorf("other.o at T: %d rows, %v", n, err)
	}

	// A second restore under an existing name is refused before writing.
	err = e.RestoreToTime(context.Background(), req, nil)
	if rdsbackup.ErrorCode(err) != rdsbackup.ECONFLICT {
		t.Errorf("restore over existing databases: %v", err)
	}
}

// TestStreamGapAfterPurge: binary logs purged on the server while the
// stream was down are reported as a gap, and the stream goes on from the
// oldest file the server still has.
func TestStreamGapAfterPurge(t *testing.T) {
	t.Parallel()
	srv, inst := rowServer(t)
	e := newEngine(t)
	root := srv.DB(t, "")
	spool := t.TempDir()
	sink := &collectSink{dir: t.TempDir()}
	run := func(resume *rdsbackup.LogFile) func() error {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- e.StreamLogs(ctx, inst, rdsbackup.StreamSpec{SpoolDir: spool, ServerID: 4000000002, Resume: resume}, sink)
		}()
		return func() error { cancel(); return <-done }
	}
	stop := run(nil)
	// A stream without a resume point starts at the server's current file:
	// write only once it is connected, or a flush could get there first.
	waitFor(t, "the stream to connect", func() bool {
		var n int
		return root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'").Scan(&n) == nil && n > 0
	})
	mustExec(t, root, "CREATE DATABASE g", "CREATE TABLE g.t (id INT PRIMARY KEY)", "INSERT INTO g.t VALUES (1)", "FLUSH BINARY LOGS")
	waitFor(t, "a complete file", func() bool { return len(sink.files()) >= 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	last := sink.files()[len(sink.files())-1]
	mustExec(t, root, "INSERT INTO g.t VALUES (2)", "FLUSH BINARY LOGS", "INSERT INTO g.t VALUES (3)", "FLUSH BINARY LOGS")
	var current string
	var pos any
	var a, b, c any
	if err := root.QueryRow("SHOW MASTER STATUS").Scan(&current, &pos, &a, &b); err != nil {
		if err := root.QueryRow("SHOW MASTER STATUS").Scan(&current, &pos, &a, &b, &c); err != nil {
			t.Fatal(err)
		}
	}
	// The server keeps files a connected replica reads: wait until the
	// killed stream's dump thread is gone.
	waitFor(t, "the dump thread to end", func() bool {
		var n int
		root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'").Scan(&n)
		return n == 0
	})
	// A file the storage engine has not checkpointed yet is kept: try
	// until the purge takes.
	waitFor(t, "the purge", func() bool {
		mustExec(t, root, "PURGE BINARY LOGS TO '"+current+"'")
		var first string
		var size any
		err := root.QueryRow("SHOW BINARY LOGS").Scan(&first, &size)
		return err == nil && first == current
	})
	stop = run(&rdsbackup.LogFile{Name: last.Name, Seq: last.Seq, EndTime: last.EndTime})
	mustExec(t, root, "INSERT INTO g.t VALUES (4)", "FLUSH BINARY LOGS")
	waitFor(t, "a file after the gap", func() bool { return len(sink.files()) >= 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	next := sink.complete[1]
	if len(sink.gaps) != 1 || sink.gaps[0].AfterSeq != last.Seq || sink.gaps[0].BeforeSeq != next.Seq || next.Seq <= last.Seq+1 ||
		!strings.Contains(sink.gaps[0].Reason, "removed from the server") {
		t.Errorf("gaps %+v; files %s then %s", sink.gaps, last.Name, next.Name)
	}
	if next.Name != current {
		t.Errorf("resumed at %s, want the oldest file left, %s", next.Name, current)
	}
}

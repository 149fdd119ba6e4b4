//go:build linux

package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// shopRows lists shop.t as id|hex(v)|s, NULL as "NULL".
func shopRows(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	r, err := db.Query("SELECT id, COALESCE(HEX(v), 'NULL'), COALESCE(s, 'NULL') FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var list []string
	for r.Next() {
		var id int
		var v, s string
		if err := r.Scan(&id, &v, &s); err != nil {
			t.Fatal(err)
		}
		list = append(list, fmt.Sprintf("%d|%s|%s", id, v, s))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(list, "\n")
}

// checkWritten checks that table holds ids 1 to n.
func checkWritten(t *testing.T, db *sql.DB, table string, n int) {
	t.Helper()
	var count, low, high int
	if err := db.QueryRow("SELECT COUNT(*), COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM "+table).Scan(&count, &low, &high); err != nil {
		t.Fatal(err)
	}
	if count != n || low != 1 || high != n {
		t.Errorf("%s: %d rows, ids %d to %d; %d were written", table, count, low, high, n)
	}
}

// TestPhysicalPositionAndRestoreToTime: a physical set taken while rows
// are written records the binary log position of its consistent point,
// and rolled forward from there to a time T between two writes, in a
// non-UTC time zone, it holds every row written before T, once, and none
// after: into a data directory (a server started on it afterwards) and
// into a target instance under a new name.
func TestPhysicalPositionAndRestoreToTime(t *testing.T) {
	requireTool(t, "mariadb-backup", "mariadb-backup")
	t.Setenv("TZ", "America/New_York") // --stop-datetime must still be read as UTC
	srv, inst := rowServer(t)
	e := newEngine(t)
	root := srv.DB(t, "")
	mustExec(t, root, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARBINARY(20) NULL, s VARCHAR(20) CHARACTER SET utf8mb4 NULL)",
		"INSERT INTO shop.t VALUES (0, 'base', 'base')")

	spool, queue := t.TempDir(), t.TempDir()
	sink := &collectSink{dir: queue}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.StreamLogs(ctx, inst, rdsbackup.StreamSpec{SpoolDir: spool, ServerID: 4000000003}, sink)
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	waitFor(t, "the stream to connect", func() bool {
		var n int
		return root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'").Scan(&n) == nil && n > 0
	})

	// Rows keep coming while the backup runs: the restores below hold each
	// exactly once only if the set's position is its consistent point (a
	// row replayed twice fails the replay on its key; one missed fails the
	// comparison).
	mustExec(t, root, "CREATE TABLE shop.w (id INT PRIMARY KEY)")
	var before rdsbackup.LogPosition
	if err := root.QueryRow("SHOW MASTER STATUS").Scan(&before.File, &before.Offset, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	stopWriter := make(chan struct{})
	written := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stopWriter:
				written <- n
				return
			default:
			}
			if _, err := root.Exec("INSERT INTO shop.w VALUES (?)", n+1); err != nil {
				t.Errorf("insert %d: %v", n+1, err)
				written <- n
				return
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	fs := newFileSink(t)
	res, err := e.Backup(context.Background(), inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, fs)
	time.Sleep(200 * time.Millisecond)
	close(stopWriter)
	nw := <-written
	if err != nil {
		t.Fatal(err)
	}
	var after rdsbackup.LogPosition
	if err := root.QueryRow("SHOW MASTER STATUS").Scan(&after.File, &after.Offset, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	got := res.LogPositions["instance"]
	if len(res.LogPositions) != 1 || got.File != before.File || got.File != after.File || got.Offset <= before.Offset || got.Offset >= after.Offset || got.GTID == "" {
		t.Fatalf("positions %+v; the server was at %+v before the backup, %+v after", res.LogPositions, before, after)
	}
	file := got.File
	t.Logf("%d rows written during the backup; position %+v", nw, got)
	if nw < 50 {
		t.Fatalf("only %d rows written while the backup ran", nw)
	}

	// After the backup: rows at t1 and t2, an account, then T, then t3.
	mustExec(t, root, "INSERT INTO shop.t VALUES (1, NULL, 'ünïcødé ✓')", "CREATE USER 'late'@'%' IDENTIFIED BY 'late pw'", "FLUSH BINARY LOGS")
	time.Sleep(1100 * time.Millisecond)
	mustExec(t, root, "INSERT INTO shop.t VALUES (2, X'00FF10', NULL)", "UPDATE shop.t SET s = 'changed' WHERE id = 0")
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	mustExec(t, root, "INSERT INTO shop.t VALUES (3, 'after', 'after')", "FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
	waitFor(t, "the complete files", func() bool { return len(sink.files()) >= 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var logs []*rdsbackup.LogFile
	for _, f := range sink.files() {
		logs = append(logs, &rdsbackup.LogFile{Name: f.Name, Seq: f.Seq, BeginTime: f.BeginTime, EndTime: f.EndTime, RawSize: f.RawSize})
	}
	if logs[0].Name != file {
		t.Fatalf("the first file streamed is %s, the set's position is in %s", logs[0].Name, file)
	}
	set := &rdsbackup.BackupSet{ID: 7, Method: rdsbackup.MethodPhysical, DBNames: res.Databases,
		Artifacts: []rdsbackup.Artifact{{Database: "instance", Kind: rdsbackup.PartPhysical}}}
	base := rdsbackup.PointInTimeRequest{
		Source: inst, Set: set, Positions: res.LogPositions, Logs: logs, Time: target,
		OpenPart: func(ctx context.Context, a rdsbackup.Artifact) (io.ReadCloser, error) { return fs.open(t, 0), nil },
		OpenLog: func(ctx context.Context, f *rdsbackup.LogFile) (io.ReadCloser, error) {
			return os.Open(filepath.Join(queue, f.Name))
		},
	}
	const atT = "0|62617365|changed\n1|NULL|ünïcødé ✓\n2|00FF10|NULL"

	// Into a data directory, then a server started on it.
	req := base
	req.WorkDir = t.TempDir()
	req.DataDir = filepath.Join(t.TempDir(), "restored")
	var pcts []int
	if err := e.RestoreToTime(context.Background(), req, func(p int) { pcts = append(pcts, p) }); err != nil {
		t.Fatal(err)
	}
	if len(pcts) == 0 || pcts[len(pcts)-1] != 100 {
		t.Errorf("progress %v", pcts)
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
	restored := startOnDataDir(t, req.DataDir, srv.Password)
	rdb := openDB(t, restored.dsn(srv.Password, ""))
	if got := shopRows(t, rdb, "shop.t"); got != atT {
		t.Errorf("data directory at T:\n%s\nwant\n%s", got, atT)
	}
	checkWritten(t, rdb, "shop.w", nw)
	var users string
	if err := rdb.QueryRow("SELECT GROUP_CONCAT(User ORDER BY User) FROM mysql.user WHERE User IN ('late', 'rdsbackup_restore')").Scan(&users); err != nil || users != "late" {
		t.Errorf("accounts late and rdsbackup_restore in the restored instance: %q, %v", users, err)
	}

	// Into a target instance, under a new name.
	dst := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "dst pw"})
	req = base
	req.WorkDir = t.TempDir()
	req.Target = &rdsbackup.Instance{ID: "rm-dst", Engine: rdsbackup.EngineMariaDB, DSN: dst.DSN("")}
	req.Databases = map[string]string{"shop": "shop_at_t"}
	if err := e.RestoreToTime(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if got := shopRows(t, dst.DB(t, ""), "shop_at_t.t"); got != atT {
		t.Errorf("target at T:\n%s\nwant\n%s", got, atT)
	}
	checkWritten(t, dst.DB(t, ""), "shop_at_t.w", nw)

	// The set as it is (RecoveryDBInstance with BackupId): no replay, no
	// position needed.
	asIs := req
	asIs.Time, asIs.Logs, asIs.Positions = time.Time{}, nil, nil
	asIs.WorkDir = t.TempDir()
	asIs.Databases = map[string]string{"shop": "shop_as_set"}
	if err := e.RestoreToTime(context.Background(), asIs, nil); err != nil {
		t.Fatal(err)
	}
	if got := shopRows(t, dst.DB(t, ""), "shop_as_set.t"); got != "0|62617365|base" {
		t.Errorf("the set as it is:\n%s", got)
	}

	// Refused before anything is written: an existing name; a set without
	// a position.
	if err := e.RestoreToTime(context.Background(), req, nil); rdsbackup.ErrorCode(err) != rdsbackup.ECONFLICT {
		t.Errorf("restore over an existing database: %v", err)
	}
	req.Databases = map[string]string{"shop": "shop_again"}
	req.Positions = nil
	if err := e.RestoreToTime(context.Background(), req, nil); rdsbackup.ErrorCode(err) != rdsbackup.EPITRNotCovered {
		t.Errorf("a set without a position: %v", err)
	}
}

//go:build linux

package mysql_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
)

func newEngine(t *testing.T) *mysql.Engine {
	return &mysql.Engine{Flavor: rdsbackup.EngineMariaDB, TempDir: t.TempDir()}
}

func sharedInstance(t *testing.T) (*enginetest.MariaDB, *rdsbackup.Instance) {
	srv := enginetest.SharedMariaDB(t)
	logOnFailure(t, srv)
	return srv, &rdsbackup.Instance{ID: "rm-shared", Engine: rdsbackup.EngineMariaDB, DSN: srv.DSN("")}
}

func TestProbe(t *testing.T) {
	t.Parallel()
	srv, inst := sharedInstance(t)
	var full string
	if err := srv.DB(t, "").QueryRow("SELECT VERSION()").Scan(&full); err != nil {
		t.Fatal(err)
	}
	info, err := newEngine(t).Probe(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(full, info.Version+".") || strings.Count(info.Version, ".") != 1 {
		t.Errorf("Version = %q for VERSION() %q", info.Version, full)
	}
	if info.HostID != "1" {
		t.Errorf("HostID = %q, want the server id 1", info.HostID)
	}

	// Over the server's Unix socket too.
	sock := &rdsbackup.Instance{ID: "rm-socket", DSN: dsn("root", srv.Password, "unix", srv.Socket)}
	if info2, err := newEngine(t).Probe(context.Background(), sock); err != nil || info2 != info {
		t.Errorf("Probe over the socket = %+v, %v; want %+v", info2, err, info)
	}
	// The tools connect over the socket as well.
	name := srv.NewDatabase(t)
	if _, err := srv.DB(t, name).Exec("CREATE TABLE t (a INT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	sink := newFileSink(t)
	if _, err := newEngine(t).Backup(context.Background(), sock, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{name}}, sink); err != nil {
		t.Fatalf("Backup over the socket: %v", err)
	}
	if dump, _ := os.ReadFile(sink.parts[0].path); !strings.Contains(string(dump), "CREATE TABLE `t`") {
		t.Errorf("dump over the socket:\n%s", dump)
	}
}

func TestDatabasesAndEstimateSize(t *testing.T) {
	t.Parallel()
	srv, inst := sharedInstance(t)
	big, small := srv.NewDatabase(t), srv.NewDatabase(t)
	enginetest.FillMariaDB(t, srv.DB(t, big), 1000)
	enginetest.FillMariaDB(t, srv.DB(t, small), 10)
	e := newEngine(t)
	ctx := context.Background()

	dbs, err := e.Databases(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{big, small} {
		if !slices.Contains(dbs, want) {
			t.Errorf("Databases = %q, missing %s", dbs, want)
		}
	}
	for _, sys := range []string{"mysql", "information_schema", "performance_schema", "sys"} {
		if slices.Contains(dbs, sys) {
			t.Errorf("Databases lists the system schema %s", sys)
		}
	}
	if !slices.IsSorted(dbs) {
		t.Errorf("Databases not sorted: %q", dbs)
	}

	size := func(req rdsbackup.BackupRequest) int64 {
		t.Helper()
		n, err := e.EstimateSize(ctx, inst, req)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	nBig := size(rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{big}})
	nSmall := size(rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{small}})
	nBoth := size(rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{big, small}})
	nAll := size(rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical})
	nPhysical := size(rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical})
	t.Logf("estimates: big %d, small %d, both %d, all %d, physical %d", nBig, nSmall, nBoth, nAll, nPhysical)
	// The 1000-row fill holds a 256 KiB blob and more than 300 KiB of notes.
	// InnoDB refreshes its statistics in the background, so sums are only
	// about equal.
	about := func(a, b int64) bool { return a >= b*3/4 && a <= b*5/4 }
	if nBig < 512<<10 || nSmall <= 0 || nBig <= nSmall || !about(nBoth, nBig+nSmall) {
		t.Errorf("estimates: big %d, small %d, both %d", nBig, nSmall, nBoth)
	}
	if nAll < nBoth*3/4 || nPhysical <= nBoth {
		t.Errorf("estimates: all user databases %d, physical %d, the two %d", nAll, nPhysical, nBoth)
	}

	// A database that is not there.
	_, err = e.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{"no_such_db"}}, newFileSink(t))
	if rdsbackup.ErrorCode(err) != rdsbackup.EDBNameNotFound {
		t.Errorf("backup of a missing database: %v", err)
	}
}

// TestLogicalRoundTrip dumps three databases (a full sample, a small one and
// an empty one), restores each into a second server, once more under another
// name, and compares the contents.
func TestLogicalRoundTrip(t *testing.T) {
	t.Parallel()
	src, inst := sharedInstance(t)
	full, small, empty := src.NewDatabase(t), src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, full), 2000)
	enginetest.FillMariaDB(t, src.DB(t, small), 20)
	dst := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "dst pw;#\\'\" x"})
	logOnFailure(t, dst)

	e := newEngine(t)
	sink := newFileSink(t)
	checked := false
	sink.During = func(part rdsbackup.Part) error {
		if part.Name == full {
			// The dump of the big database cannot have finished: its
			// output is larger than the pipe.
			p := childTool(t, "mariadb-dump", e.TempDir)
			checkOptionFile(t, p, src.Password)
			if !slices.Contains(p.argv, full) || slices.Contains(p.argv, "--databases") {
				t.Errorf("dump command line %q", p.argv)
			}
			checked = true
		}
		return nil
	}
	before := time.Now().Unix()
	res, err := e.Backup(context.Background(), inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{full, small, empty}}, sink)
	after := time.Now().Unix()
	if err != nil {
		t.Fatal(err)
	}
	if !checked {
		t.Error("the running dump was not inspected")
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
	if want := []string{full, small, empty}; !slices.Equal(res.Databases, want) {
		t.Errorf("Databases = %q, want %q", res.Databases, want)
	}
	if res.ConsistentTime < before-1 || res.ConsistentTime > after+1 {
		t.Errorf("ConsistentTime %d not within [%d, %d]", res.ConsistentTime, before, after)
	}
	if res.Info.Version == "" || res.Info.HostID != "1" {
		t.Errorf("Info = %+v", res.Info)
	}
	if len(sink.parts) != 3 {
		t.Fatalf("%d parts, want 3", len(sink.parts))
	}
	for i, name := range []string{full, small, empty} {
		p := sink.parts[i]
		if p.part != (rdsbackup.Part{Name: name, Kind: rdsbackup.PartDatabase}) {
			t.Errorf("part %d = %+v", i, p.part)
		}
		t.Logf("part %s: %d bytes", name, p.size)
	}
	head := make([]byte, 512)
	n, _ := sink.open(t, 0).Read(head)
	lines := strings.SplitN(string(head[:n]), "\n", 4)
	if strings.HasPrefix(lines[0], "/*M!") {
		lines = lines[1:] // MariaDB's sandbox line stays first
	}
	if lines[0] != "-- rdsbackup: the default character set and collation of the dumped database" ||
		lines[1] != "/*!40101 ALTER DATABASE CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci */;" {
		t.Errorf("the dump starts with\n%s", head[:n])
	}

	dstDSN := dst.DSN("")
	for i, name := range []string{full, small, empty} {
		if err := e.RestoreLogical(context.Background(), dstDSN, name, sink.open(t, i)); err != nil {
			t.Fatalf("restore %s: %v", name, err)
		}
		want := enginetest.MariaDBContents(t, src.DB(t, name))
		if d := enginetest.DiffContents(want, enginetest.MariaDBContents(t, dst.DB(t, name))); d != "" {
			t.Errorf("restored %s differs:\n%s", name, d)
		}
	}
	// Under another name, into a database that exists but is empty.
	const renamed = "renamed db-ü"
	if _, err := dst.DB(t, "").Exec("CREATE DATABASE `" + renamed + "`"); err != nil {
		t.Fatal(err)
	}
	if err := e.RestoreLogical(context.Background(), dstDSN, renamed, sink.open(t, 0)); err != nil {
		t.Fatalf("restore under another name: %v", err)
	}
	want := enginetest.MariaDBContents(t, src.DB(t, full))
	if d := enginetest.DiffContents(want, enginetest.MariaDBContents(t, dst.DB(t, renamed))); d != "" {
		t.Errorf("restored under another name differs:\n%s", d)
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary directory after restores: %v", left)
	}
}

// TestRestoreLogicalTarget covers the target database: refused when it
// holds objects unless forced, dropped again when a restore into a new
// database fails.
func TestRestoreLogicalTarget(t *testing.T) {
	t.Parallel()
	srv, inst := sharedInstance(t)
	name := srv.NewDatabase(t)
	enginetest.FillMariaDB(t, srv.DB(t, name), 20)
	want := enginetest.MariaDBContents(t, srv.DB(t, name))
	e := newEngine(t)
	ctx := context.Background()
	sink := newFileSink(t)
	if _, err := e.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{name}}, sink); err != nil {
		t.Fatal(err)
	}

	err := e.RestoreLogical(ctx, inst.DSN, name, sink.open(t, 0))
	if rdsbackup.ErrorCode(err) != rdsbackup.ECONFLICT {
		t.Fatalf("restore into a database with tables: %v, want %s", err, rdsbackup.ECONFLICT)
	}
	if err := e.RestoreLogicalWith(ctx, inst.DSN, name, sink.open(t, 0), mysql.RestoreOptions{Force: true}); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	if d := enginetest.DiffContents(want, enginetest.MariaDBContents(t, srv.DB(t, name))); d != "" {
		t.Errorf("after a forced restore over itself:\n%s", d)
	}

	admin := openDB(t, srv.DSN(""))
	fresh := name + "_bad"
	dropLater(t, admin, fresh)
	err = e.RestoreLogical(ctx, inst.DSN, fresh, strings.NewReader("CREATE TABLE ok (a INT);\nTHIS IS NOT SQL;\n"))
	var te *mysql.ToolError
	if !errors.As(err, &te) || te.Tool != "mariadb" || te.ExitCode() != 1 || !strings.Contains(err.Error(), "ERROR 1064") {
		t.Fatalf("restore of a broken dump: %v", err)
	}
	if strings.Contains(err.Error(), srv.Password) {
		t.Errorf("the error holds the password: %v", err)
	}
	var n int
	if err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", fresh).Scan(&n); err != nil || n != 0 {
		t.Errorf("the database of the failed restore is still there (%d, %v)", n, err)
	}
}

// TestWrongPassword: every call fails with the server's refusal, naming the
// instance, without the password.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	srv, _ := sharedInstance(t)
	const bad = "not-the-password-Zq9#"
	inst := &rdsbackup.Instance{ID: "rm-badpw", DSN: dsn("root", bad, "tcp", srv.Host+":"+strconv.Itoa(srv.Port))}
	e := newEngine(t)
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded", what)
		}
		msg := err.Error()
		if !strings.Contains(msg, "connect to rm-badpw") || !strings.Contains(msg, "Access denied for user 'root'") {
			t.Errorf("%s: unclear error %q", what, msg)
		}
		if strings.Contains(msg, bad) || strings.Contains(msg, srv.Password) {
			t.Errorf("%s: the error holds the password: %q", what, msg)
		}
	}
	_, err := e.Probe(ctx, inst)
	check("Probe", err)
	_, err = e.Databases(ctx, inst)
	check("Databases", err)
	_, err = e.EstimateSize(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical})
	check("EstimateSize", err)
	_, err = e.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, newFileSink(t))
	check("Backup", err)
	if _, err := exec.LookPath("mariadb-backup"); err == nil {
		_, err = e.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, newFileSink(t))
		check("physical Backup", err)
	}
	err = e.RestoreLogical(ctx, inst.DSN, "x", strings.NewReader(""))
	if err == nil || !strings.Contains(err.Error(), "Access denied") || strings.Contains(err.Error(), bad) {
		t.Errorf("RestoreLogical: %v", err)
	}
}

// TestAbortMidDump stops a dump of a large table halfway, by cancelling the
// context and by a sink that fails: Backup returns promptly and no process
// of the tool's group is left.
func TestAbortMidDump(t *testing.T) {
	t.Parallel()
	srv, inst := sharedInstance(t)
	name := srv.NewDatabase(t)
	makeBigTable(t, srv.DB(t, name), 8)
	req := rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{name}}
	errSink := errors.New("storage is full")

	for _, mode := range []string{"cancel", "sink error", "sink stops early"} {
		t.Run(mode, func(t *testing.T) {
			e := newEngine(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sink := newFileSink(t)
			var pid int
			var stopped time.Time
			sink.During = func(rdsbackup.Part) error {
				pid = childTool(t, "mariadb-dump", e.TempDir).pid
				stopped = time.Now()
				switch mode {
				case "cancel":
					cancel()
					return nil // and read on: the reader must end
				case "sink error":
					return errSink
				}
				return errStop
			}
			_, err := e.Backup(ctx, inst, req, sink)
			took := time.Since(stopped)
			switch {
			case pid == 0:
				t.Fatalf("the dump was not seen running: %v", err)
			case mode == "cancel" && !errors.Is(err, context.Canceled):
				t.Errorf("Backup after cancel: %v", err)
			case mode == "sink error" && !errors.Is(err, errSink):
				t.Errorf("Backup with a failing sink: %v", err)
			case mode == "sink stops early" && (err == nil || !strings.Contains(err.Error(), "before the end")):
				t.Errorf("Backup with a sink that stops early: %v", err)
			}
			if took > 5*time.Second {
				t.Errorf("Backup returned %v after the abort", took)
			}
			if left := groupMembers(pid); len(left) > 0 {
				t.Errorf("processes left in the dump's group: %+v", left)
			}
			if _, alive := readProc(pid); alive {
				t.Errorf("the dump (pid %d) is still there", pid)
			}
			if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
				t.Errorf("left in the temporary directory: %v", left)
			}
		})
	}
}

// errStop makes the fileSink return nil without reading the rest, as a
// broken sink might.
var errStop = errors.New("stop")

// TestServerKilledMidDump kills the server while a large table is dumped:
// the bytes that flowed do not make the backup a success.
func TestServerKilledMidDump(t *testing.T) {
	t.Parallel()
	srv := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{})
	name := srv.NewDatabase(t)
	makeBigTable(t, srv.DB(t, name), 32)
	inst := &rdsbackup.Instance{ID: "rm-killed", DSN: srv.DSN("")}
	e := newEngine(t)
	sink := newFileSink(t)
	sink.During = func(rdsbackup.Part) error {
		srv.Kill()
		return nil
	}
	_, err := e.Backup(context.Background(), inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{name}}, sink)
	var te *mysql.ToolError
	if !errors.As(err, &te) || te.Tool != "mariadb-dump" || te.ExitCode() <= 0 {
		t.Fatalf("Backup with the server killed: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "mariadb-dump: exit status") || !strings.Contains(msg, "Lost connection") || !strings.Contains(msg, name) {
		t.Errorf("unclear error: %s", msg)
	}
	t.Logf("error: %v", err)
}

func TestUnsupported(t *testing.T) {
	// Not parallel: it changes PATH.
	ctx := context.Background()
	inst := &rdsbackup.Instance{ID: "rm-x", DSN: "root:pw@tcp(127.0.0.1:1)/"}
	e := &mysql.Engine{Flavor: rdsbackup.EngineMariaDB}

	_, err := e.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodSnapshot}, newFileSink(t))
	if rdsbackup.ErrorCode(err) != rdsbackup.EUnsupportedMethod {
		t.Errorf("Snapshot: %v", err)
	}
	_, err = e.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical, Databases: []string{"a"}}, newFileSink(t))
	if rdsbackup.ErrorCode(err) != rdsbackup.EInvalidCombination {
		t.Errorf("Physical of one database: %v", err)
	}
	if _, err := exec.LookPath("mariadb-backup"); err == nil {
		remote := &rdsbackup.Instance{ID: "rm-remote", DSN: "root:pw@tcp(192.0.2.1:3306)/"}
		_, err = e.Backup(ctx, remote, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, newFileSink(t))
		if rdsbackup.ErrorCode(err) != rdsbackup.EUnsupportedMethod || !strings.Contains(err.Error(), "database host") {
			t.Errorf("Physical of a remote server: %v", err)
		}
	}

	t.Setenv("PATH", t.TempDir())
	my := &mysql.Engine{Flavor: rdsbackup.EngineMySQL}
	_, err = my.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, newFileSink(t))
	if rdsbackup.ErrorCode(err) != rdsbackup.EUnsupportedMethod || !strings.Contains(err.Error(), "xtrabackup is not installed") {
		t.Errorf("Physical of MySQL without xtrabackup: %v", err)
	}
	_, err = my.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, newFileSink(t))
	if err == nil || !strings.Contains(err.Error(), "mysqldump is not installed") {
		t.Errorf("Logical without a dump tool: %v", err)
	}
}

// TestPhysicalRoundTrip backs up a server with mariadb-backup, restores the
// stream into a new directory, starts a server on it and compares contents.
func TestPhysicalRoundTrip(t *testing.T) {
	t.Parallel()
	requireTool(t, "mariadb-backup", "mariadb-backup")
	const pw = "phys pw;#\"'\\x"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 7, LogBin: true, RootPassword: pw})
	logOnFailure(t, src)
	name := src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, name), 1000)
	want := enginetest.MariaDBContents(t, src.DB(t, name))
	inst := &rdsbackup.Instance{ID: "rm-phys", DSN: src.DSN("")}

	e := newEngine(t)
	sink := newFileSink(t)
	sink.During = func(rdsbackup.Part) error {
		p := childTool(t, "mariadb-backup", e.TempDir)
		checkOptionFile(t, p, pw)
		return nil
	}
	before := time.Now().Unix()
	res, err := e.Backup(context.Background(), inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.parts) != 1 || sink.parts[0].part != (rdsbackup.Part{Name: "instance", Kind: rdsbackup.PartPhysical}) {
		t.Fatalf("parts %+v", sink.parts)
	}
	if !slices.Equal(res.Databases, []string{name}) || res.Info.HostID != "7" || res.ConsistentTime < before-1 || res.ConsistentTime > time.Now().Unix()+1 {
		t.Errorf("result %+v", res)
	}
	// Nothing was written since: the set's position is the server's.
	var at rdsbackup.LogPosition
	if err := src.DB(t, "").QueryRow("SELECT @@gtid_binlog_pos").Scan(&at.GTID); err != nil {
		t.Fatal(err)
	}
	if err := src.DB(t, "").QueryRow("SHOW MASTER STATUS").Scan(&at.File, &at.Offset, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	if got := res.LogPositions["instance"]; got != at || len(res.LogPositions) != 1 {
		t.Errorf("positions %+v, want instance: %+v", res.LogPositions, at)
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
	t.Logf("stream: %d bytes", sink.parts[0].size)

	dir := filepath.Join(t.TempDir(), "restored")
	if err := e.RestorePhysical(context.Background(), sink.open(t, 0), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "xtrabackup_binlog_info")); err != nil {
		t.Errorf("no binlog position: %v", err)
	}
	// A directory that is not empty is refused, and left alone.
	err = e.RestorePhysical(context.Background(), sink.open(t, 0), dir)
	if rdsbackup.ErrorCode(err) != rdsbackup.ECONFLICT {
		t.Errorf("restore into a non-empty directory: %v", err)
	}

	restored := startOnDataDir(t, dir, pw)
	got := enginetest.MariaDBContents(t, openDB(t, restored.dsn(pw, name)))
	if d := enginetest.DiffContents(want, got); d != "" {
		t.Errorf("restored server differs:\n%s", d)
	}
}

// TestRestorePhysicalBrokenStream: a stream that is not an xbstream fails
// and leaves the directory as empty as it was.
func TestRestorePhysicalBrokenStream(t *testing.T) {
	t.Parallel()
	requireTool(t, "mbstream", "mariadb-backup")
	e := newEngine(t)
	dir := t.TempDir()
	err := e.RestorePhysical(context.Background(), strings.NewReader(strings.Repeat("not an xbstream\n", 1000)), dir)
	if err == nil || !strings.Contains(err.Error(), "mbstream") {
		t.Fatalf("restore of garbage: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left in the directory: %v", left)
	}
}

package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
)

func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// tools are the tools the engine runs.
var tools = []string{"pg_dump", "pg_dumpall", "pg_basebackup", "pg_restore", "psql", "pg_receivewal", "pg_waldump"}

// testEngine is an engine whose tools are wrappers that log their command
// line and PG* environment before running the real tool, and whose private
// temporary directory is checked to be empty at the end of the test.
type testEngine struct {
	*postgres.Engine
	argvLog string
}

func newEngine(t *testing.T) *testEngine {
	t.Helper()
	real, err := enginetest.PostgresBinDir()
	if err != nil {
		t.Skip(err)
	}
	bin := t.TempDir()
	logFile := filepath.Join(bin, "argv.log")
	for _, name := range tools {
		script := fmt.Sprintf("#!/bin/sh\n{ printf '%%s\\n' \"$0\" \"$@\"; env | grep '^PG' | sort; } >> %s\nexec %s \"$@\"\n",
			logFile, filepath.Join(real, name))
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The server finds its share directory from its own path, through
	// symbolic links but not through a script.
	if err := os.Symlink(filepath.Join(real, "postgres"), filepath.Join(bin, "postgres")); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "pgengine-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		left, _ := os.ReadDir(tmp)
		for _, l := range left {
			t.Errorf("left behind in TempDir: %s", l.Name())
		}
		os.RemoveAll(tmp)
	})
	e := &testEngine{
		Engine: &postgres.Engine{
			BinDir:  bin,
			TempDir: tmp,
			Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
		},
		argvLog: logFile,
	}
	return e
}

// checkArgv fails the test when a tool's command line or PG* environment
// held one of the passwords.
func (e *testEngine) checkArgv(t *testing.T, passwords ...string) {
	t.Helper()
	b, err := os.ReadFile(e.argvLog)
	if err != nil {
		t.Fatalf("no tool ran: %v", err)
	}
	for _, pw := range passwords {
		for _, form := range []string{pw, url.QueryEscape(pw), url.PathEscape(pw)} {
			if strings.Contains(string(b), form) {
				t.Errorf("a tool's argv or environment contains the password %q:\n%s", form, b)
			}
		}
	}
	if testing.Verbose() {
		t.Logf("tool log:\n%s", b)
	}
	if !strings.Contains(string(b), "PGPASSFILE=") {
		t.Errorf("the tools got no PGPASSFILE:\n%s", b)
	}
}

func inst(url string) *rdsbackup.Instance {
	return &rdsbackup.Instance{ID: "pg-test", Engine: rdsbackup.EnginePostgreSQL, DSN: url}
}

// savedPart is a part the fileSink kept.
type savedPart struct {
	rdsbackup.Part
	path string
	size int64
}

// fileSink keeps each part in a file. hook, when set, runs after every read
// with the bytes read of the part so far.
type fileSink struct {
	t     *testing.T
	dir   string
	parts []savedPart
	hook  func(part rdsbackup.Part, n int64)
}

func newSink(t *testing.T) *fileSink { return &fileSink{t: t, dir: t.TempDir()} }

func (s *fileSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	p := filepath.Join(s.dir, fmt.Sprintf("%02d-%s", len(s.parts), part.Kind))
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if _, err := f.Write(buf[:m]); err != nil {
				return err
			}
			n += int64(m)
			if s.hook != nil {
				s.hook(part, n)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	s.parts = append(s.parts, savedPart{Part: part, path: p, size: n})
	return f.Close()
}

func (s *fileSink) open(t *testing.T, i int) *os.File {
	t.Helper()
	f, err := os.Open(s.parts[i].path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func exec1(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func contents(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	return enginetest.PostgresContents(t, db)
}

func sameContents(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	if d := enginetest.DiffContents(want, got); d != "" {
		t.Errorf("%s differs from the source:\n%s", what, d)
	}
	if len(want) < 10 {
		t.Errorf("%s: suspiciously few objects compared: %v", what, want)
	}
}

func TestProbeDatabasesEstimate(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	e := newEngine(t)
	ctx := ctxT(t, time.Minute)
	db := srv.NewDatabase(t)
	closed := srv.NewDatabase(t)
	admin := srv.DB(t, "postgres")
	enginetest.FillPostgres(t, srv.DB(t, db), 200)
	exec1(t, admin, `ALTER DATABASE `+closed+` ALLOW_CONNECTIONS false`)

	info, err := e.Probe(ctx, inst(srv.URL("postgres")))
	if err != nil {
		t.Fatal(err)
	}
	var num int
	var sysid string
	if err := admin.QueryRow(`SELECT current_setting('server_version_num')::int, (SELECT system_identifier::text FROM pg_control_system())`).Scan(&num, &sysid); err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(num / 10000); info.Version != want || info.HostID != sysid {
		t.Errorf("Probe = %+v, want version %s, HostID %s", info, want, sysid)
	}

	dbs, err := e.Databases(ctx, inst(srv.URL("postgres")))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dbs, db) || !slices.Contains(dbs, "postgres") {
		t.Errorf("Databases = %v, want %s and postgres among them", dbs, db)
	}
	for _, no := range []string{"template0", "template1", closed} {
		if slices.Contains(dbs, no) {
			t.Errorf("Databases = %v lists %s", dbs, no)
		}
	}
	if !slices.IsSorted(dbs) {
		t.Errorf("Databases = %v, not sorted", dbs)
	}

	var want, all int64
	if err := admin.QueryRow(`SELECT pg_database_size($1), (SELECT sum(pg_database_size(oid))::bigint FROM pg_database)`, db).Scan(&want, &all); err != nil {
		t.Fatal(err)
	}
	got, err := e.EstimateSize(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{db}})
	if err != nil || got != want {
		t.Errorf("EstimateSize(%s) = %d, %v; want %d", db, got, err, want)
	}
	got, err = e.EstimateSize(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical})
	if err != nil || got < all*9/10 || got > all*11/10 {
		t.Errorf("EstimateSize(physical) = %d, %v; want about %d", got, err, all)
	}
	_, err = e.EstimateSize(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{"no_such_db"}})
	if rdsbackup.ErrorCode(err) != rdsbackup.EDBNameNotFound {
		t.Errorf("EstimateSize(no_such_db) error = %v, want %s", err, rdsbackup.EDBNameNotFound)
	}
	_, err = e.Backup(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{closed}}, newSink(t))
	if rdsbackup.ErrorCode(err) != rdsbackup.EDBNameNotFound {
		t.Errorf("Backup(%s, no connections allowed) error = %v, want %s", closed, err, rdsbackup.EDBNameNotFound)
	}
	_, err = e.Probe(ctx, inst("host=127.0.0.1 user=postgres"))
	if err == nil || !strings.Contains(err.Error(), "URL") {
		t.Errorf("Probe(keyword/value DSN) error = %v, want one asking for a URL", err)
	}
}

// TestLogicalRoundTrip backs up two databases and the globals of the shared
// server, restores them into a fresh server with another password, and
// compares the contents.
func TestLogicalRoundTrip(t *testing.T) {
	src := enginetest.SharedPostgres(t)
	e := newEngine(t)
	ctx := ctxT(t, 2*time.Minute)
	admin := src.DB(t, "postgres")
	role := fmt.Sprintf("rdsb_owner_%d", os.Getpid())
	t.Cleanup(func() { admin.Exec(`DROP ROLE IF EXISTS ` + role) }) // after the databases are dropped
	exec1(t, admin, `CREATE ROLE `+role+` LOGIN PASSWORD 'owner pw'`)
	db1, db2 := src.NewDatabase(t), src.NewDatabase(t)
	sdb1, sdb2 := src.DB(t, db1), src.DB(t, db2)
	enginetest.FillPostgres(t, sdb1, 2000)
	enginetest.FillPostgres(t, sdb2, 300)
	exec1(t, sdb1, `ALTER TABLE extra.event_log OWNER TO `+role, `GRANT SELECT ON customers TO `+role)

	sink := newSink(t)
	sawPgpass := false
	sink.hook = func(part rdsbackup.Part, n int64) {
		if sawPgpass {
			return
		}
		// While a tool runs, its password file exists, private.
		files, _ := filepath.Glob(filepath.Join(e.TempDir, "*", ".pgpass"))
		if len(files) != 1 {
			t.Errorf("during the dump: .pgpass files %v, want one", files)
			return
		}
		fi, err := os.Stat(files[0])
		di, err2 := os.Stat(filepath.Dir(files[0]))
		if err != nil || err2 != nil || fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
			t.Errorf(".pgpass mode %v (dir %v), want 0600 in 0700", fi.Mode(), di.Mode())
		}
		sawPgpass = true
	}
	before := time.Now().Unix()
	res, err := e.Backup(ctx, inst(src.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{db1, db2}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Unix()
	if !sawPgpass {
		t.Error("no .pgpass seen during the backup")
	}
	if res.ConsistentTime < before-5 || res.ConsistentTime > after+5 {
		t.Errorf("ConsistentTime = %d, want within [%d, %d]", res.ConsistentTime, before, after)
	}
	if !slices.Equal(res.Databases, []string{db1, db2}) || res.Info.Version == "" || res.Info.HostID == "" {
		t.Errorf("result = %+v", res)
	}
	var kinds []string
	for _, p := range sink.parts {
		kinds = append(kinds, p.Kind+":"+p.Name)
	}
	if want := []string{"globals:globals", "database:" + db1, "database:" + db2}; !slices.Equal(kinds, want) {
		t.Fatalf("parts = %v, want %v", kinds, want)
	}
	globals, _ := os.ReadFile(sink.parts[0].path)
	if !strings.Contains(string(globals), "CREATE ROLE "+role+";") || !strings.Contains(string(globals), "SCRAM-SHA-256") {
		t.Errorf("globals lack role %s or its password:\n%.2000s", role, globals)
	}

	// A fresh server whose superuser has another password (with a
	// backslash and a colon, escaped in .pgpass).
	dstPassword := `dst \pw: 2`
	dst := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: dstPassword})
	dstURL := dst.URL("postgres")
	if err := e.RestoreGlobals(ctx, dstURL, sink.open(t, 0)); err != nil {
		t.Fatal(err)
	}
	// The restoring role kept its password.
	if _, err := e.Probe(ctx, inst(dstURL)); err != nil {
		t.Fatalf("after RestoreGlobals: %v", err)
	}
	for i, db := range []string{db1, db2} {
		if err := e.RestoreLogical(ctx, dstURL, db, sink.open(t, i+1)); err != nil {
			t.Fatalf("restore %s: %v", db, err)
		}
	}
	renamed := "renamed_" + db1
	if err := e.RestoreLogical(ctx, dstURL, renamed, sink.open(t, 1)); err != nil {
		t.Fatalf("restore %s as %s: %v", db1, renamed, err)
	}
	// The target's postgres database exists and is empty: used as it is.
	if err := e.RestoreLogical(ctx, dstURL, "postgres", sink.open(t, 2)); err != nil {
		t.Fatalf("restore %s into postgres: %v", db2, err)
	}
	want1, want2 := contents(t, sdb1), contents(t, sdb2)
	sameContents(t, db1, want1, contents(t, dst.DB(t, db1)))
	sameContents(t, db2, want2, contents(t, dst.DB(t, db2)))
	sameContents(t, renamed, want1, contents(t, dst.DB(t, renamed)))
	sameContents(t, "postgres (from "+db2+")", want2, contents(t, dst.DB(t, "postgres")))

	var owner string
	if err := dst.DB(t, db1).QueryRow(`SELECT tableowner FROM pg_tables WHERE schemaname = 'extra' AND tablename = 'event_log'`).Scan(&owner); err != nil || owner != role {
		t.Errorf("owner of extra.event_log after restore = %q, %v; want %s", owner, err, role)
	}

	// A database that is not empty is refused, unless forced.
	err = e.RestoreLogical(ctx, dstURL, db1, sink.open(t, 1))
	if rdsbackup.ErrorCode(err) != rdsbackup.ECONFLICT {
		t.Errorf("restore into the non-empty %s: error %v, want %s", db1, err, rdsbackup.ECONFLICT)
	}
	exec1(t, dst.DB(t, db1), `DELETE FROM extra.tags WHERE customer_id < 100`, `UPDATE customers SET name = 'changed' WHERE id < 50`)
	if err := e.RestoreLogicalWith(ctx, dstURL, db1, sink.open(t, 1), postgres.LogicalRestoreOptions{Force: true}); err != nil {
		t.Fatalf("forced restore: %v", err)
	}
	sameContents(t, db1+" (forced)", want1, contents(t, dst.DB(t, db1)))

	// Without owners, the restoring user owns everything.
	if err := e.RestoreLogicalWith(ctx, dstURL, "noowner", sink.open(t, 1), postgres.LogicalRestoreOptions{NoOwner: true}); err != nil {
		t.Fatal(err)
	}
	if err := dst.DB(t, "noowner").QueryRow(`SELECT tableowner FROM pg_tables WHERE schemaname = 'extra' AND tablename = 'event_log'`).Scan(&owner); err != nil || owner != "postgres" {
		t.Errorf("owner with NoOwner = %q, %v; want postgres", owner, err)
	}

	// A failed restore names the tool and drops the database it created.
	err = e.RestoreLogical(ctx, dstURL, "broken", strings.NewReader("this is not an archive"))
	if err == nil || !strings.Contains(err.Error(), "pg_restore") {
		t.Errorf("restore of garbage: error %v, want one naming pg_restore", err)
	}
	var n int
	dst.DB(t, "postgres").QueryRow(`SELECT count(*) FROM pg_database WHERE datname = 'broken'`).Scan(&n)
	if n != 0 {
		t.Error("the database of a failed restore was left behind")
	}
	e.checkArgv(t, enginetest.SharedPostgresPassword, dstPassword)
}

// TestPhysicalRoundTrip takes a pg_basebackup of the shared server,
// unpacks it into an empty directory, starts postgres on it and compares.
func TestPhysicalRoundTrip(t *testing.T) {
	src := enginetest.SharedPostgres(t)
	e := newEngine(t)
	ctx := ctxT(t, 2*time.Minute)
	db := src.NewDatabase(t)
	sdb := src.DB(t, db)
	enginetest.FillPostgres(t, sdb, 1000)
	want := contents(t, sdb)

	sink := newSink(t)
	res, err := e.Backup(ctx, inst(src.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.parts) != 1 || sink.parts[0].Kind != rdsbackup.PartPhysical || sink.parts[0].Name != "instance" {
		t.Fatalf("parts = %+v", sink.parts)
	}
	if !slices.Contains(res.Databases, db) || res.ConsistentTime == 0 {
		t.Errorf("result = %+v", res)
	}

	dataDir := postgresDir(t)
	if err := e.RestorePhysical(ctx, sink.open(t, 0), dataDir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dataDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, %v; want 0700", fi.Mode(), err)
	}
	// A second restore into the now full directory is refused.
	if err := e.RestorePhysical(ctx, sink.open(t, 0), dataDir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty directory: %v", err)
	}
	restoredURL := startOn(t, src, dataDir)
	info, err := e.Probe(ctx, inst(restoredURL))
	if err != nil {
		t.Fatal(err)
	}
	if info != res.Info {
		t.Errorf("restored server is %+v, want %+v (same system identifier)", info, res.Info)
	}
	rdb, err := sql.Open("pgx", strings.Replace(restoredURL, "/postgres?", "/"+db+"?", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	sameContents(t, "restored "+db, want, contents(t, rdb))
	e.checkArgv(t, enginetest.SharedPostgresPassword)
}

// postgresDir returns an empty directory, owned by the postgres user when
// the test runs as root, for a data directory.
func postgresDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("/tmp", "pgphys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		uid, gid := postgresAccount(t)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func postgresAccount(t *testing.T) (int, int) {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user to run the server as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// startOn starts postgres (the version of src) on an existing data
// directory, as the postgres user when the test runs as root, and returns
// the URL of its postgres database; the server is stopped when the test
// ends.
func startOn(t *testing.T, src *enginetest.Postgres, dataDir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logFile, err := os.Create(filepath.Join(filepath.Dir(dataDir), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(src.Bin("postgres"), "-D", dataDir, "-p", strconv.Itoa(port), "-k", dataDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "logging_collector=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		uid, gid := postgresAccount(t)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", src.Password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres", RawQuery: "sslmode=disable"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, u.String())
		cancel()
		if err == nil {
			c.Close(context.Background())
			return u.String()
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("postgres on the restored directory exited:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("postgres on the restored directory not ready: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWrongPassword(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	e := newEngine(t)
	ctx := ctxT(t, time.Minute)
	wrong := "wrong pw:@/%'\"$ 123"
	u, _ := url.Parse(srv.URL("postgres"))
	u.User = url.UserPassword("postgres", wrong)
	bad := inst(u.String())
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s with a wrong password: no error", what)
		}
		msg := err.Error()
		if !strings.Contains(msg, "password authentication failed") {
			t.Errorf("%s: error %q does not say the password was refused", what, msg)
		}
		for _, pw := range []string{wrong, url.QueryEscape(wrong), url.PathEscape(wrong), srv.Password, url.PathEscape(srv.Password)} {
			if strings.Contains(msg, pw) {
				t.Errorf("%s: error %q contains a password", what, msg)
			}
		}
	}
	_, err := e.Probe(ctx, bad)
	check("Probe", err)
	t.Logf("Probe: %v", err)
	_, err = e.Databases(ctx, bad)
	check("Databases", err)
	_, err = e.Backup(ctx, bad, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, newSink(t))
	check("Backup", err)
	err = e.RestoreLogical(ctx, u.String(), "x", strings.NewReader(""))
	check("RestoreLogical", err)
}

// bigTable makes a table whose dump (about 25 MB) outlasts the buffers
// between the server and the sink.
func bigTable(t *testing.T, db *sql.DB) {
	t.Helper()
	exec1(t, db, `CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 100000) g`)
}

// children returns the pids of this process's children named name.
func children(name string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		open, closeP := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closeP < 0 {
			continue
		}
		f := strings.Fields(s[closeP+1:])
		if len(f) > 1 && s[open+1:closeP] == name && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}

func TestServerKilledMidDump(t *testing.T) {
	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "kill me"})
	e := newEngine(t)
	ctx := ctxT(t, time.Minute)
	db := srv.NewDatabase(t)
	bigTable(t, srv.DB(t, db))
	sink := newSink(t)
	var once sync.Once
	sink.hook = func(part rdsbackup.Part, n int64) {
		if part.Kind == rdsbackup.PartDatabase && n >= 64<<10 {
			once.Do(srv.Kill)
		}
	}
	_, err := e.Backup(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{db}}, sink)
	if err == nil {
		t.Fatal("Backup succeeded although the server was killed")
	}
	var te *postgres.ToolError
	if !errors.As(err, &te) || te.Tool != "pg_dump" || !strings.Contains(err.Error(), "pg_dump") || !strings.Contains(err.Error(), "exit status") {
		t.Errorf("error %q (%T), want a pg_dump failure with its exit status", err, err)
	}
	t.Logf("error: %v", err)
	e.checkArgv(t, "kill me")
}

func TestCancelMidDump(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	e := newEngine(t)
	db := srv.NewDatabase(t)
	bigTable(t, srv.DB(t, db))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := newSink(t)
	var pids []int
	var cancelled time.Time
	sink.hook = func(part rdsbackup.Part, n int64) {
		if part.Kind == rdsbackup.PartDatabase && n >= 64<<10 && cancelled.IsZero() {
			pids = children("pg_dump")
			cancelled = time.Now()
			cancel()
		}
	}
	_, err := e.Backup(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{db}}, sink)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Backup error = %v, want context.Canceled", err)
	}
	if d := time.Since(cancelled); d > 5*time.Second {
		t.Errorf("Backup returned %v after the cancel", d)
	}
	if len(pids) != 1 {
		t.Fatalf("pg_dump children during the dump: %v, want one", pids)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pids[0])); err == nil {
		t.Errorf("pg_dump (pid %d) is still there after Backup returned", pids[0])
	}
}

// TestUnprivilegedUser backs up as a user that is neither superuser nor
// replication user.
func TestUnprivilegedUser(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	e := newEngine(t)
	ctx := ctxT(t, time.Minute)
	admin := srv.DB(t, "postgres")
	role := fmt.Sprintf("rdsb_reader_%d", os.Getpid())
	t.Cleanup(func() { admin.Exec(`DROP ROLE IF EXISTS ` + role) })
	exec1(t, admin, `CREATE ROLE `+role+` LOGIN PASSWORD 'reader pw' IN ROLE pg_read_all_data`)
	db := srv.NewDatabase(t)
	enginetest.FillPostgres(t, srv.DB(t, db), 50)
	u, _ := url.Parse(srv.URL(db))
	u.User = url.UserPassword(role, "reader pw")

	sink := newSink(t)
	_, err := e.Backup(ctx, inst(u.String()), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{db}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	globals, _ := os.ReadFile(sink.parts[0].path)
	if strings.Contains(string(globals), "SCRAM-SHA-256") || !strings.Contains(string(globals), "CREATE ROLE "+role) {
		t.Errorf("globals of an unprivileged user hold passwords or miss roles:\n%.1500s", globals)
	}
	_, err = e.Backup(ctx, inst(u.String()), rdsbackup.BackupRequest{Method: rdsbackup.MethodPhysical}, newSink(t))
	if err == nil || !strings.Contains(err.Error(), "REPLICATION") {
		t.Errorf("physical backup without REPLICATION: error %v, want one naming REPLICATION", err)
	}
	e.checkArgv(t, "reader pw", srv.Password)
}

// TestToolTooOld: a pg_dump older than the server is refused with a clear
// message before anything runs.
func TestToolTooOld(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	bin := t.TempDir()
	for _, name := range tools {
		script := "#!/bin/sh\necho '" + name + " (PostgreSQL) 9.6.24'\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e := &postgres.Engine{BinDir: bin}
	sink := newSink(t)
	_, err := e.Backup(ctxT(t, time.Minute), inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, sink)
	if err == nil || !strings.Contains(err.Error(), "9.6") || !strings.Contains(err.Error(), "refuses servers newer") {
		t.Errorf("error %v, want one saying the 9.6 tools cannot dump the server", err)
	}
	if len(sink.parts) != 0 {
		t.Errorf("parts written: %v", sink.parts)
	}
	t.Logf("error: %v", err)
}

// failingSink fails (or stops reading) a part.
type failingSink struct {
	err   error // returned after reading a little; nil: return early, reading nothing
	pids  []int
	calls int
}

func (s *failingSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	s.calls++
	if s.err == nil {
		return nil
	}
	var b [1]byte
	io.ReadFull(r, b[:])
	s.pids = children("pg_dumpall")
	return s.err
}

// TestSinkFailure: a sink that fails, or returns before the end of the
// stream, fails the backup and leaves no tool behind.
func TestSinkFailure(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	e := newEngine(t)
	ctx := ctxT(t, time.Minute)
	diskFull := errors.New("disk full")
	sink := &failingSink{err: diskFull}
	_, err := e.Backup(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, sink)
	if !errors.Is(err, diskFull) || sink.calls != 1 {
		t.Errorf("Backup error = %v after %d parts, want the sink's error after one", err, sink.calls)
	}
	for _, pid := range sink.pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("pg_dumpall (pid %d) is still there", pid)
		}
	}
	sink = &failingSink{}
	_, err = e.Backup(ctx, inst(srv.URL("postgres")), rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, sink)
	if err == nil || !strings.Contains(err.Error(), "before the end") {
		t.Errorf("Backup error = %v, want one saying the sink stopped early", err)
	}
	if left := children("pg_dumpall"); len(left) != 0 {
		t.Errorf("pg_dumpall children left: %v", left)
	}
}

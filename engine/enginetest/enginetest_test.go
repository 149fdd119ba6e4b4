package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

func TestMain(m *testing.M) {
	if os.Getenv("ENGINETEST_DEATH_HELPER") == "1" {
		deathSignalHelper()
		return
	}
	os.Exit(Main(m))
}

// deathSignalHelper is the child of TestServersDieWithTheTestBinary: it
// starts a server, reports it, and waits to be killed.
func deathSignalHelper() {
	// PostgreSQL runs as another user when the tests run as root: the case
	// where the parent-death signal could be lost to the credential change.
	p, err := localserver.StartPostgres(context.Background(), localserver.PostgresOptions{Prefix: "enginetest-death-"})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("SERVER %d %s\n", p.Pid(), p.Dir)
	time.Sleep(time.Minute)
}

const fillRows = 2000

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestMariaDBStarts(t *testing.T) {
	t.Parallel()
	m := SharedMariaDB(t)
	if m.Port == 3306 || m.Port == 0 {
		t.Fatalf("port %d", m.Port)
	}
	db := m.DB(t, "")
	var version, datadir, charset string
	var serverID, logBin int
	err := db.QueryRowContext(ctxT(t), "SELECT VERSION(), @@datadir, @@server_id, @@log_bin, @@character_set_server").
		Scan(&version, &datadir, &serverID, &logBin, &charset)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MariaDB %s on port %d, datadir %s", version, m.Port, datadir)
	if filepath.Clean(datadir) != m.DataDir || serverID != 1 || logBin != 1 || charset != "utf8mb4" {
		t.Errorf("datadir %s, server_id %d, log_bin %d, charset %s", datadir, serverID, logBin, charset)
	}

	// The password is required, and the wrong one is refused.
	for _, pw := range []string{"", "wrong"} {
		c := m.config("")
		c.Passwd = pw
		bad, err := sql.Open("mysql", c.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		if err := bad.PingContext(ctxT(t)); err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Errorf("password %q: got %v, want access denied", pw, err)
		}
		bad.Close()
	}

	// The socket works too.
	c := m.config("")
	c.Net, c.Addr = "unix", m.Socket
	sock, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := sock.PingContext(ctxT(t)); err != nil {
		t.Errorf("socket %s: %v", m.Socket, err)
	}
}

func TestPostgresStarts(t *testing.T) {
	t.Parallel()
	p := SharedPostgres(t)
	if p.Port == 5432 || p.Port == 0 {
		t.Fatalf("port %d", p.Port)
	}
	db := p.DB(t, "postgres")
	var version, walLevel, senders, user string
	err := db.QueryRowContext(ctxT(t), "SELECT version(), current_setting('wal_level'), current_setting('max_wal_senders'), current_user").
		Scan(&version, &walLevel, &senders, &user)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s on port %d, data %s", version, p.Port, p.DataDir)
	if walLevel != "replica" || senders == "0" || user != "postgres" {
		t.Errorf("wal_level %s, max_wal_senders %s, user %s", walLevel, senders, user)
	}

	// The wrong password is refused, over TCP.
	bad := &Postgres{Host: p.Host, Port: p.Port, User: p.User, Password: "wrong"}
	pool, err := sql.Open("pgx", bad.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.PingContext(ctxT(t)); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: got %v, want password authentication failed", err)
	}

	// Replication connections (what pg_basebackup uses) are allowed, with
	// the password.
	out, err := psql(t, p, "dbname=postgres replication=database", "IDENTIFY_SYSTEM")
	if err != nil || !strings.Contains(out, "|") {
		t.Errorf("replication connection: %v\n%s", err, out)
	}
	badEnv := append(p.ClientEnv(), "PGPASSWORD=wrong")
	cmd := exec.Command(p.Bin("psql"), append(p.ClientArgs(), "--no-psqlrc", "-Atc", "IDENTIFY_SYSTEM", "dbname=postgres replication=database")...)
	cmd.Env = badEnv
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("replication connection with a wrong password succeeded: %s", out)
	}
}

func psql(t *testing.T, p *Postgres, conninfo, command string) (string, error) {
	t.Helper()
	cmd := exec.Command(p.Bin("psql"), append(p.ClientArgs(), "--no-psqlrc", "-Atc", command, conninfo)...)
	cmd.Env = p.ClientEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPostgresBinDir(t *testing.T) {
	dir, err := PostgresBinDir()
	if err != nil {
		t.Skip(err)
	}
	for _, tool := range []string{"initdb", "postgres", "pg_dump", "pg_restore", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
			t.Errorf("%s: %v", tool, err)
		}
	}
}

// checkContents checks what a filled database's contents must include.
func checkContents(t *testing.T, c map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := c[k]
		if !ok {
			t.Errorf("contents lack %s (have %d keys)", k, len(c))
		} else if v != "" && !strings.HasPrefix(got, v) {
			t.Errorf("%s = %.80q, want prefix %q", k, got, v)
		}
	}
}

func TestMariaDBFillContents(t *testing.T) {
	t.Parallel()
	m := SharedMariaDB(t)
	a, b := m.DB(t, m.NewDatabase(t)), m.DB(t, m.NewDatabase(t))
	FillMariaDB(t, a, fillRows)
	FillMariaDB(t, b, fillRows)
	ca, cb := MariaDBContents(t, a), MariaDBContents(t, b)
	checkContents(t, ca, map[string]string{
		"data:customers":  fmt.Sprintf("rows=%d ", fillRows),
		"data:orders":     fmt.Sprintf("rows=%d ", fillRows),
		"data:blobs":      fmt.Sprintf("rows=%d ", fillRows/2),
		"data:tags":       "rows=",
		"data:event_log":  fmt.Sprintf("rows=%d ", fillRows/10),
		"table:customers": "CREATE TABLE", "view:customer_totals": "CREATE",
		"trigger:orders_set_total": "CREATE", "function:order_total": "CREATE",
		"procedure:customer_count": "CREATE", "event:purge_cancelled": "CREATE",
	})
	if d := DiffContents(ca, cb); d != "" {
		t.Fatalf("two fills differ:\n%s", d)
	}
	if d := DiffContents(ca, MariaDBContents(t, a)); d != "" {
		t.Fatalf("contents of one database differ between calls:\n%s", d)
	}
	t.Logf("%d keys", len(ca))

	// Whatever changes, and only that, shows.
	changes := []struct {
		sql, key string
	}{
		{"UPDATE customers SET notes = CONCAT(notes, 'x') WHERE id = 1234", "data:customers"},
		{"UPDATE customers SET email = NULL WHERE email = '' LIMIT 1", "data:customers"}, // '' → NULL
		{"UPDATE blobs SET data = '' WHERE data IS NULL LIMIT 1", "data:blobs"},          // NULL → empty
		{"UPDATE orders SET ordered_at = ordered_at + INTERVAL 1 SECOND WHERE id = 7", "data:orders"},
		{"DELETE FROM event_log WHERE n = 3 LIMIT 1", "data:event_log"}, // one of duplicates
		{"CREATE OR REPLACE VIEW customer_totals AS SELECT 1 AS one", "view:customer_totals"},
	}
	before := cb
	for _, c := range changes {
		if _, err := b.ExecContext(ctxT(t), c.sql); err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		after := MariaDBContents(t, b)
		var changed []string
		for k := range after {
			if after[k] != before[k] {
				changed = append(changed, k)
			}
		}
		if len(changed) != 1 || changed[0] != c.key {
			t.Errorf("%s changed %v, want [%s]", c.sql, changed, c.key)
		}
		before = after
	}
}

func TestPostgresFillContents(t *testing.T) {
	t.Parallel()
	p := SharedPostgres(t)
	a, b := p.DB(t, p.NewDatabase(t)), p.DB(t, p.NewDatabase(t))
	FillPostgres(t, a, fillRows)
	FillPostgres(t, b, fillRows)
	ca, cb := PostgresContents(t, a), PostgresContents(t, b)
	checkContents(t, ca, map[string]string{
		"data:public.customers":                        fmt.Sprintf("rows=%d ", fillRows),
		"data:public.orders":                           fmt.Sprintf("rows=%d ", fillRows),
		"data:public.blobs":                            fmt.Sprintf("rows=%d ", fillRows/2),
		"data:extra.tags":                              "rows=",
		"data:extra.event_log":                         fmt.Sprintf("rows=%d ", fillRows/10),
		"table:public.customers":                       "id integer NOT NULL IDENTITY d",
		"view:public.customer_totals":                  "v ",
		"trigger:public.orders.orders_set_total":       "CREATE TRIGGER",
		"function:public.order_total(integer,numeric)": "CREATE OR REPLACE FUNCTION",
		"function:public.set_order_total()":            "CREATE OR REPLACE FUNCTION",
		"sequence:extra.invoice_no":                    "bigint start 1000 increment 7",
		"sequence:public.customers_id_seq":             "integer",
		"type:public.order_status":                     "enum('new', 'paid', 'shipped', 'cancelled')",
		"schema:extra":                                 "postgres",
	})
	if d := DiffContents(ca, cb); d != "" {
		t.Fatalf("two fills differ:\n%s", d)
	}
	if d := DiffContents(ca, PostgresContents(t, a)); d != "" {
		t.Fatalf("contents of one database differ between calls:\n%s", d)
	}
	t.Logf("%d keys", len(ca))

	changes := []struct {
		sql, key string
	}{
		{"UPDATE customers SET notes = notes || 'x' WHERE id = 1234", "data:public.customers"},
		{"UPDATE customers SET email = NULL WHERE id = (SELECT min(id) FROM customers WHERE email = '')", "data:public.customers"},
		{"UPDATE blobs SET data = '' WHERE id = (SELECT min(id) FROM blobs WHERE data IS NULL)", "data:public.blobs"},
		{"UPDATE orders SET ordered_at = ordered_at + interval '1 ms' WHERE id = 7", "data:public.orders"},
		{"DELETE FROM extra.event_log WHERE ctid = (SELECT min(ctid) FROM extra.event_log WHERE n = 3)", "data:extra.event_log"},
		{"SELECT nextval('extra.invoice_no')", "sequence:extra.invoice_no"},
		{"CREATE OR REPLACE FUNCTION order_total(q integer, p numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT q * p + 0 $$", "function:public.order_total(integer,numeric)"},
	}
	before := cb
	for _, c := range changes {
		if _, err := b.ExecContext(ctxT(t), c.sql); err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		after := PostgresContents(t, b)
		var changed []string
		for k := range after {
			if after[k] != before[k] {
				changed = append(changed, k)
			}
		}
		if len(changed) != 1 || changed[0] != c.key {
			t.Errorf("%s changed %v, want [%s]", c.sql, changed, c.key)
		}
		before = after
	}
}

// pipe runs from | to, and fails the test if either fails.
func pipe(t *testing.T, from, to *exec.Cmd) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var fromErr, toOut bytes.Buffer
	from.Stdout, from.Stderr = w, &fromErr
	to.Stdin, to.Stdout, to.Stderr = r, &toOut, &toOut
	if err := from.Start(); err != nil {
		t.Fatal(err)
	}
	if err := to.Start(); err != nil {
		from.Process.Kill()
		from.Wait()
		t.Fatal(err)
	}
	w.Close()
	r.Close()
	errFrom, errTo := from.Wait(), to.Wait()
	if errFrom != nil || errTo != nil {
		t.Fatalf("%s: %v\n%s\n%s: %v\n%s", from.Path, errFrom, fromErr.String(), to.Path, errTo, toOut.String())
	}
	if fromErr.Len() > 0 || toOut.Len() > 0 {
		t.Logf("%s: %s\n%s: %s", from.Path, fromErr.String(), to.Path, toOut.String())
	}
}

func TestMariaDBDumpRestore(t *testing.T) {
	t.Parallel()
	src := SharedMariaDB(t)
	name := src.NewDatabase(t)
	db := src.DB(t, name)
	FillMariaDB(t, db, fillRows)
	want := MariaDBContents(t, db)

	dst := StartMariaDB(t, MariaDBOptions{RootPassword: "an-other pw'\\"})
	start := time.Now()
	dump := exec.Command("mariadb-dump", append(src.ClientArgs(),
		"--single-transaction", "--routines", "--triggers", "--events", "--databases", name)...)
	dump.Env = src.ClientEnv()
	restore := exec.Command("mariadb", dst.ClientArgs()...)
	restore.Env = dst.ClientEnv()
	pipe(t, dump, restore)
	t.Logf("dump | restore took %v", time.Since(start))

	got := MariaDBContents(t, dst.DB(t, name))
	if d := DiffContents(want, got); d != "" {
		t.Fatalf("restored database differs:\n%s", d)
	}

	// A clean stop, as at the end of every test.
	dst.Stop()
	if dst.running() {
		t.Fatal("running after Stop")
	}
	if log, _ := os.ReadFile(dst.LogFile); !bytes.Contains(log, []byte("Shutdown complete")) {
		t.Errorf("no clean shutdown in the log:\n%s", localserver.LogTail(dst.LogFile))
	}
}

func TestPostgresDumpRestore(t *testing.T) {
	t.Parallel()
	src := SharedPostgres(t)
	db := src.DB(t, src.NewDatabase(t))
	FillPostgres(t, db, fillRows)
	want := PostgresContents(t, db)

	dst := StartPostgres(t, PostgresOptions{}) // trusts every connection
	target := dst.NewDatabase(t)
	start := time.Now()
	var srcName string
	if err := db.QueryRowContext(ctxT(t), "SELECT current_database()").Scan(&srcName); err != nil {
		t.Fatal(err)
	}
	dump := exec.Command(src.Bin("pg_dump"), append(src.ClientArgs(), "--format=custom", "--dbname="+srcName)...)
	dump.Env = src.ClientEnv()
	restore := exec.Command(dst.Bin("pg_restore"), append(dst.ClientArgs(), "--exit-on-error", "--dbname="+target)...)
	restore.Env = dst.ClientEnv()
	pipe(t, dump, restore)
	t.Logf("pg_dump | pg_restore took %v", time.Since(start))

	got := PostgresContents(t, dst.DB(t, target))
	if d := DiffContents(want, got); d != "" {
		t.Fatalf("restored database differs:\n%s", d)
	}

	dst.Stop()
	if dst.running() {
		t.Fatal("running after Stop")
	}
	if log, _ := os.ReadFile(dst.LogFile); !bytes.Contains(log, []byte("database system is shut down")) {
		t.Errorf("no clean shutdown in the log:\n%s", localserver.LogTail(dst.LogFile))
	}
}

// unreachable checks that nothing accepts connections on the port.
func unreachable(t *testing.T, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections", port)
	}
}

func TestMariaDBKill(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, MariaDBOptions{LogBin: true, ServerID: 7})
	db := m.DB(t, "")
	if _, err := db.ExecContext(ctxT(t), "CREATE DATABASE k"); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	if m.running() {
		t.Fatal("running after Kill")
	}
	unreachable(t, m.Port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Error("ping succeeds after Kill")
	}
	if _, err := os.Stat(m.DataDir); err != nil {
		t.Errorf("data directory: %v", err)
	}
	m.Kill() // again: no-op
	m.Stop() // after Kill: no-op
}

func TestPostgresKill(t *testing.T) {
	t.Parallel()
	p := StartPostgres(t, PostgresOptions{Password: "kill me"})
	db := p.DB(t, "postgres")
	var backend int
	if err := db.QueryRowContext(ctxT(t), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	if p.running() {
		t.Fatal("running after Kill")
	}
	unreachable(t, p.Port)
	if !localserver.WaitGone([]int{backend}, 0) {
		t.Errorf("backend %d survived Kill", backend)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Error("ping succeeds after Kill")
	}
}

func TestSharedServerCannotBeKilled(t *testing.T) {
	t.Parallel()
	m := SharedMariaDB(t)
	defer func() {
		if recover() == nil {
			t.Error("Kill on the shared server did not panic")
		}
	}()
	m.Kill()
}

func TestDSNAndURL(t *testing.T) {
	m := &MariaDB{Host: "127.0.0.1", Port: 3310, User: "root", Password: SharedMariaDBPassword}
	c, err := mysql.ParseDSN(m.DSN("db1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Passwd != SharedMariaDBPassword || c.Addr != "127.0.0.1:3310" || c.DBName != "db1" || c.User != "root" {
		t.Errorf("DSN %s parses as %+v", m.DSN("db1"), c)
	}
	if got, want := (&MariaDB{Host: "127.0.0.1", Port: 1, User: "root"}).DSN("x"), "root@tcp(127.0.0.1:1)/x"; got != want {
		t.Errorf("DSN = %s, want %s", got, want)
	}
	p := &Postgres{Host: "127.0.0.1", Port: 5433, User: "postgres"}
	if got, want := p.URL("db"), "postgres://postgres@127.0.0.1:5433/db?sslmode=disable"; got != want {
		t.Errorf("URL = %s, want %s", got, want)
	}
	p.Password = "a b"
	if got, want := p.URL("db"), "postgres://postgres:a%20b@127.0.0.1:5433/db?sslmode=disable"; got != want {
		t.Errorf("URL = %s, want %s", got, want)
	}
}

// TestServersDieWithTheTestBinary starts a server in a child test binary,
// SIGKILLs it, and checks that the server dies too.
func TestServersDieWithTheTestBinary(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ENGINETEST_DEATH_HELPER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	sc := bufio.NewScanner(out)
	var seen []string
	for len(pids) == 0 && sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "DIR" && strings.Contains(f[1], "enginetest-"):
			defer os.RemoveAll(f[1]) // the child cannot clean up after SIGKILL
		case len(f) == 3 && f[0] == "SERVER" && strings.Contains(f[2], "enginetest-"):
			defer os.RemoveAll(f[2])
			pid, _ := strconv.Atoi(f[1])
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not report a server:\n%s\n%s", strings.Join(seen, "\n"), stderr.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !localserver.WaitGone(pids, 20*time.Second) {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("server %v outlived the test binary", pids)
	}
}

// TestStartRetriesOnBusyPort makes the first start attempt use a port that is
// taken: the servers must notice and move to another.
func TestStartRetriesOnBusyPort(t *testing.T) {
	t.Parallel()
	busyPort := func(t *testing.T) int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().(*net.TCPAddr).Port
	}
	check := func(t *testing.T, port, busy int, logFile string, db *sql.DB) {
		log, _ := os.ReadFile(logFile)
		if port == busy || !localserver.IsBindFailure(string(log)) {
			t.Errorf("port %d (busy %d), log:\n%s", port, busy, log)
		}
		var one int
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Error(err)
		}
	}
	t.Run("MariaDB", func(t *testing.T) {
		t.Parallel()
		busy := busyPort(t)
		m := StartMariaDB(t, MariaDBOptions{firstPort: busy})
		check(t, m.Port, busy, m.LogFile, m.DB(t, ""))
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		busy := busyPort(t)
		p := StartPostgres(t, PostgresOptions{firstPort: busy})
		check(t, p.Port, busy, p.LogFile, p.DB(t, "postgres"))
	})
}

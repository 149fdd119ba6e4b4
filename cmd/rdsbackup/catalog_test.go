package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/catalogtest"
	"github.com/rdsbackup/rdsbackup/catalog/postgres"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

func TestCatalogConfigErrors(t *testing.T) {
	t.Parallel()
	const pw = "Catal0gPassw0rd"
	for _, tc := range []struct {
		name, cfg string
		want      []string
	}{
		{"unknown type", "catalog:\n  type: mysql\n", []string{"catalog.type", `"mysql"`, "sqlite or postgres"}},
		{"dsn with sqlite", "catalog:\n  dsn: postgres://u:" + pw + "@127.0.0.1/db\n", []string{"catalog.dsn is for type postgres"}},
		{"postgres without dsn", "catalog:\n  type: postgres\n", []string{"catalog.dsn: missing"}},
		{"postgres without dsn in the environment", "catalog:\n  type: postgres\n  dsn: ${CATALOG_DSN}\n", []string{"catalog.dsn: missing"}},
		{"bad dsn", "catalog:\n  type: postgres\n  dsn: 'postgres://u:" + pw + "@127.0.0.1:notaport/db'\n", []string{"catalog.dsn", "not a valid PostgreSQL connection string"}},
		{"unreachable", "catalog:\n  type: postgres\n  dsn: 'postgres://u:" + pw + "@127.0.0.1:1/db?connect_timeout=2&sslmode=disable'\n", []string{"open postgres catalog", "127.0.0.1:1"}},
		{"unknown field", "catalog:\n  type: postgres\n  url: x\n", []string{"url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stderr := runConfig(t, tc.cfg, nil)
			if code != exitFailed {
				t.Errorf("exit code %d, want %d", code, exitFailed)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q: %s", w, stderr)
				}
			}
			if strings.Contains(stderr, pw) {
				t.Errorf("stderr shows the catalog password: %s", stderr)
			}
		})
	}
}

// catalogYAML is the config section of a PostgreSQL catalog whose DSN comes
// from the environment, as the README shows.
const catalogYAML = "catalog:\n  type: postgres\n  dsn: ${CATALOG_DSN}\n"

// openPostgresCatalog opens the catalog at dsn with the tests' master key.
func openPostgresCatalog(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	key, err := aesgcm.ParseKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	box, _ := aesgcm.New(key)
	db := postgres.NewDB(dsn, box)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestServeOnPostgresCatalog: two nodes with their own data directories on
// one PostgreSQL catalog answer alike, share RAM users and the account id,
// and a node with another master key refuses to start.
func TestServeOnPostgresCatalog(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	dsn := srv.URL(srv.NewDatabase(t))
	env := testEnv(map[string]string{"CATALOG_DSN": dsn})
	cfg := catalogYAML + instancesYAML("rm-a1", "rm-a2")
	a := startService(t, t.TempDir(), cfg, env)
	b := startService(t, t.TempDir(), cfg, env)

	db := openPostgresCatalog(t, dsn)
	var want []string
	for i := range 5 {
		s := setSpec{Instance: "rm-a1", Start: filterBase.Add(time.Duration(i) * time.Hour)}.set()
		if err := db.CreateBackupSet(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		want = append([]string{strconv.FormatInt(s.ID, 10)}, want...)
	}
	for _, s := range []*testService{a, b} {
		resp, err := describeBackups(t, rootClients(t, s), func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "rm-a1" })
		if err != nil {
			t.Fatal(err)
		}
		if got := backupIDs(resp); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("node %s: BackupIds %v, want %v", s.Addr, got, want)
		}
	}

	// A user and key made on one node work on the other.
	ak, secret := createUserWithKey(t, rootClients(t, a), "shared-user")
	g := ram.CreateGetUserRequest()
	g.UserName = "shared-user"
	if _, err := rootClients(t, b).RAM.GetUser(g); err != nil {
		t.Errorf("GetUser on the other node: %v", err)
	}
	// The user has no policy: authenticated by the other node, then
	// refused by RAM.
	_, err := describeBackups(t, newClients(t, b.Addr, ak, secret), func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "rm-a1" })
	wantServerError(t, err, rdsbackup.EForbiddenRAM, 403)

	// Without a configured account id, nodes take the catalog's.
	var ids []string
	for range 2 {
		c := &Config{DataDir: t.TempDir()}
		id, err := accountID(t.Context(), c, db)
		if err != nil {
			t.Fatal(err)
		}
		file, err := os.ReadFile(c.Path("account-id"))
		if err != nil || strings.TrimSpace(string(file)) != id {
			t.Errorf("account-id file %q, %v, want %s", file, err, id)
		}
		ids = append(ids, id)
	}
	if stored, err := db.FindSetting(t.Context(), "account_id"); err != nil || ids[0] != ids[1] || string(stored) != ids[0] {
		t.Errorf("account ids %v, catalog %q, %v", ids, stored, err)
	}

	// A node with another master key stops at start, saying why.
	other := strings.Repeat("B", len(testMasterKey)-1) + "="
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\ndataDir: "+t.TempDir()+"\n"+cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(map[string]string{"CATALOG_DSN": dsn, envMasterKey: other}),
		Ready: func(string) { t.Error("a node with another master key started") }}
	if code := m.Run(t.Context(), []string{"serve", "--config", path}); code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	for _, w := range []string{"master key", envMasterKey, "every node"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr does not contain %q: %s", w, stderr.String())
		}
	}
	for _, out := range []string{a.Stderr.String(), b.Stderr.String(), stderr.String()} {
		if strings.Contains(out, enginetest.SharedPostgresPassword) {
			t.Errorf("a log shows the catalog's password: %s", out)
		}
	}
}

// TestCatalogCopy: an installation's SQLite catalog with every kind of row
// moves into PostgreSQL, verified, and the service runs on the copy.
func TestCatalogCopy(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	dir := t.TempDir()
	src := openCatalog(t, dir)
	f := catalogtest.Fill(t, src)
	src.Close()
	dsn := srv.URL(srv.NewDatabase(t))
	from := filepath.Join(dir, "catalog.db")

	run := func(env map[string]string, args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr syncBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(env)}
		code := m.Run(context.Background(), append([]string{"catalog"}, args...))
		for _, out := range []string{stdout.String(), stderr.String()} {
			if strings.Contains(out, enginetest.SharedPostgresPassword) {
				t.Errorf("catalog %v shows the catalog's password: %s", args, out)
			}
		}
		return code, stdout.String(), stderr.String()
	}

	// Refusals, before anything is written.
	other := strings.Repeat("C", len(testMasterKey)-1) + "="
	if code, _, stderr := run(map[string]string{envMasterKey: other}, "copy", "--from", from, "--to", dsn); code != exitFailed || !strings.Contains(stderr, "master key") {
		t.Errorf("copy with another master key: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(nil, "copy", "--to", dsn); code != exitUsage || !strings.Contains(stderr, "--from") {
		t.Errorf("copy without --from: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(nil, "copy", "--from", from); code != exitUsage || !strings.Contains(stderr, "--to") {
		t.Errorf("copy without --to: exit %d, %s", code, stderr)
	}
	if code, _, stderr := run(nil, "copy", "--from", filepath.Join(dir, "none.db"), "--to", dsn); code != exitFailed || !strings.Contains(stderr, "none.db") {
		t.Errorf("copy of a missing file: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "none.db")); err == nil {
		t.Error("copy of a missing file created it")
	}
	if code, _, _ := run(nil, "move"); code != exitUsage {
		t.Errorf("catalog move: exit %d", code)
	}
	// Without the environment's key, the key file beside the catalog; none
	// there is an error, not a new key.
	if code, _, stderr := run(map[string]string{envMasterKey: ""}, "copy", "--from", from, "--to", dsn); code != exitFailed || !strings.Contains(stderr, "no master key") {
		t.Errorf("copy without a master key: exit %d, %s", code, stderr)
	}

	code, stdout, stderr := run(nil, "copy", "--from", from, "--to", dsn)
	if code != exitOK {
		t.Fatalf("copy: exit %d: %s%s", code, stdout, stderr)
	}
	for _, tb := range rdsbackup.CatalogTables {
		if !strings.Contains(stdout, tb.Name) {
			t.Errorf("the copy's report does not name table %s:\n%s", tb.Name, stdout)
		}
	}
	if !strings.Contains(stdout, "done:") || !strings.Contains(stdout, "verified") {
		t.Errorf("stdout: %s", stdout)
	}
	pg := openPostgresCatalog(t, dsn)
	f.Check(t, pg)
	// The source is unchanged.
	f.Check(t, openCatalog(t, dir))

	// A second copy into the same database is refused.
	if code, _, stderr := run(nil, "copy", "--from", from, "--to", dsn); code != exitFailed || !strings.Contains(stderr, "not empty") {
		t.Errorf("second copy: exit %d, %s", code, stderr)
	}

	// The service runs on the copy: the copied set, the copied user.
	cfg := catalogYAML + "instances:\n  - id: rm-fill1\n    engine: MariaDB\n    dsn: 'backup:x@tcp(127.0.0.1:1)/'\n"
	s := startService(t, t.TempDir(), cfg, testEnv(map[string]string{"CATALOG_DSN": dsn}))
	resp, err := describeBackups(t, rootClients(t, s), func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "rm-fill1" })
	if err != nil {
		t.Fatal(err)
	}
	if got := backupIDs(resp); len(got) != 1 || got[0] != strconv.FormatInt(f.Sets[1].ID, 10) {
		t.Errorf("DescribeBackups on the copy: %v, want [%d]", got, f.Sets[1].ID)
	}
	g := ram.CreateGetUserRequest()
	g.UserName = "alice"
	if u, err := rootClients(t, s).RAM.GetUser(g); err != nil || u.User.UserId != f.Users[0].ID {
		t.Errorf("GetUser alice on the copy: %+v, %v", u, err)
	}
}

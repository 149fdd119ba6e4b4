package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/catalogtest"
	"github.com/rdsbackup/rdsbackup/catalog/postgres"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
	"github.com/rdsbackup/rdsbackup/internal/disktest"
)

// The tests run against a real PostgreSQL server that TestMain's
// enginetest.Main stops at the end; each test gets databases of its own.
func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }

// opener returns a function that opens the catalog at dsn.
func opener(dsn string) func(key []byte) (catalogtest.Catalog, error) {
	return func(key []byte) (catalogtest.Catalog, error) {
		box, err := aesgcm.New(key)
		if err != nil {
			return nil, err
		}
		db := postgres.NewDB(dsn, box)
		if err := db.Open(context.Background()); err != nil {
			return nil, err
		}
		return db, nil
	}
}

// newSchema makes an empty schema in database name and returns the DSN of a
// catalog in it (search_path). A schema is made and dropped in
// milliseconds, a database in about a second.
func newSchema(t *testing.T, srv *enginetest.Postgres, name string) string {
	t.Helper()
	schema := fmt.Sprintf("catalog_%d", schemaSeq.Add(1))
	admin := srv.DB(t, name)
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return srv.URL(name) + "&search_path=" + schema
}

var schemaSeq atomic.Int64

func TestConformance(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	name := srv.NewDatabase(t)
	catalogtest.Run(t, catalogtest.Harness{New: func(t *testing.T) func(key []byte) (catalogtest.Catalog, error) {
		return opener(newSchema(t, srv, name))
	}})
}

// Nodes starting together on an empty database migrate it once and agree
// on one master key check; a node whose key differs from the first one's is
// refused.
func TestConcurrentFirstStart(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	open := opener(srv.URL(srv.NewDatabase(t)))
	type result struct {
		c   catalogtest.Catalog
		err error
	}
	results := make(chan result, 6)
	for i := range 6 {
		go func() {
			c, err := open(catalogtest.Key)
			if i == 5 {
				// One more with another key, racing the others.
				c2, err2 := open(catalogtest.OtherKey)
				if err2 == nil {
					c2.Close()
				}
				if !errors.Is(err2, rdsbackup.ErrWrongMasterKey) {
					err = errors.Join(err, errors.New("open with another key: "), err2)
				}
			}
			results <- result{c, err}
		}()
	}
	for range 6 {
		r := <-results
		if r.err != nil {
			t.Errorf("concurrent open: %v", r.err)
			continue
		}
		r.c.Close()
	}
}

// An unreachable or malformed DSN fails Open with a message that does not
// show the password.
func TestOpenErrorsHideThePassword(t *testing.T) {
	box, _ := aesgcm.New(catalogtest.Key)
	for _, dsn := range []string{
		"postgres://rdsbackup:hunter2secret@127.0.0.1:1/catalog?sslmode=disable&connect_timeout=2",
		"postgres://rdsbackup:hunter2secret@127.0.0.1:bad/catalog",
		"host=127.0.0.1 port=1 user=rdsbackup password=hunter2secret connect_timeout=2 sslmode=disable",
	} {
		db := postgres.NewDB(dsn, box)
		err := db.Open(t.Context())
		if err == nil {
			db.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("Open error shows the password: %v", err)
		}
	}
}

// A first start with 10,000 instances stores their policies in one
// transaction on a server whose lock table is small (max_connections 20:
// 1,280 lock slots), so the catalog must not take a lock per instance.
func TestManyInstancesFitTheLockTable(t *testing.T) {
	srv := enginetest.StartPostgres(t, enginetest.PostgresOptions{Settings: map[string]string{"max_connections": "20"}})
	c := catalogtest.Open(t, opener(srv.URL(srv.NewDatabase(t))))
	ps := make([]*rdsbackup.BackupPolicy, 10000)
	for i := range ps {
		ps[i] = rdsbackup.DefaultBackupPolicy(fmt.Sprintf("rm-%05d", i))
	}
	if err := c.PutBackupPolicies(t.Context(), ps); err != nil {
		t.Fatalf("store 10,000 policies: %v", err)
	}
}

// A write that finds the disk under the catalog's tables full is
// InsufficientStorage, as on SQLite: the catalog's tables live in a
// tablespace on a small tmpfs, which the test fills.
func TestDiskFull(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	parent, err := os.MkdirTemp(localserver.TempDir(), "pg-diskfull-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	disk := filepath.Join(parent, "disk")
	if err := os.Mkdir(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	disktest.MountAt(t, disk, 8<<20)
	if os.Geteuid() == 0 { // the server runs as postgres, which must own the tablespace
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(disk, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// Cleanups run last first: the catalog closes, its database goes, then
	// the tablespace (which must be empty), then the disk.
	admin := srv.DB(t, "postgres")
	space := fmt.Sprintf("small_%d", schemaSeq.Add(1))
	if _, err := admin.ExecContext(t.Context(), "CREATE TABLESPACE "+space+" LOCATION '"+disk+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP TABLESPACE "+space); err != nil {
			t.Errorf("drop tablespace: %v", err)
		}
	})
	name := srv.NewDatabase(t)
	c := catalogtest.Open(t, opener(srv.URL(name)+"&default_tablespace="+space))
	ctx := t.Context()
	inst := &rdsbackup.Instance{ID: "rm-full", Engine: rdsbackup.EngineMariaDB, DSN: "root:pw@tcp(127.0.0.1:1)/"}
	if err := c.SyncInstances(ctx, []*rdsbackup.Instance{inst}); err != nil {
		t.Fatal(err)
	}
	free := disktest.Fill(t, disk)
	var werr error
	for i := 0; i < 10000 && werr == nil; i++ { // until a table must grow
		werr = c.CreateJob(ctx, &rdsbackup.Job{InstanceID: inst.ID, Status: rdsbackup.JobNoStart,
			Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Strategy: "instance"})
	}
	if code := rdsbackup.ErrorCode(werr); code != rdsbackup.ENOSPACE {
		t.Fatalf("write to a full disk: code %q (%v), want %s", code, werr, rdsbackup.ENOSPACE)
	}
	free()
	if err := c.CreateJob(ctx, &rdsbackup.Job{InstanceID: inst.ID, Status: rdsbackup.JobNoStart,
		Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Strategy: "instance"}); err != nil {
		t.Fatalf("write after freeing the disk: %v", err)
	}
}

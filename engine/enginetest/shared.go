package enginetest

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// Passwords of the shared servers. They contain characters that need care in
// DSNs, URLs and shells, so that tests using the shared servers exercise
// that care.
const (
	SharedMariaDBPassword  = "mdb pw:@/%'\"$"
	SharedPostgresPassword = "pg pw:@/%'\"$"
)

// templates are the data directories servers are copied from under Main:
// mariadb-install-db and initdb take one to three seconds, far longer than
// starting the server, so under Main the first server of each kind
// initializes one, and every other server of the test binary copies it. Main
// removes them at the end; without Main, each server initializes its own
// data directory, so nothing is left behind.
var templates struct {
	mariadb, postgres localserver.Template
}

// template returns tp under Main, else nil (no template).
func template(tp *localserver.Template) *localserver.Template {
	if !shared.mainCalled.Load() {
		return nil
	}
	return tp
}

var shared struct {
	mainCalled atomic.Bool

	mariadbOnce sync.Once
	mariadb     *MariaDB
	mariadbErr  error

	postgresOnce sync.Once
	postgres     *Postgres
	postgresErr  error
}

// Main runs the package's tests and then stops the servers SharedMariaDB and
// SharedPostgres started and removes the template data directories servers
// are copied from (see StartMariaDB). A package that uses shared servers, or
// starts several servers, calls it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }
func Main(m *testing.M) int {
	shared.mainCalled.Store(true)
	defer func() {
		if shared.mariadb != nil {
			shared.mariadb.destroy()
		}
		if shared.postgres != nil {
			shared.postgres.destroy()
		}
		templates.mariadb.Remove()
		templates.postgres.Remove()
	}()
	return m.Run()
}

func checkMain(t testing.TB) {
	t.Helper()
	if !shared.mainCalled.Load() {
		t.Fatal("enginetest: shared servers need func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) } in the test package, which stops them")
	}
}

// SharedMariaDB returns the test binary's MariaDB server, starting it on the
// first call: binary log on (server ID 1), root's password
// SharedMariaDBPassword. Tests work in their own databases (NewDatabase) and
// must not stop or kill it. It needs Main in TestMain.
func SharedMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	skipUnlessServers(t, "MariaDB")
	checkMain(t)
	shared.mariadbOnce.Do(func() {
		m, err := startMariaDB(MariaDBOptions{ServerID: 1, LogBin: true, RootPassword: SharedMariaDBPassword})
		if err == nil {
			m.shared = true
		}
		shared.mariadb, shared.mariadbErr = m, err
	})
	if shared.mariadbErr != nil {
		t.Fatalf("enginetest: start shared MariaDB: %v", shared.mariadbErr)
	}
	return shared.mariadb
}

// SharedPostgres returns the test binary's PostgreSQL server, starting it on
// the first call, with the password SharedPostgresPassword. Tests work in
// their own databases (NewDatabase) and must not stop or kill it. It needs
// Main in TestMain.
func SharedPostgres(t testing.TB) *Postgres {
	t.Helper()
	skipUnlessServers(t, "PostgreSQL")
	checkMain(t)
	shared.postgresOnce.Do(func() {
		p, err := startPostgres(PostgresOptions{Password: SharedPostgresPassword})
		if err == nil {
			p.shared = true
		}
		shared.postgres, shared.postgresErr = p, err
	})
	if shared.postgresErr != nil {
		t.Fatalf("enginetest: start shared PostgreSQL: %v", shared.postgresErr)
	}
	return shared.postgres
}

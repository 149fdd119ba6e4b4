package enginetest

import (
	"sync"
	"sync/atomic"
	"testing"
)

// Passwords of the shared servers. They contain characters that need care in
// DSNs, URLs and shells, so that tests using the shared servers exercise
// that care.
const (
	SharedMariaDBPassword  = "mdb pw:@/%'\"$"
	SharedPostgresPassword = "pg pw:@/%'\"$"
)

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
		templates.mariadb.remove()
		templates.postgres.remove()
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

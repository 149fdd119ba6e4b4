// Package enginetest starts throwaway MariaDB and PostgreSQL servers for
// integration tests, fills them with sample data that exercises the awkward
// corners of a dump (NULLs, binary columns, 4-byte UTF-8, decimals, dates,
// generated columns, views, triggers, routines), and reduces a database to a
// map of content hashes and definitions so two servers can be compared after
// a backup has been restored.
//
// # Servers
//
// StartMariaDB and StartPostgres start a server (with engine/localserver,
// which `rdsbackup demo` uses too) in a fresh temporary directory on a free
// 127.0.0.1 port, wait until it accepts connections and stop it (and remove
// the directory) when the test ends. Initializing a data
// directory (mariadb-install-db, initdb) takes one to three seconds, starting
// the server a fraction of one; under Main, data directories are copied from
// one initialized once per test binary, so only the first server of each
// kind pays. A package that needs a server in many tests should also share
// one per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(enginetest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		srv := enginetest.SharedMariaDB(t)
//		name := srv.NewDatabase(t) // a database of this test's own
//		db := srv.DB(t, name)
//		enginetest.FillMariaDB(t, db, 1000)
//		...
//	}
//
// Tests that kill or stop a server (fault tests) start their own.
//
// The servers never touch a system installation: they are started with
// --no-defaults (MariaDB) or their own data directory (PostgreSQL), listen
// on 127.0.0.1 only, on a port picked by the kernel, and put their sockets in
// their data directory. PostgreSQL refuses to run as root, so when the tests
// run as root, initdb and postgres run as the "postgres" user. Every server
// runs in its own process group and, on Linux, receives SIGKILL when the test
// binary dies. A test binary killed by its -timeout does not run cleanups, so
// its temporary directories (enginetest-*) stay behind in the temp directory.
//
// The binaries are looked up in PATH and in the Debian locations
// (/usr/sbin/mariadbd, /usr/lib/postgresql/<major>/bin). A missing binary
// fails the test; with -short, tests that start servers are skipped.
//
// # Data
//
// FillMariaDB and FillPostgres create the same logical sample data on either
// engine, deterministically: two fills give identical contents. MariaDBContents
// and PostgresContents return one entry per table (row count and a SHA-256 over
// every column of every row, in primary-key order, NULL distinct from empty)
// and one per definition (table, view, trigger, routine, event, sequence,
// type); DiffContents explains how two such maps differ.
package enginetest

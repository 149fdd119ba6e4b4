// Package localserver starts throwaway MariaDB and PostgreSQL servers from
// the binaries installed on the machine, for tests (see engine/enginetest)
// and for `rdsbackup demo`.
//
// StartMariaDB and StartPostgres make a directory for the server (Options.Dir,
// or a new one in TempDir), initialize a data directory in it
// (mariadb-install-db, initdb), start the server on a free 127.0.0.1 port and
// wait until it accepts connections. Stop shuts it down cleanly, Kill as a
// crash would, Remove stops it and deletes its directory.
//
// The servers never touch a system installation: they are started with
// --no-defaults (MariaDB) or their own data directory (PostgreSQL), listen
// on 127.0.0.1 only, and put their sockets in their data directory.
// PostgreSQL refuses to run as root, so when the caller runs as root, initdb
// and postgres run as the "postgres" user, and the server's directory must be
// reachable by that user. Every server runs in its own process group (a
// terminal's Ctrl-C does not reach it) and, on Linux, receives SIGKILL when
// the process that started it dies.
//
// The binaries are looked up in PATH and in the Debian locations
// (/usr/sbin/mariadbd, /usr/lib/postgresql/<major>/bin); a missing one is a
// *NotInstalledError naming the Debian package that provides it.
//
// Initializing a data directory takes one to three seconds, starting the
// server a fraction of one. Servers started with the same Template copy a
// data directory initialized once instead.
package localserver

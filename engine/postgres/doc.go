// Package postgres is the backup engine for PostgreSQL. It drives
// PostgreSQL's own client tools (pg_dumpall, pg_dump, pg_basebackup,
// pg_restore, psql) as child processes and streams their output into a
// [rdsbackup.PartSink]; it talks to the server itself, through pgx, only for
// small queries (version, identity, database list, sizes).
//
// # Connections and credentials
//
// An instance's DSN is a PostgreSQL URL,
// postgres://user:password@host:port/database?sslmode=…. The URL is the
// whole configuration: the tools get its host, port, user and libpq
// parameters as PG* environment variables (PGHOST, PGPORT, PGUSER,
// PGSSLMODE, …; other parameters, which pgx would send as run-time
// settings, go into PGOPTIONS as -c name=value), and PG* variables of the
// service's own environment are not passed on. The password never appears
// in a command line: each operation writes it to a .pgpass file (mode 0600)
// in a private directory (mode 0700) under Engine.TempDir, points PGPASSFILE
// at it, and removes the directory when the operation ends. (A password
// containing a line break cannot be written to a .pgpass file; it is passed
// as PGPASSWORD in the child's environment instead.) A URL without a
// password leaves libpq to its usual ~/.pgpass. Error messages are scrubbed
// of the password.
//
// Database names are passed to the tools as connection strings
// (dbname='…'), because pg_dump and its siblings would take a bare name
// containing "=" or starting with "postgres://" for a connection string.
// Every tool runs with --no-password, so none ever waits for a prompt.
//
// # Tool versions
//
// pg_dump refuses to dump a server newer than itself. With Engine.BinDir
// empty, the tools come from the Debian locations
// /usr/lib/postgresql/<major>/bin, or from PATH when there are none. For a
// backup the engine takes the oldest installed major version that is not
// older than the server (normally the server's own), so that the archive
// can be read by the pg_restore of that version; for a restore it takes the
// newest, which reads archives of every older pg_dump. When no installed
// version fits, the error says which were found and what to install. With
// BinDir set, exactly that directory is used and checked the same way.
//
// # Logical backups
//
// A logical backup is a sequence of parts: first "globals" (kind
// [rdsbackup.PartGlobals]), the SQL script of pg_dumpall --globals-only —
// roles, role memberships and settings, tablespaces — and then one part per
// database (kind [rdsbackup.PartDatabase]), the custom-format archive of
// pg_dump -Fc. When the user is not a superuser, pg_dumpall cannot read
// pg_authid, so the globals are dumped with --no-role-passwords (decided
// before the tool starts, from pg_roles.rolsuper; a warning is logged):
// the roles are restored without passwords.
//
// pg_dump runs with --compress=0: the backup runner compresses the whole
// stream with zstd, and zlib inside the archive would only cost CPU and
// leave zstd nothing to gain. The archive stays in the custom format, so it
// is restored with pg_restore (RestoreLogical), not psql.
//
// Without a database list, every database that accepts connections and is
// not a template is backed up — the postgres database included, since users
// do keep data there, and RDS lists it too. Only template0/template1 (and
// databases with datallowconn = false) are left out.
//
// Each pg_dump takes its own consistent snapshot when it starts; PostgreSQL
// cannot share one snapshot between databases. ConsistentTime is the
// server's now() read just before the first tool starts: every database is
// consistent at a point no earlier than that.
//
// # Physical backups
//
// A physical backup is one part, "instance" (kind [rdsbackup.PartPhysical]):
// the tar stream of pg_basebackup -D - -Ft -X fetch --checkpoint=fast. The
// WAL needed to make the copy consistent is fetched at the end and included
// under pg_wal/, so the data directory starts on its own, without a WAL
// archive. Requirements and limits:
//
//   - the user needs the REPLICATION attribute (or superuser) and pg_hba.conf
//     needs a "replication" entry for the host rdsbackup connects from;
//   - tar to stdout carries a single tablespace: an instance with
//     user-defined tablespaces cannot be backed up physically this way
//     (pg_basebackup says so, and the error carries its message);
//   - with -X fetch the server must keep the WAL written during the backup
//     until its end: on a busy server, raise wal_keep_size (or
//     max_slot_wal_keep_size with slots) or the fetch fails with "requested
//     WAL segment has already been removed".
//
// ConsistentTime of a physical backup is the server's now() read after
// pg_basebackup finished, which is just after the end of the backup, the
// point the restored instance is consistent at. Its WAL start point (from
// pg_basebackup --verbose) is BackupResult.LogPositions["instance"]: where
// a restore to a time starts rolling forward.
//
// # Point-in-time recovery
//
// StreamWAL (StreamLogs on the root port) streams an instance's WAL with
// pg_receivewal through a replication slot rdsbackup owns into a spool
// directory and hands each complete segment over with its commit-time span,
// size and CRC64; RecoverToTime (RestoreToTime on the port) restores a
// physical backup and replays WAL up to a time with recovery_target_time,
// and checks that PostgreSQL reached it. CheckLogBackup names what a server
// lacks for streaming; DropSlot frees the slot. See docs/pitr-postgres.md.
//
// # Restoring
//
// RestoreGlobals replays a globals part with psql -v ON_ERROR_STOP=0: roles
// and tablespaces that already exist make their CREATE fail and the script
// goes on. The connecting role's own CREATE ROLE and ALTER ROLE … WITH
// lines are skipped, so that restoring never changes the password or
// attributes of the role doing the restore (which would lock it out). Errors
// other than "already exists" are collected and returned after the whole
// script has run; tablespace locations must exist on the new host.
//
// RestoreLogical creates the database (from template0, with the target
// server's default encoding and locale) and runs pg_restore --exit-on-error
// into it. It refuses a database that exists and already holds objects,
// unless LogicalRestoreOptions.Force is set (then pg_restore --clean
// --if-exists drops the archive's objects first; other objects stay). An
// existing empty database, such as the postgres database of a fresh server,
// is used as it is. Owners and privileges are restored as dumped, which needs
// the roles: restore the globals first, or set NoOwner to make the
// restoring user own everything. When the restore fails, a database created
// by it is dropped again. Database-level settings (ALTER DATABASE … SET),
// its comment and its privileges are not restored.
//
// RestorePhysical unpacks a physical part into an empty directory; then:
//
//  1. make sure the directory belongs to the user the server runs as and has
//     mode 0700 (RestorePhysical gives the files the directory's owner when
//     it runs as root, and sets the mode);
//  2. check postgresql.conf there (Debian keeps the configuration in
//     /etc/postgresql, outside the data directory, so it is not in the
//     backup; copy or write one, or pass settings on the command line);
//  3. start postgres (or pg_ctl start) on it with the same major version. It
//     finds backup_label, replays the WAL in pg_wal up to the end of the
//     backup, and opens with the source's roles, passwords and pg_hba.conf.
package postgres

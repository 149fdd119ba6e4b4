package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
	"github.com/rdsbackup/rdsbackup/storage/encrypted"
)

// envTargetDSN holds the restore target's DSN: a password never goes on the
// command line, where any local user could read it.
const envTargetDSN = "RDSBACKUP_TARGET_DSN"

const restoreUsage = `Usage: rdsbackup restore (--url URL | --file FILE | --backup-id ID --config FILE) [flags]
       rdsbackup restore --time yyyy-MM-ddTHH:mm:ssZ --instance ID --config FILE [flags]

With --time, restores the instance as it was at that time (UTC, to the
second): the newest full set before it from the service's catalog and
storage (--config: the service's config; its master key from the
environment as for serve), rolled forward with the stored logs, into the
server RDSBACKUP_TARGET_DSN names or, from a Physical set (PostgreSQL, or
MariaDB), into an empty --data-dir. Existing databases on the target are
never overwritten; --database/--as restore one database under a new name.
See docs/pitr.md.

Restores a backup set (or one database of it) into a target server. The set
is downloaded (or read) completely into a private copy in --work-dir, and its
CRC64 checked before anything is written to the target; a mismatch stops the
restore. The restore then reads only that copy, so it needs free space for
one set there.

With --backup-id the set is read straight from the backup storage of the
config (the S3 bucket, or dataDir/storage), found through the config's
catalog: no service needs to run (after a lost host, run rebuild-catalog
first).

The target server's DSN comes from the environment, never from the command
line: RDSBACKUP_TARGET_DSN (a go-sql-driver/mysql DSN for MySQL/MariaDB, a
postgres:// URL for PostgreSQL).

Flags:
`

// restorer is what restore needs of an engine.
type restorer interface {
	RestoreLogical(ctx context.Context, dsn, database string, dump io.Reader) error
	RestorePhysical(ctx context.Context, stream io.Reader, dataDir string) error
}

func (m *Main) restore(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("restore", flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	fset.Usage = func() { fmt.Fprint(m.Stderr, restoreUsage); fset.PrintDefaults() }
	url := fset.String("url", "", "a BackupDownloadURL or a per-database DownloadLink")
	file := fset.String("file", "", "a set file downloaded before")
	backupID := fset.Int64("backup-id", 0, "the BackupId of a set to read from the config's backup storage (needs --config)")
	checksum := fset.String("checksum", "", "expected CRC64 (the set's Checksum from DescribeBackups); checked in addition to the download's x-oss-hash-crc64ecma header")
	engineName := fset.String("engine", "", "MySQL, MariaDB or PostgreSQL; needed for a per-database link (a whole set names its engine)")
	database := fset.String("database", "", "restore only this database of the set (for a per-database link: its name)")
	as := fset.String("as", "", "restore --database under this name instead")
	physical := fset.String("data-dir", "", "for a Physical set: the EMPTY directory to restore the data files into")
	workDir := fset.String("work-dir", os.TempDir(), "where the private copy of the set (download or --file) is kept while it is checked and restored")
	skipGlobals := fset.Bool("skip-globals", false, "PostgreSQL: do not restore roles and tablespaces")
	at := fset.String("time", "", "restore to this time (yyyy-MM-ddTHH:mm:ssZ, UTC) from the service's catalog; needs --instance and --config")
	instance := fset.String("instance", "", "with --time: the instance (DBInstanceId) to restore")
	configPath := fset.String("config", "", "with --backup-id or --time: the service's YAML config (its catalog and storage; --backup-id without it: the built-in defaults)")
	keyFile := fset.String("key-file", "", "for a --file copied from the storage in its encrypted form: the encryption key file (or set "+envEncryptionKeys+")")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *at != "" {
		if *url != "" || *file != "" || *backupID != 0 {
			return usageError{errors.New("restore: --time restores from the service's catalog; do not give --url, --file or --backup-id")}
		}
		return m.restoreToTime(ctx, *at, *instance, *configPath, *database, *as, *physical, *workDir)
	}
	if n := len(slices.DeleteFunc([]bool{*url != "", *file != "", *backupID != 0}, func(b bool) bool { return !b })); n != 1 {
		return usageError{errors.New("restore: give exactly one of --url, --file or --backup-id")}
	}
	if *configPath != "" && *backupID == 0 {
		return usageError{errors.New("restore: --config is for --backup-id or --time")}
	}
	if *as != "" && *database == "" {
		return usageError{errors.New("restore: --as needs --database")}
	}

	// 1. The bytes, complete and verified, before the target is touched.
	var (
		path    string
		sum     uint64
		cleanup func()
		err     error
	)
	if *backupID != 0 {
		path, sum, cleanup, err = m.fetchFromStorage(ctx, *configPath, *backupID, *checksum, *workDir)
	} else {
		path, sum, cleanup, err = m.fetchVerified(ctx, *url, *file, *checksum, *workDir, *keyFile)
	}
	if err != nil {
		return err
	}
	defer cleanup()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}

	// 2. What is in it: a whole set carries its manifest; a single part does not.
	var parts []backup.ManifestPart
	manifest, merr := backup.ReadTrailer(f, st.Size())
	engine := rdsbackup.Engine(*engineName)
	method := rdsbackup.MethodLogical
	if merr == nil {
		engine, method = rdsbackup.Engine(manifest.Engine), rdsbackup.BackupMethod(manifest.Method)
		if *engineName != "" && rdsbackup.Engine(*engineName) != engine {
			return fmt.Errorf("restore: the set is a %s backup, not %s", engine, *engineName)
		}
		if err := verifyParts(f, st.Size(), sum, manifest.Parts); err != nil {
			return err
		}
		parts = manifest.Parts
	} else {
		if *database == "" || engine == "" {
			return usageError{fmt.Errorf("restore: this file has no manifest (%v); for a per-database download give --engine and --database", merr)}
		}
		// A per-database link always serves a database's dump.
		parts = []backup.ManifestPart{{Name: *database, Kind: rdsbackup.PartDatabase, Offset: 0, Length: st.Size()}}
	}
	var r restorer
	switch engine {
	case rdsbackup.EngineMySQL, rdsbackup.EngineMariaDB:
		r = &mysql.Engine{Flavor: engine}
	case rdsbackup.EnginePostgreSQL:
		r = &postgres.Engine{}
	default:
		return usageError{fmt.Errorf("restore: engine %q: use MySQL, MariaDB or PostgreSQL", engine)}
	}

	// 3. Restore.
	if method == rdsbackup.MethodPhysical {
		if *physical == "" {
			return usageError{errors.New("restore: a Physical set needs --data-dir (an empty directory)")}
		}
		return restorePart(ctx, f, parts[0], func(dump io.Reader) error { return r.RestorePhysical(ctx, dump, *physical) })
	}
	dsn := m.Getenv(envTargetDSN)
	if dsn == "" {
		return usageError{fmt.Errorf("restore: set %s to the target server's DSN", envTargetDSN)}
	}
	restored := 0
	for _, p := range parts {
		switch {
		case p.Kind == rdsbackup.PartGlobals:
			if *skipGlobals || (*database != "" && *database != "globals") {
				continue
			}
			pg, ok := r.(*postgres.Engine)
			if !ok {
				continue
			}
			err = restorePart(ctx, f, p, func(dump io.Reader) error { return pg.RestoreGlobals(ctx, dsn, dump) })
		case *database != "" && p.Name != *database:
			continue
		default:
			name := p.Name
			if *as != "" {
				name = *as
			}
			fmt.Fprintf(m.Stderr, "restoring database %s as %s\n", p.Name, name)
			err = restorePart(ctx, f, p, func(dump io.Reader) error { return r.RestoreLogical(ctx, dsn, name, dump) })
		}
		if err != nil {
			return fmt.Errorf("restore %s: %w", p.Name, err)
		}
		restored++
	}
	if *database != "" && restored == 0 {
		return fmt.Errorf("restore: the set has no database %q", *database)
	}
	fmt.Fprintf(m.Stderr, "restored %d part(s)\n", restored)
	return nil
}

// restorePart decompresses one part's byte range into fn.
func restorePart(ctx context.Context, f *os.File, p backup.ManifestPart, fn func(io.Reader) error) error {
	dec, err := zstd.NewReader(io.NewSectionReader(f, p.Offset, p.Length), zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer dec.Close()
	return fn(dec)
}

// verifyParts checks each part's CRC64 against the manifest, given sum, the
// CRC64 of the whole file, computed while it was downloaded or read. When
// the parts tile the file from its start to the trailer, as the backup
// writes them, that check needs no second pass: see partsAddUp. The parts
// are read again only when they do not tile the file, or to name the one
// that does not match.
func verifyParts(f io.ReaderAt, size int64, sum uint64, parts []backup.ManifestPart) error {
	if partsAddUp(f, size, sum, parts) {
		return nil
	}
	table := crc64.MakeTable(crc64.ECMA)
	for _, p := range parts {
		h := crc64.New(table)
		if _, err := io.Copy(h, io.NewSectionReader(f, p.Offset, p.Length)); err != nil {
			return err
		}
		if got := backup.FormatChecksum(h.Sum64()); got != p.Checksum {
			return fmt.Errorf("restore: part %s is corrupt: CRC64 %s, manifest says %s; nothing was restored", p.Name, got, p.Checksum)
		}
	}
	return nil
}

// maxTrailer bounds the bytes after the last part that partsAddUp hashes:
// the trailer frame of the largest manifest ReadTrailer accepts.
const maxTrailer = 64<<20 + 16

// partsAddUp reports whether the manifest's part CRC64s, combined with the
// CRC64 of the bytes after the last part (the trailer), give sum. The
// combination is the CRC64 the file would have if every part matched its
// manifest entry, so this is the per-part check (to CRC64's strength)
// without reading the parts again. False when the parts do not tile the
// file from offset 0 or a checksum does not parse.
func partsAddUp(f io.ReaderAt, size int64, sum uint64, parts []backup.ManifestPart) bool {
	var combined uint64
	var off int64
	for _, p := range parts {
		crc, err := strconv.ParseUint(p.Checksum, 10, 64)
		if err != nil || p.Offset != off || p.Length < 0 {
			return false
		}
		combined = backup.CombineCRC64(combined, crc, p.Length)
		off += p.Length
	}
	if off > size || size-off > maxTrailer {
		return false
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	if _, err := io.Copy(h, io.NewSectionReader(f, off, size-off)); err != nil {
		return false
	}
	return backup.CombineCRC64(combined, h.Sum64(), size-off) == sum
}

// fetchVerified returns a private copy of the set, in workDir, whose CRC64
// matches what the server (and the user) say it must be, and that CRC64.
// The source — a download or --file — is read once, into the copy, which
// everything after reads: a file that changes while the restore runs cannot
// put bytes that were not checked into the target.
func (m *Main) fetchVerified(ctx context.Context, url, file, want, workDir, keyFile string) (string, uint64, func(), error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", 0, nil, err
		}
		defer f.Close()
		src, err := m.decryptFile(f, keyFile)
		if err != nil {
			return "", 0, nil, fmt.Errorf("restore: %s: %s; nothing was restored", file, describeErr(err))
		}
		defer src.Close()
		path, sum, n, cleanup, err := spool(src, workDir)
		if err != nil {
			return "", 0, nil, fmt.Errorf("restore: read %s: %s; nothing was restored", file, describeErr(err))
		}
		if got := backup.FormatChecksum(sum); want != "" && got != want {
			cleanup()
			return "", 0, nil, fmt.Errorf("restore: %s has CRC64 %s, expected %s; nothing was restored", file, got, want)
		}
		fmt.Fprintf(m.Stderr, "copied %d bytes of %s to %s, CRC64 %s\n", n, file, workDir, backup.FormatChecksum(sum))
		return path, sum, cleanup, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, nil, fmt.Errorf("restore: bad --url: %w", err)
	}
	resp, err := (&http.Client{Timeout: 0}).Do(req)
	if err != nil {
		return "", 0, nil, fmt.Errorf("restore: download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", 0, nil, fmt.Errorf("restore: download: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	start := time.Now()
	path, sum, n, cleanup, err := spool(resp.Body, workDir)
	if err != nil {
		return "", 0, nil, fmt.Errorf("restore: download: %w", err)
	}
	if cl := resp.ContentLength; cl >= 0 && n != cl {
		cleanup()
		return "", 0, nil, fmt.Errorf("restore: download cut short: %d of %d bytes", n, cl)
	}
	got := backup.FormatChecksum(sum)
	for _, w := range []string{resp.Header.Get("x-oss-hash-crc64ecma"), want} {
		if w != "" && w != got {
			cleanup()
			return "", 0, nil, fmt.Errorf("restore: downloaded data has CRC64 %s, expected %s; nothing was restored", got, w)
		}
	}
	fmt.Fprintf(m.Stderr, "downloaded %d bytes in %v, CRC64 %s verified\n", n, time.Since(start).Round(time.Millisecond), got)
	return path, sum, cleanup, nil
}

// decryptFile returns f's content, decrypted when f is an object copied
// from the storage in its encrypted form (a presigned S3 link serves those).
// f is read once, as a stream (it may be a pipe). A missing or wrong key
// fails the spool, before anything is restored. Close stops the decryption.
func (m *Main) decryptFile(f io.Reader, keyFile string) (io.ReadCloser, error) {
	br := bufio.NewReader(f)
	prefix, _ := br.Peek(8)
	if !encrypted.IsEncrypted(prefix) {
		return io.NopCloser(br), nil
	}
	keys, err := m.keysFor("", keyFile)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := encrypted.Decrypt(pw, br, keys)
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// fetchFromStorage copies set id from the config's backup storage into a
// private file in workDir and checks it against the catalog's Checksum
// (and want).
func (m *Main) fetchFromStorage(ctx context.Context, configPath string, id int64, want, workDir string) (string, uint64, func(), error) {
	cfg := DefaultConfig()
	if configPath != "" {
		var err error
		if cfg, err = ReadConfigFile(configPath, m.Getenv); err != nil {
			return "", 0, nil, err
		}
	}
	logger := m.logger()
	db, _, err := m.openCatalog(ctx, cfg, logger)
	if err != nil {
		return "", 0, nil, err
	}
	defer db.Close()
	set, err := db.FindBackupSet(ctx, id)
	if err != nil {
		return "", 0, nil, fmt.Errorf("restore: backup set %d: %w", id, err)
	}
	if !set.Available || set.ObjectKey == "" {
		return "", 0, nil, fmt.Errorf("restore: backup set %d is %s and has no data to restore", id, set.Status)
	}
	store, storage, err := m.openStoreForTool(ctx, cfg, logger)
	if err != nil {
		return "", 0, nil, err
	}
	rc, err := store.Open(ctx, set.ObjectKey, 0, -1)
	if err != nil {
		return "", 0, nil, fmt.Errorf("restore: read backup set %d: %w", id, err)
	}
	defer rc.Close()
	start := time.Now()
	path, sum, n, cleanup, err := spool(rc, workDir)
	if err != nil {
		return "", 0, nil, fmt.Errorf("restore: read backup set %d: %w", id, err)
	}
	got := backup.FormatChecksum(sum)
	for _, w := range []string{set.Checksum, want} {
		if w != "" && w != got {
			cleanup()
			return "", 0, nil, fmt.Errorf("restore: backup set %d has CRC64 %s, expected %s; nothing was restored", id, got, w)
		}
	}
	fmt.Fprintf(m.Stderr, "read %d bytes of backup set %d from %s in %v, CRC64 %s verified\n", n, id, storage.Describe, time.Since(start).Round(time.Millisecond), got)
	return path, sum, cleanup, nil
}

// spool copies src into a new 0600 file in workDir, computing its CRC64 on
// the way, and returns the file's path, the CRC64, the byte count and a
// function that removes the file.
func spool(src io.Reader, workDir string) (string, uint64, int64, func(), error) {
	tmp, err := os.CreateTemp(workDir, "rdsbackup-restore-*.zst")
	if err != nil {
		return "", 0, 0, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(io.MultiWriter(tmp, h), src)
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		cleanup()
		return "", 0, 0, nil, err
	}
	return tmp.Name(), h.Sum64(), n, cleanup, nil
}

// restoreToTime is `restore --time`: the service's catalog and storage,
// opened read-mostly beside a running service, and the engine's restore to
// a time.
func (m *Main) restoreToTime(ctx context.Context, at, instance, configPath, database, as, dataDir, workDir string) error {
	t, err := time.Parse("2006-01-02T15:04:05Z", at)
	if err != nil {
		return usageError{fmt.Errorf("restore: --time %q: use yyyy-MM-ddTHH:mm:ssZ (UTC)", at)}
	}
	if instance == "" || configPath == "" {
		return usageError{errors.New("restore: --time needs --instance and --config")}
	}
	if as != "" && database == "" {
		return usageError{errors.New("restore: --as needs --database")}
	}
	cfg, err := ReadConfigFile(configPath, m.Getenv)
	if err != nil {
		return err
	}
	logger := m.logger()
	db, _, err := m.openCatalog(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	src, err := db.FindInstance(ctx, instance)
	if err != nil {
		return fmt.Errorf("restore: instance %s: %w", instance, err)
	}
	rs := backup.Restore{Source: src, Time: t, DataDir: dataDir}
	if database != "" {
		name := database
		if as != "" {
			name = as
		}
		rs.Databases = map[string]string{database: name}
	}
	if dataDir == "" {
		dsn := m.Getenv(envTargetDSN)
		if dsn == "" {
			return usageError{fmt.Errorf("restore: set %s to the target server's DSN (or give --data-dir)", envTargetDSN)}
		}
		rs.Target = &rdsbackup.Instance{ID: "target", Engine: src.Engine, DSN: dsn}
	}
	tmp := filepath.Join(workDir, "rdsbackup-restore")
	// Read through the service's encryption at rest (read-only: no key
	// file is made).
	store, _, err := m.openStoreForTool(ctx, cfg, logger)
	if err != nil {
		return err
	}
	rec := &backup.Recoverer{Catalog: db, Store: store, WorkDir: tmp, Logger: logger,
		Engines: pitrEngines(engines(logger, workDir, nil))}
	defer os.RemoveAll(tmp)
	id, err := rec.RestoreInto(ctx, rs, func(p int) { fmt.Fprintf(m.Stderr, "restore: %d%%\n", p) })
	if err != nil {
		if rdsbackup.ErrorCode(err) != rdsbackup.EINTERNAL {
			return fmt.Errorf("restore: %s", rdsbackup.ErrorMessage(err))
		}
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(m.Stderr, "restored %s to %s from backup set %d and its logs\n", instance, t.Format(time.RFC3339), id)
	return nil
}

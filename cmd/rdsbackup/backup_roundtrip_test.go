package main

// Round trips through the service with the official SDK: CreateBackup,
// DescribeBackupTasks until Finished, DescribeBackups, the download links,
// and the restore subcommand into fresh servers, for every engine and
// method; tampered downloads; rebuild-catalog.

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// unicodeDB is a database name beyond ASCII, on both engines.
const unicodeDB = "t_ünï_数据"

// makeUnicodeMariaDB adds a small database with a non-ASCII name: NULLs,
// binary values, 4-byte UTF-8, a view and a trigger.
func makeUnicodeMariaDB(t *testing.T, src *enginetest.MariaDB) string {
	t.Helper()
	admin := src.DB(t, "")
	if _, err := admin.Exec("CREATE DATABASE `" + unicodeDB + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatal(err)
	}
	db := src.DB(t, unicodeDB)
	for _, q := range []string{
		"CREATE TABLE `notes_ü` (id INT PRIMARY KEY, body TEXT NULL, raw VARBINARY(64) NULL, mark VARCHAR(20) NULL) DEFAULT CHARSET=utf8mb4",
		"CREATE TRIGGER `notes_ü_mark` BEFORE INSERT ON `notes_ü` FOR EACH ROW SET NEW.mark = COALESCE(NEW.mark, '∅')",
		"INSERT INTO `notes_ü` VALUES (1, 'naïve — 😀 日本語', 0x00FF10275C, '𝄞'), (2, NULL, NULL, NULL), (3, '', X'', ''), (4, 'quote '' and \\\\ backslash', 0x0A0D00, 'x')",
		"CREATE VIEW `v_ü` AS SELECT id, body, mark FROM `notes_ü` WHERE body IS NOT NULL",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return unicodeDB
}

// makeUnicodePostgres adds the same kind of database to PostgreSQL, with a
// function and a trigger.
func makeUnicodePostgres(t *testing.T, src *enginetest.Postgres) string {
	t.Helper()
	if _, err := src.DB(t, "postgres").Exec(`CREATE DATABASE "` + unicodeDB + `"`); err != nil {
		t.Fatal(err)
	}
	db := src.DB(t, unicodeDB)
	for _, q := range []string{
		`CREATE TABLE "notes_ü" (id integer PRIMARY KEY, body text, raw bytea, mark text)`,
		`CREATE FUNCTION "mark_ü"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.mark := coalesce(NEW.mark, '∅'); RETURN NEW; END $$`,
		`CREATE TRIGGER "notes_ü_mark" BEFORE INSERT ON "notes_ü" FOR EACH ROW EXECUTE FUNCTION "mark_ü"()`,
		`INSERT INTO "notes_ü" VALUES (1, 'naïve — 😀 日本語', '\x00ff10275c', '𝄞'), (2, NULL, NULL, NULL), (3, '', '\x', ''), (4, 'quote '' and \ backslash', '\x0a0d00', 'x')`,
		`CREATE VIEW "v_ü" AS SELECT id, body, mark FROM "notes_ü" WHERE body IS NOT NULL`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return unicodeDB
}

// readManifest reads the manifest stored beside a set.
func readManifest(t *testing.T, dataDir, inst, id string) (m struct {
	Parts []struct {
		Name           string
		Offset, Length int64
	}
}) {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(dataDir, "storage", "backups", inst, id, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBackupMariaDB(t *testing.T) {
	t.Parallel()
	// No quote or backslash (see newBackupFixture); characters a DSN must
	// carry as they are.
	const srcPW, dstPW = "src pw:@/%#1!", "dst pw:@/%#2!"
	const inst = "rm-maria"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 11, LogBin: true, RootPassword: srcPW})
	dbA, dbB := src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, dbA), 2000)
	enginetest.FillMariaDB(t, src.DB(t, dbB), 300)
	dbU := makeUnicodeMariaDB(t, src)
	dbs := []string{dbA, dbB, dbU}
	want := map[string]map[string]string{}
	for _, d := range dbs {
		want[d] = enginetest.MariaDBContents(t, src.DB(t, d))
	}
	version := mariadbVersion(t, src.DB(t, ""))

	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	svc := fx.start(t)
	c := rootClients(t, svc)
	target := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: dstPW})
	targetAdmin := target.DB(t, "")

	var full, subset backupOut
	t.Run("Logical", func(t *testing.T) {
		start := time.Now()
		id := createBackup(t, c, inst, "Logical", nil)
		tr := waitFinished(t, c, inst, id)
		t.Logf("job %s: statuses %v, processes %v", id, tr.Statuses, tr.Processes)
		full = describeSet(t, c, inst, id)
		checkSuccessSet(t, full, inst, wantSet{Method: "Logical", Engine: "MariaDB", EngineVersion: version, HostID: "11",
			DBNames: dbs, Scale: "DBInstance", Start: start, End: time.Now()})
		if names := linkNames(full); !sameSet(names, dbs) {
			t.Errorf("BackupDownloadLinkByDB names %q, want one per database %q", names, dbs)
		}
		checkDownloads(t, full)

		// The whole set into a fresh server with another password.
		mustRestore(t, target.DSN(""), "--url", full.BackupDownloadURL)
		for _, d := range dbs {
			sameContents(t, "restored "+d, want[d], enginetest.MariaDBContents(t, target.DB(t, d)))
		}
	})
	if full.BackupId == "" {
		t.FailNow()
	}

	t.Run("PerDatabaseLink", func(t *testing.T) {
		for _, d := range []string{dbA, dbU} {
			as := "copy_" + d
			mustRestore(t, target.DSN(""), "--url", dbLink(t, full, d), "--engine", "MariaDB", "--database", d, "--as", as)
			sameContents(t, "database "+d+" restored from its link as "+as, want[d], enginetest.MariaDBContents(t, target.DB(t, as)))
		}
	})

	t.Run("LogicalSubset", func(t *testing.T) {
		start := time.Now()
		id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) {
			r.BackupStrategy, r.DBName = "db", dbB
		})
		waitFinished(t, c, inst, id)
		subset = describeSet(t, c, inst, id)
		checkSuccessSet(t, subset, inst, wantSet{Method: "Logical", Engine: "MariaDB", EngineVersion: version, HostID: "11",
			DBNames: []string{dbB}, Scale: "Database", Start: start, End: time.Now()})
		if names := linkNames(subset); !slices.Equal(names, []string{dbB}) {
			t.Errorf("BackupDownloadLinkByDB names %q, want [%s]", names, dbB)
		}
		checkDownloads(t, subset)
		as := dbB + "_subset"
		mustRestore(t, target.DSN(""), "--url", subset.BackupDownloadURL, "--database", dbB, "--as", as)
		sameContents(t, "subset restored as "+as, want[dbB], enginetest.MariaDBContents(t, target.DB(t, as)))
	})

	t.Run("Physical", func(t *testing.T) {
		start := time.Now()
		id := createBackup(t, c, inst, "Physical", nil)
		tr := waitFinished(t, c, inst, id)
		t.Logf("job %s: statuses %v", id, tr.Statuses)
		b := describeSet(t, c, inst, id)
		checkSuccessSet(t, b, inst, wantSet{Method: "Physical", Engine: "MariaDB", EngineVersion: version, HostID: "11",
			DBNames: dbs, Scale: "DBInstance", Start: start, End: time.Now()})
		t.Logf("physical set: MetaStatus %q, BackupDownloadLinkByDB %q, %d bytes", b.MetaStatus, linkNames(b), b.BackupSize)
		checkDownloads(t, b)

		dir := filepath.Join(t.TempDir(), "restored")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mustRestore(t, "", "--url", b.BackupDownloadURL, "--data-dir", dir)
		port := startMariaDBOn(t, dir, srcPW)
		for _, d := range dbs {
			sameContents(t, "physically restored "+d, want[d], enginetest.MariaDBContents(t, openMariaDB(t, port, srcPW, d)))
		}
	})

	t.Run("TamperedDownloadRefused", func(t *testing.T) {
		before := mariadbDatabases(t, targetAdmin)
		// One byte in the middle of the first database's part.
		m := readManifest(t, fx.DataDir, inst, full.BackupId)
		if len(m.Parts) != len(dbs) {
			t.Fatalf("manifest parts %+v", m.Parts)
		}
		victim := m.Parts[0]
		obj := filepath.Join(fx.DataDir, "storage", "backups", inst, full.BackupId, "set.zst")
		f, err := os.OpenFile(obj, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		off := victim.Offset + victim.Length/2
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x5a
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Close()

		for _, args := range [][]string{
			{"--url", full.BackupDownloadURL},
			{"--url", dbLink(t, full, victim.Name), "--engine", "MariaDB", "--database", victim.Name, "--as", "tampered_part"},
		} {
			code, stderr := runRestore(t, target.DSN(""), args...)
			if code != exitFailed || !strings.Contains(stderr, "CRC64") || !strings.Contains(stderr, "nothing was restored") {
				t.Errorf("restore %q of a tampered object: exit %d:\n%s", args[0:2], code, stderr)
			}
			if strings.Contains(stderr, "restoring database") {
				t.Errorf("restore %q of a tampered object started restoring:\n%s", args[0:2], stderr)
			}
		}
		// A wrong --checksum on an intact set.
		code, stderr := runRestore(t, target.DSN(""), "--url", subset.BackupDownloadURL, "--checksum", "1234567890", "--database", dbB, "--as", "wrong_checksum")
		if code != exitFailed || !strings.Contains(stderr, "expected 1234567890") {
			t.Errorf("restore with a wrong --checksum: exit %d:\n%s", code, stderr)
		}
		if after := mariadbDatabases(t, targetAdmin); !slices.Equal(before, after) {
			t.Errorf("refused restores changed the target's databases: %q → %q", before, after)
		}
		// The right --checksum is accepted.
		mustRestore(t, target.DSN(""), "--url", subset.BackupDownloadURL, "--checksum", subset.Checksum, "--database", dbB, "--as", "right_checksum")
		sameContents(t, "restored with --checksum", want[dbB], enginetest.MariaDBContents(t, target.DB(t, "right_checksum")))
	})
}

func TestBackupPostgres(t *testing.T) {
	t.Parallel()
	const srcPW, dstPW = "pg src:@/%#1!", "pg dst:@/%#2!"
	const inst = "pg-main"
	src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: srcPW})
	dbA, dbB := src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillPostgres(t, src.DB(t, dbA), 2000)
	enginetest.FillPostgres(t, src.DB(t, dbB), 300)
	dbU := makeUnicodePostgres(t, src)
	// A database whose name is that of the logical set's roles part.
	if _, err := src.DB(t, "postgres").Exec(`CREATE DATABASE globals`); err != nil {
		t.Fatal(err)
	}
	if _, err := src.DB(t, "globals").Exec(`CREATE TABLE kept (id int PRIMARY KEY, v text); INSERT INTO kept VALUES (1, 'in the database named globals')`); err != nil {
		t.Fatal(err)
	}
	dbs := []string{dbA, dbB, dbU}
	want := map[string]map[string]string{}
	for _, d := range append(dbs, "globals") {
		want[d] = enginetest.PostgresContents(t, src.DB(t, d))
	}
	allDBs := append([]string{"globals", "postgres"}, dbs...)
	version, sysid := postgresVersion(t, src.DB(t, "postgres"))

	fx := newBackupFixture(t, backupInstance{inst, "PostgreSQL", src.URL("postgres")})
	svc := fx.start(t)
	c := rootClients(t, svc)
	target := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: dstPW})

	sets := map[string]backupOut{} // by BackupId
	t.Run("Logical", func(t *testing.T) {
		start := time.Now()
		id := createBackup(t, c, inst, "Logical", nil)
		tr := waitFinished(t, c, inst, id)
		t.Logf("job %s: statuses %v, processes %v", id, tr.Statuses, tr.Processes)
		b := describeSet(t, c, inst, id)
		sets[id] = b
		checkSuccessSet(t, b, inst, wantSet{Method: "Logical", Engine: "PostgreSQL", EngineVersion: version, HostID: sysid,
			DBNames: allDBs, Scale: "DBInstance", Start: start, End: time.Now()})
		checkDownloads(t, b)

		mustRestore(t, target.URL("postgres"), "--url", b.BackupDownloadURL)
		for _, d := range dbs {
			sameContents(t, "restored "+d, want[d], enginetest.PostgresContents(t, target.DB(t, d)))
		}
		// The target's superuser keeps its own password (target.DB
		// connects with it).
		target.DB(t, "postgres")

		for _, d := range []string{dbA, dbU} {
			as := "copy_" + d
			mustRestore(t, target.URL("postgres"), "--url", dbLink(t, b, d), "--engine", "PostgreSQL", "--database", d, "--as", as)
			sameContents(t, "database "+d+" restored from its link as "+as, want[d], enginetest.PostgresContents(t, target.DB(t, as)))
		}

		// BackupDownloadLinkByDB is "the download links of each database":
		// the globals part (roles) is not a database, and a database
		// named "globals" would be indistinguishable from it.
		t.Run("DownloadLinkByDBListsDatabasesOnly", func(t *testing.T) {
			if names := linkNames(b); !sameSet(names, allDBs) {
				t.Errorf("BackupDownloadLinkByDB names %q, want one per database %q", names, allDBs)
			}
		})
		// So the link DescribeBackups gives for the database "globals"
		// must restore that database.
		t.Run("DatabaseNamedGlobals", func(t *testing.T) {
			code, stderr := runRestore(t, target.URL("postgres"), "--url", dbLink(t, b, "globals"), "--engine", "PostgreSQL", "--database", "globals", "--as", "globals_copy")
			if code != exitOK {
				t.Fatalf("restore of the database globals from its link: exit %d\n%s", code, stderr)
			}
			if !slices.Contains(postgresDatabases(t, target.DB(t, "postgres")), "globals_copy") {
				t.Fatalf("the link of the database globals restored no database globals_copy:\n%s", stderr)
			}
			sameContents(t, "database globals restored from its link", want["globals"], enginetest.PostgresContents(t, target.DB(t, "globals_copy")))
		})
	})

	t.Run("Physical", func(t *testing.T) {
		start := time.Now()
		id := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, id)
		b := describeSet(t, c, inst, id)
		sets[id] = b
		checkSuccessSet(t, b, inst, wantSet{Method: "Physical", Engine: "PostgreSQL", EngineVersion: version, HostID: sysid,
			DBNames: allDBs, Scale: "DBInstance", Start: start, End: time.Now()})
		t.Logf("physical set: MetaStatus %q, BackupDownloadLinkByDB %q, %d bytes", b.MetaStatus, linkNames(b), b.BackupSize)
		checkDownloads(t, b)

		dir := postgresDataDir(t)
		mustRestore(t, "", "--url", b.BackupDownloadURL, "--data-dir", dir)
		u := startPostgresOn(t, src, dir, srcPW)
		for _, d := range dbs {
			sameContents(t, "physically restored "+d, want[d], enginetest.PostgresContents(t, openPostgres(t, u, d)))
		}
		if _, got := postgresVersion(t, openPostgres(t, u, "postgres")); got != sysid {
			t.Errorf("restored system identifier %s, source %s", got, sysid)
		}
	})
	if len(sets) != 2 {
		t.FailNow()
	}

	t.Run("RebuildCatalog", func(t *testing.T) {
		svc.Stop()
		matches, _ := filepath.Glob(filepath.Join(fx.DataDir, "catalog.db*"))
		if len(matches) == 0 {
			t.Fatal("no catalog.db in the data directory")
		}
		for _, p := range matches {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		empty := fx.start(t)
		if resp, err := describeBackups(t, rootClients(t, empty), func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = inst }); err != nil || len(resp.Items.Backup) != 0 {
			t.Fatalf("the new catalog lists %v (%v)", resp, err)
		}
		empty.Stop()

		var stdout, stderr syncBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(fx.Env)}
		if code := m.Run(t.Context(), []string{"rebuild-catalog", "--config", fx.configFile(t)}); code != exitOK {
			t.Fatalf("rebuild-catalog: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "imported 2 backup set(s)") {
			t.Errorf("rebuild-catalog says: %s%s", stdout.String(), stderr.String())
		}

		svc2 := fx.start(t)
		c2 := rootClients(t, svc2)
		resp, err := describeBackups(t, c2, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = inst })
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, b := range resp.Items.Backup {
			ids = append(ids, b.BackupId)
		}
		if !sameSet(ids, slices.Collect(maps.Keys(sets))) {
			t.Fatalf("after rebuild-catalog: sets %v, want %d sets", ids, len(sets))
		}
		maxID := int64(0)
		for id, before := range sets {
			n, _ := strconv.ParseInt(id, 10, 64)
			maxID = max(maxID, n)
			after := describeSet(t, c2, inst, id)
			if after.Checksum != before.Checksum || after.BackupSize != before.BackupSize {
				t.Errorf("set %s after rebuild: Checksum %s size %d, before %s %d", id, after.Checksum, after.BackupSize, before.Checksum, before.BackupSize)
			}
			// Every other field but the links (signed anew, on a new port)
			// is the same too.
			strip := func(b backupOut) backupOut {
				b.BackupDownloadURL, b.BackupIntranetDownloadURL = "", ""
				b.BackupDownloadLinkByDB = rds.BackupDownloadLinkByDB{BackupDownloadLinkByDBItem: slices.Clone(b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem)}
				for i := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
					l := &b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem[i]
					l.DownloadLink, l.IntranetDownloadLink = "", ""
				}
				return b
			}
			if a, b := strip(after), strip(before); !jsonEqual(a, b) {
				t.Errorf("set %s after rebuild:\n%s\nbefore:\n%s", id, jsonString(a), jsonString(b))
			}
			checkDownloads(t, after)
		}

		// A new backup after the rebuild takes an id above the rebuilt
		// sets' and leaves them intact.
		id := createBackup(t, c2, inst, "Logical", func(r *rds.CreateBackupRequest) { r.DBName = dbB })
		if n, _ := strconv.ParseInt(id, 10, 64); n <= maxID {
			t.Errorf("new job id %s after rebuild; the rebuilt sets go up to %d", id, maxID)
		}
		waitFinished(t, c2, inst, id)
		checkDownloads(t, describeSet(t, c2, inst, id))
		for id := range sets {
			checkDownloads(t, describeSet(t, c2, inst, id))
		}
	})
}

func jsonString(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func jsonEqual(a, b any) bool { return jsonString(a) == jsonString(b) }

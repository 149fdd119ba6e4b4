package main

// Helpers of the backup end-to-end tests (backup_*_test.go): services whose
// instances are real throwaway MariaDB and PostgreSQL servers, CreateBackup
// and DescribeBackupTasks through the official SDK, download checks, the
// restore subcommand run in-process, and servers started on restored
// physical data directories.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	drv "github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
)

// The package's tests start database servers: enginetest.Main copies their
// data directories from templates made once and removes them at the end;
// s3test removes the shared MinIO server.
func TestMain(m *testing.M) { os.Exit(s3test.Around(func() int { return enginetest.Main(m) })) }

// backupInstance is one instance of a backup test service's config.
type backupInstance struct {
	ID, Engine, DSN string
}

// backupFixture is a service configuration over real servers: its DSNs
// reach the config through ${VAR} expansion (as the README recommends for
// secrets), so that no character of a password needs YAML quoting.
type backupFixture struct {
	DataDir string
	YAML    string
	Env     map[string]string
}

func newBackupFixture(t testing.TB, insts ...backupInstance) *backupFixture {
	t.Helper()
	f := &backupFixture{DataDir: t.TempDir(), Env: map[string]string{}}
	var b strings.Builder
	b.WriteString("instances:\n")
	for i, in := range insts {
		if strings.ContainsAny(in.DSN, "\"\\") {
			t.Fatalf("DSN of %s: keep quotes and backslashes out of test DSNs (they end up in a double-quoted YAML scalar)", in.ID)
		}
		v := fmt.Sprintf("RDSBACKUP_TEST_DSN_%d", i)
		f.Env[v] = in.DSN
		fmt.Fprintf(&b, "  - id: %s\n    engine: %s\n    dsn: \"${%s}\"\n", in.ID, in.Engine, v)
	}
	f.YAML = b.String()
	return f
}

// start runs the service in-process on the fixture's data directory.
func (f *backupFixture) start(t testing.TB) *testService {
	t.Helper()
	return startService(t, f.DataDir, f.YAML, testEnv(f.Env))
}

// configFile writes the config startService would use (without its listen
// address), for rebuild-catalog and child processes.
func (f *backupFixture) configFile(t testing.TB) string {
	t.Helper()
	// As startService: no automated backups, whatever the time of day.
	enc := ""
	if !strings.Contains(f.YAML, "encryption:") {
		enc = "encryption:\n  enabled: false\n"
	}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\nbackups:\n  schedule: false\n%s%s", f.DataDir, enc, f.YAML)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// createBackup calls CreateBackup and returns the BackupJobId.
func createBackup(t testing.TB, c *clients, inst, method string, setup func(*rds.CreateBackupRequest)) string {
	t.Helper()
	resp, err := tryCreateBackup(t, c, inst, method, setup)
	if err != nil {
		t.Fatalf("CreateBackup %s %s: %v", inst, method, err)
	}
	if n, err := strconv.ParseInt(resp.BackupJobId, 10, 64); err != nil || n <= 0 {
		t.Fatalf("CreateBackup: BackupJobId %q is not a positive number", resp.BackupJobId)
	}
	return resp.BackupJobId
}

func tryCreateBackup(t testing.TB, c *clients, inst, method string, setup func(*rds.CreateBackupRequest)) (*rds.CreateBackupResponse, error) {
	t.Helper()
	req := rds.CreateCreateBackupRequest()
	req.DBInstanceId = inst
	req.BackupMethod = method
	if setup != nil {
		setup(req)
	}
	resp, err := c.RDS.CreateBackup(req)
	if err == nil {
		checkRequestID(t, resp, resp.RequestId)
	}
	return resp, err
}

// taskOut is one job of a raw DescribeBackupTasks body, with the rdsbackup
// extension FailureReason, which the SDK's struct does not have.
type taskOut struct {
	rds.BackupJob
	FailureReason string
	NodeId        string // the node holding the job (rdsbackup extension)
}

// describeTasks calls DescribeBackupTasks through the SDK and decodes the
// body (the SDK's items and FailureReason).
func describeTasks(t testing.TB, c *clients, inst string, setup func(*rds.DescribeBackupTasksRequest)) []taskOut {
	t.Helper()
	req := rds.CreateDescribeBackupTasksRequest()
	req.DBInstanceId = inst
	if setup != nil {
		setup(req)
	}
	resp, err := c.RDS.DescribeBackupTasks(req)
	if err != nil {
		t.Fatalf("DescribeBackupTasks %s: %v", inst, err)
	}
	checkRequestID(t, resp, resp.RequestId)
	var raw struct {
		Items struct{ BackupJob []taskOut }
	}
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &raw); err != nil {
		t.Fatalf("DescribeBackupTasks body: %v\n%s", err, resp.GetHttpContentString())
	}
	if len(raw.Items.BackupJob) != len(resp.Items.BackupJob) {
		t.Fatalf("the SDK read %d jobs, the body has %d", len(resp.Items.BackupJob), len(raw.Items.BackupJob))
	}
	for i := range raw.Items.BackupJob {
		if raw.Items.BackupJob[i].BackupJob != resp.Items.BackupJob[i] {
			t.Errorf("SDK and raw body disagree: %+v vs %+v", resp.Items.BackupJob[i], raw.Items.BackupJob[i].BackupJob)
		}
	}
	return raw.Items.BackupJob
}

// describeJob returns the job with BackupJobId id.
func describeJob(t testing.TB, c *clients, inst, id string) taskOut {
	t.Helper()
	jobs := describeTasks(t, c, inst, func(r *rds.DescribeBackupTasksRequest) { r.BackupJobId = requests.Integer(id) })
	if len(jobs) != 1 || jobs[0].BackupJobId != id {
		t.Fatalf("DescribeBackupTasks BackupJobId=%s: %+v", id, jobs)
	}
	return jobs[0]
}

// jobsWithStatus lists the instance's jobs in one DescribeBackupTasks
// BackupJobStatus (NoStart, Progressing, Finished, Failed).
func jobsWithStatus(t testing.TB, c *clients, inst, status string) []string {
	t.Helper()
	var ids []string
	for _, j := range describeTasks(t, c, inst, func(r *rds.DescribeBackupTasksRequest) { r.BackupJobStatus = status }) {
		ids = append(ids, j.BackupJobId)
	}
	return ids
}

// allJobs lists every job of the instance, whatever its state.
func allJobs(t testing.TB, c *clients, inst string) []string {
	t.Helper()
	var ids []string
	for _, st := range []string{"NoStart", "Progressing", "Finished", "Failed"} {
		ids = append(ids, jobsWithStatus(t, c, inst, st)...)
	}
	slices.Sort(ids)
	return ids
}

// jobTrace is what polling a job saw.
type jobTrace struct {
	Final     taskOut
	Statuses  []string // distinct BackupStatus values in the order seen
	Processes []int    // every Process value seen
}

// waitJob polls DescribeBackupTasks with the job's id until it ends,
// checking on every answer what must hold of a manual backup job.
func waitJob(t testing.TB, c *clients, inst, id string, timeout time.Duration) jobTrace {
	t.Helper()
	var tr jobTrace
	deadline := time.Now().Add(timeout)
	for {
		j := describeJob(t, c, inst, id)
		if j.JobMode != "Manual" || j.TaskAction != "TempBackupTask" {
			t.Errorf("job %s: JobMode %q TaskAction %q, want Manual TempBackupTask", id, j.JobMode, j.TaskAction)
		}
		p, err := strconv.Atoi(j.Process)
		if err != nil || p < 0 || p > 100 {
			t.Errorf("job %s: Process %q", id, j.Process)
		}
		if n := len(tr.Processes); n > 0 && p < tr.Processes[n-1] {
			t.Errorf("job %s: Process went back from %d to %d", id, tr.Processes[n-1], p)
		}
		tr.Processes = append(tr.Processes, p)
		if len(tr.Statuses) == 0 || tr.Statuses[len(tr.Statuses)-1] != j.BackupStatus {
			tr.Statuses = append(tr.Statuses, j.BackupStatus)
		}
		switch j.BackupStatus {
		case "Finished", "Failed":
			tr.Final = j
			return tr
		case "NoStart", "Preparing", "Waiting", "Uploading", "Checking":
			if j.BackupId != "" {
				t.Errorf("job %s is %s and already names BackupId %q", id, j.BackupStatus, j.BackupId)
			}
			if p >= 100 {
				t.Errorf("job %s is %s at Process %d", id, j.BackupStatus, p)
			}
			if j.BackupProgressStatus != j.BackupStatus {
				t.Errorf("job %s: BackupProgressStatus %q, BackupStatus %q", id, j.BackupProgressStatus, j.BackupStatus)
			}
		default:
			t.Fatalf("job %s: unknown BackupStatus %q", id, j.BackupStatus)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %v (statuses %v)", id, j.BackupStatus, timeout, tr.Statuses)
		}
		time.Sleep(40 * time.Millisecond)
	}
}

// waitFinished waits for a job that must succeed and checks its end.
func waitFinished(t testing.TB, c *clients, inst, id string) jobTrace {
	t.Helper()
	tr := waitJob(t, c, inst, id, 3*time.Minute)
	if tr.Final.BackupStatus != "Finished" {
		t.Fatalf("job %s ended %s: %s", id, tr.Final.BackupStatus, tr.Final.FailureReason)
	}
	if tr.Final.Process != "100" || tr.Final.BackupId != id || tr.Final.BackupProgressStatus != "Finished" || tr.Final.FailureReason != "" {
		t.Errorf("finished job: %+v, want Process 100 and BackupId %s", tr.Final, id)
	}
	return tr
}

// backupOut is one set of a raw DescribeBackups body: the SDK's fields and
// the rdsbackup extension FailureReason.
type backupOut struct {
	rds.Backup
	FailureReason string
	// The last restore drill's verdict (docs/drills.md).
	VerifyStatus, VerifyTime, VerifyFailureReason string
}

// describeSet returns set id of inst through DescribeBackups (BackupId).
func describeSet(t testing.TB, c *clients, inst, id string) backupOut {
	t.Helper()
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId, r.BackupId = inst, id })
	if err != nil {
		t.Fatalf("DescribeBackups %s %s: %v", inst, id, err)
	}
	var raw struct {
		Items struct{ Backup []backupOut }
	}
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if len(resp.Items.Backup) != 1 || len(raw.Items.Backup) != 1 || resp.Items.Backup[0].BackupId != id {
		t.Fatalf("DescribeBackups BackupId=%s: %s", id, resp.GetHttpContentString())
	}
	out := raw.Items.Backup[0]
	out.Backup = resp.Items.Backup[0]
	return out
}

// linkNames lists the DataBase of every BackupDownloadLinkByDB entry.
func linkNames(b backupOut) []string {
	var names []string
	for _, l := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
		names = append(names, l.DataBase)
	}
	return names
}

// link returns the DownloadLink of database db.
func dbLink(t testing.TB, b backupOut, db string) string {
	t.Helper()
	for _, l := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
		if l.DataBase == db {
			return l.DownloadLink
		}
	}
	t.Fatalf("set %s has no download link for %q (links %v)", b.BackupId, db, linkNames(b))
	return ""
}

// wantSet is what a successful set must show.
type wantSet struct {
	Method, Engine, EngineVersion, HostID string
	DBNames                               []string
	Scale                                 string
	Start, End                            time.Time // bounds of ConsistentTime
}

// checkSuccessSet checks DescribeBackups' fields of a successful manual
// backup.
func checkSuccessSet(t testing.TB, b backupOut, inst string, w wantSet) {
	t.Helper()
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf("set %s: "+format, append([]any{b.BackupId}, args...)...)
	}
	if b.BackupStatus != "Success" || b.IsAvail != 1 || b.FailureReason != "" {
		errorf("BackupStatus %q IsAvail %d FailureReason %q", b.BackupStatus, b.IsAvail, b.FailureReason)
	}
	if b.DBInstanceId != inst || b.BackupMode != "Manual" || b.BackupInitiator != "User" || b.StoreStatus != "Enabled" || b.BackupType != "FullBackup" {
		errorf("DBInstanceId %q BackupMode %q BackupInitiator %q StoreStatus %q BackupType %q", b.DBInstanceId, b.BackupMode, b.BackupInitiator, b.StoreStatus, b.BackupType)
	}
	if b.BackupMethod != w.Method || b.Engine != w.Engine || b.EngineVersion != w.EngineVersion {
		errorf("BackupMethod %q Engine %q EngineVersion %q, want %s %s %s", b.BackupMethod, b.Engine, b.EngineVersion, w.Method, w.Engine, w.EngineVersion)
	}
	if b.HostInstanceID == "" || (w.HostID != "" && b.HostInstanceID != w.HostID) {
		errorf("HostInstanceID %q, want %q", b.HostInstanceID, w.HostID)
	}
	if b.ConsistentTime < w.Start.Unix()-1 || b.ConsistentTime > w.End.Unix()+1 {
		errorf("ConsistentTime %d not within the backup (%d..%d)", b.ConsistentTime, w.Start.Unix(), w.End.Unix())
	}
	if w.Method == "Logical" && b.MetaStatus != "OK" {
		errorf("MetaStatus %q, want OK", b.MetaStatus)
	}
	if got := strings.Split(b.BackupDBNames, ","); !sameSet(got, w.DBNames) {
		errorf("BackupDBNames %q, want %q", b.BackupDBNames, strings.Join(w.DBNames, ","))
	}
	if w.Scale != "" && b.BackupScale != w.Scale {
		errorf("BackupScale %q, want %q", b.BackupScale, w.Scale)
	}
	if b.BackupSize <= 0 || b.Checksum == "" || b.BackupDownloadURL == "" || b.BackupIntranetDownloadURL == "" {
		errorf("BackupSize %d Checksum %q BackupDownloadURL %q", b.BackupSize, b.Checksum, b.BackupDownloadURL)
	}
	if _, err := strconv.ParseUint(b.Checksum, 10, 64); err != nil {
		errorf("Checksum %q is not an unsigned decimal", b.Checksum)
	}
	for _, ts := range []string{b.BackupStartTime, b.BackupEndTime} {
		if _, err := time.Parse("2006-01-02T15:04:05Z", ts); err != nil {
			errorf("time %q: %v", ts, err)
		}
	}
}

// checkFailedSet checks DescribeBackups' fields of a failed backup: no
// data, no links, the reason.
func checkFailedSet(t testing.TB, b backupOut, reasonRE string) {
	t.Helper()
	if b.BackupStatus != "Failed" || b.IsAvail != 0 {
		t.Errorf("set %s: BackupStatus %q IsAvail %d, want Failed 0", b.BackupId, b.BackupStatus, b.IsAvail)
	}
	if b.BackupDownloadURL != "" || b.BackupIntranetDownloadURL != "" || len(b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem) != 0 {
		t.Errorf("failed set %s has download links: %q %v", b.BackupId, b.BackupDownloadURL, linkNames(b))
	}
	if b.MetaStatus == "OK" {
		t.Errorf("failed set %s: MetaStatus OK", b.BackupId)
	}
	if !regexp.MustCompile(reasonRE).MatchString(b.FailureReason) {
		t.Errorf("failed set %s: FailureReason %q does not match %s", b.BackupId, b.FailureReason, reasonRE)
	}
}

var crcTable = crc64.MakeTable(crc64.ECMA)

func crcOf(b []byte) string { return strconv.FormatUint(crc64.Checksum(b, crcTable), 10) }

// download GETs a link with net/http.
func downloadLink(t testing.TB, link string) ([]byte, http.Header) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatalf("download %s: %v", link, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("download %s: %v", link, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download %s: %s: %s", link, resp.Status, body)
	}
	return body, resp.Header
}

// checkDownloads downloads the whole set and every per-database link and
// checks their CRC64 against Checksum and x-oss-hash-crc64ecma. It returns
// the whole object.
func checkDownloads(t testing.TB, b backupOut) []byte {
	t.Helper()
	body, h := downloadLink(t, b.BackupDownloadURL)
	if got := crcOf(body); got != b.Checksum {
		t.Errorf("set %s: downloaded CRC64 %s, Checksum %s", b.BackupId, got, b.Checksum)
	}
	if int64(len(body)) != b.BackupSize {
		t.Errorf("set %s: downloaded %d bytes, BackupSize %d", b.BackupId, len(body), b.BackupSize)
	}
	if hdr := h.Get("x-oss-hash-crc64ecma"); hdr != b.Checksum {
		t.Errorf("set %s: x-oss-hash-crc64ecma %q, Checksum %s", b.BackupId, hdr, b.Checksum)
	}
	intra, _ := downloadLink(t, b.BackupIntranetDownloadURL)
	if crcOf(intra) != b.Checksum {
		t.Errorf("set %s: the intranet link serves other bytes", b.BackupId)
	}
	for _, l := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
		part, h := downloadLink(t, l.DownloadLink)
		hdr := h.Get("x-oss-hash-crc64ecma")
		if got := crcOf(part); hdr == "" || got != hdr {
			t.Errorf("set %s, link of %q: CRC64 %s, x-oss-hash-crc64ecma %q", b.BackupId, l.DataBase, got, hdr)
		}
		if len(part) == 0 || len(part) >= len(body) {
			t.Errorf("set %s, link of %q: %d bytes of a %d-byte set", b.BackupId, l.DataBase, len(part), len(body))
		}
		if !strings.Contains(string(body), string(part)) {
			t.Errorf("set %s, link of %q: not a range of the set", b.BackupId, l.DataBase)
		}
	}
	return body
}

// runRestore runs `rdsbackup restore args...` in-process with the target
// DSN in its environment; it returns the exit code and stderr.
func runRestore(t testing.TB, targetDSN string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	env := map[string]string{envTargetDSN: targetDSN}
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append([]string{"restore", "--work-dir", t.TempDir()}, args...)
	code := m.Run(ctx, args)
	return code, stderr.String()
}

// mustRestore runs a restore that must succeed.
func mustRestore(t testing.TB, targetDSN string, args ...string) {
	t.Helper()
	if code, stderr := runRestore(t, targetDSN, args...); code != exitOK {
		t.Fatalf("restore %v: exit %d:\n%s", args, code, stderr)
	}
}

// storageFiles lists the regular files under dataDir/storage, relative
// to it (temporary files under .tmp included).
func storageFiles(t testing.TB, dataDir string) []string {
	t.Helper()
	root := filepath.Join(dataDir, "storage")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// setFiles are the stored files of set id of inst.
func setFiles(files []string, inst, id string) []string {
	var out []string
	for _, f := range files {
		if strings.HasPrefix(f, "backups/"+inst+"/"+id+"/") {
			out = append(out, f)
		}
	}
	return out
}

// tmpFiles are the storage's temporary files.
func tmpFiles(files []string) []string {
	var out []string
	for _, f := range files {
		if strings.HasPrefix(f, ".tmp/") {
			out = append(out, f)
		}
	}
	return out
}

// tmpBytes is the size of the storage's temporary files: data flowing
// into an object being written.
func tmpBytes(dataDir string) int64 {
	entries, _ := os.ReadDir(filepath.Join(dataDir, "storage", ".tmp"))
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// waitUploading polls until the job is Uploading and its object has
// received at least minBytes: the dump tool is streaming.
func waitUploading(t testing.TB, c *clients, inst, id, dataDir string, minBytes int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		j := describeJob(t, c, inst, id)
		if j.BackupStatus == "Uploading" && tmpBytes(dataDir) >= minBytes {
			return
		}
		if j.BackupStatus == "Finished" || j.BackupStatus == "Failed" || time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%s) before the dump was seen streaming; make the test data bigger", id, j.BackupStatus, j.FailureReason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mariadbVersion is "major.minor" of the server of db.
func mariadbVersion(t testing.TB, db *sql.DB) string {
	t.Helper()
	var v string
	if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^\d+\.\d+`).FindString(v)
	if m == "" {
		t.Fatalf("version %q", v)
	}
	return m
}

// postgresVersion is the major version ("15") and the system identifier of
// the server of db.
func postgresVersion(t testing.TB, db *sql.DB) (string, string) {
	t.Helper()
	var num int
	var sysid string
	if err := db.QueryRow("SELECT current_setting('server_version_num')::int, system_identifier::text FROM pg_control_system()").Scan(&num, &sysid); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(num / 10000), sysid
}

// mariadbDatabases lists the server's databases.
func mariadbDatabases(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return queryColumn(t, db, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
}

// postgresDatabases lists the server's databases.
func postgresDatabases(t testing.TB, db *sql.DB) []string {
	t.Helper()
	return queryColumn(t, db, "SELECT datname::text FROM pg_database ORDER BY 1")
}

func queryColumn(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openMariaDB opens a pool on db of the server at port as root.
func openMariaDB(t testing.TB, port int, password, db string) *sql.DB {
	t.Helper()
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = "root", password, "tcp", "127.0.0.1:"+strconv.Itoa(port), db
	pool, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// openPostgres opens a PostgreSQL pool on the server of a URL, on database db.
func openPostgres(t testing.TB, rawURL, db string) *sql.DB {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	pool, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// childServer is a database server the test started on a restored data
// directory.
type childServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func (s *childServer) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *childServer) logText() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// startChild starts a server process in its own process group, with its
// output in logPath, stopped with stopSig when the test ends.
func startChild(t testing.TB, logPath string, stopSig syscall.Signal, cred *syscall.Credential, bin string, args ...string) *childServer {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s := &childServer{cmd: exec.Command(bin, args...), done: make(chan struct{}), log: logPath}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL=C"}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		syscall.Kill(s.cmd.Process.Pid, stopSig)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	})
	return s
}

// freeTCPPort returns a port of 127.0.0.1 that was free a moment ago.
func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// errServerExited: the server process ended while waited for.
var errServerExited = errors.New("the server exited")

// waitSQL polls until query answers on db and returns its value; it fails
// when the server exits or does not answer in time.
func waitSQL(s *childServer, db *sql.DB, query string) (string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var v string
		err := db.QueryRowContext(ctx, query).Scan(&v)
		cancel()
		if err == nil {
			return v, nil
		}
		if s.exited() {
			return "", errServerExited
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no answer after 60s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bindFailure reports whether a server log says its port was taken.
func bindFailure(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "Bind on TCP/IP port") || strings.Contains(log, "could not bind")
}

// startOnDataDir starts a server on a restored data directory with the
// command start makes for a port, retrying on another port when the
// chosen one was taken meanwhile, and returns the port once query answers
// on the pool open returns (whose value must be dataDir).
func startOnDataDir(t testing.TB, dataDir, query string, start func(port int) *childServer, open func(port int) *sql.DB) int {
	t.Helper()
	for try := 1; ; try++ {
		port := freeTCPPort(t)
		s := start(port)
		dir, err := waitSQL(s, open(port), query)
		if err == nil {
			if filepath.Clean(dir) != filepath.Clean(dataDir) {
				t.Fatalf("port %d is another server's (data directory %s)", port, dir)
			}
			return port
		}
		if errors.Is(err, errServerExited) && bindFailure(s.logText()) && try < 3 {
			continue
		}
		t.Fatalf("the server on the restored data directory %s: %v\n%s", dataDir, err, s.logText())
	}
}

// startMariaDBOn starts mariadbd on a restored data directory and returns
// its port once root gets in with password.
func startMariaDBOn(t testing.TB, dataDir, password string) int {
	t.Helper()
	bin, err := exec.LookPath("mariadbd")
	if err != nil {
		bin = "/usr/sbin/mariadbd"
	}
	logPath := filepath.Join(t.TempDir(), "mariadbd.log")
	return startOnDataDir(t, dataDir, "SELECT @@datadir", func(port int) *childServer {
		args := []string{"--no-defaults"}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root")
		}
		args = append(args, "--datadir="+dataDir, "--port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
			"--socket="+filepath.Join(dataDir, "restored.sock"), "--skip-name-resolve", "--character-set-server=utf8mb4",
			"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--skip-innodb-doublewrite", "--skip-log-bin")
		return startChild(t, logPath, syscall.SIGTERM, nil, bin, args...)
	}, func(port int) *sql.DB { return openMariaDB(t, port, password, "") })
}

// postgresCredential is the account postgres runs as when the tests run as
// root (it refuses to run as root).
func postgresCredential(t testing.TB) (*syscall.Credential, int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil, -1, -1
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user to run the server as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid
}

// postgresDataDir returns an empty directory for a restored PostgreSQL data
// directory: owned by the postgres user when the tests run as root, in a
// parent that user can traverse.
func postgresDataDir(t testing.TB) string {
	t.Helper()
	parent, err := os.MkdirTemp("/tmp", "rdsbackup-pgphys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, uid, gid := postgresCredential(t); uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startPostgresOn starts postgres (of src's version) on a restored data
// directory and returns the URL of its postgres database as postgres with
// password.
func startPostgresOn(t testing.TB, src *enginetest.Postgres, dataDir, password string) string {
	t.Helper()
	cred, _, _ := postgresCredential(t)
	pgURL := func(port int) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", password),
			Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/postgres", RawQuery: "sslmode=disable&connect_timeout=2"}
		return u.String()
	}
	logPath := filepath.Join(filepath.Dir(dataDir), "postgres.log")
	port := startOnDataDir(t, dataDir, "SHOW data_directory", func(port int) *childServer {
		return startChild(t, logPath, syscall.SIGINT, cred, src.Bin("postgres"),
			"-D", dataDir, "-p", strconv.Itoa(port), "-k", dataDir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "logging_collector=off")
	}, func(port int) *sql.DB { return openPostgres(t, pgURL(port), "postgres") })
	return pgURL(port)
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// sameContents compares two enginetest content maps.
func sameContents(t testing.TB, what string, want, got map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: no reference contents", what)
	}
	if d := enginetest.DiffContents(want, got); d != "" {
		t.Errorf("%s differs from the source:\n%s", what, d)
	}
}

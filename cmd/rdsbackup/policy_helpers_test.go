package main

// Helpers of the automated-backup tests (policy_*_test.go): configs with
// per-instance backup policies, DescribeBackupPolicy decoded strictly into
// the official SDK's struct, the expected PreferredNextBackupTime, backup
// sets written the way the runner writes them (objects, then row), and the
// check that storage and the catalog agree.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/crc64"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

// polInst is one instance of a policy test config; Policy is the body of
// its backupPolicy (YAML lines without indentation), "" for none.
type polInst struct {
	ID, Engine, DSN string
	Policy          []string
}

// fakeDSN reaches nothing: instances that are never backed up.
const fakeDSN = "root:pw@tcp(127.0.0.1:1)/"

// polConfig is a service configuration for policy tests: its DSNs reach
// the config through ${VAR} expansion.
type polConfig struct {
	DataDir string
	Backups []string // lines of the backups section; nil: none (schedule off)
	Insts   []polInst
	Env     map[string]string
	Extra   string // more top-level YAML (e.g. a storage section)
}

func (pc *polConfig) yaml() string {
	var b strings.Builder
	if pc.Backups != nil {
		b.WriteString("backups:\n")
		for _, l := range pc.Backups {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	b.WriteString("instances:\n")
	if pc.Env == nil {
		pc.Env = map[string]string{}
	}
	for i, in := range pc.Insts {
		v := fmt.Sprintf("RDSBACKUP_POL_DSN_%d", i)
		pc.Env[v] = in.DSN
		fmt.Fprintf(&b, "  - id: %s\n    engine: %s\n    dsn: \"${%s}\"\n", in.ID, in.Engine, v)
		if len(in.Policy) > 0 {
			b.WriteString("    backupPolicy:\n")
			for _, l := range in.Policy {
				fmt.Fprintf(&b, "      %s\n", l)
			}
		}
	}
	b.WriteString(pc.Extra)
	return b.String()
}

// start runs the service in-process (startService adds `schedule: false`
// when Backups is nil).
func (pc *polConfig) start(t testing.TB) *testService {
	t.Helper()
	y := pc.yaml()
	return startService(t, pc.DataDir, y, testEnv(pc.Env))
}

// configFile writes the config for a child process.
func (pc *polConfig) configFile(t testing.TB) string {
	t.Helper()
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\n%s", pc.DataDir, pc.yaml())
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// describePolicy calls DescribeBackupPolicy through the SDK and decodes
// the body a second time with encoding/json into the SDK's struct, which
// fails on any field whose JSON type differs from the SDK's Go type (the
// SDK itself decodes leniently).
func describePolicy(t testing.TB, c *clients, inst string) *rds.DescribeBackupPolicyResponse {
	t.Helper()
	resp, err := tryDescribePolicy(c, inst)
	if err != nil {
		t.Fatalf("DescribeBackupPolicy %s: %v", inst, err)
	}
	checkRequestID(t, resp, resp.RequestId)
	var strict rds.DescribeBackupPolicyResponse
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &strict); err != nil {
		t.Fatalf("DescribeBackupPolicy body does not decode into the SDK's struct with its field types: %v\n%s", err, resp.GetHttpContentString())
	}
	return &strict
}

func tryDescribePolicy(c *clients, inst string) (*rds.DescribeBackupPolicyResponse, error) {
	req := rds.CreateDescribeBackupPolicyRequest()
	req.DBInstanceId = inst
	return c.RDS.DescribeBackupPolicy(req)
}

// policyView is a DescribeBackupPolicy answer without its request id, to
// compare two answers.
func policyView(r *rds.DescribeBackupPolicyResponse) rds.DescribeBackupPolicyResponse {
	v := *r
	v.BaseResponse, v.RequestId = nil, ""
	return v
}

// modifyPolicy calls ModifyBackupPolicy through the SDK.
func modifyPolicy(c *clients, inst string, setup func(*rds.ModifyBackupPolicyRequest)) (*rds.ModifyBackupPolicyResponse, error) {
	req := rds.CreateModifyBackupPolicyRequest()
	req.DBInstanceId = inst
	if setup != nil {
		setup(req)
	}
	return c.RDS.ModifyBackupPolicy(req)
}

func mustModifyPolicy(t testing.TB, c *clients, inst string, setup func(*rds.ModifyBackupPolicyRequest)) *rds.ModifyBackupPolicyResponse {
	t.Helper()
	resp, err := modifyPolicy(c, inst, setup)
	if err != nil {
		t.Fatalf("ModifyBackupPolicy %s: %v", inst, err)
	}
	checkRequestID(t, resp, resp.RequestId)
	return resp
}

// deleteBackup calls DeleteBackup through the SDK.
func deleteBackup(c *clients, inst, ids string) error {
	req := rds.CreateDeleteBackupRequest()
	req.DBInstanceId, req.BackupId = inst, ids
	_, err := c.RDS.DeleteBackup(req)
	return err
}

// windowStart is the start of the window of day d (any time of that UTC
// day) beginning at minute m.
func windowStart(d time.Time, m int) time.Time {
	d = d.UTC()
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC).Add(time.Duration(m) * time.Minute)
}

// expectedNext is PreferredNextBackupTime of a policy whose windows have
// had no backup: the window open at now, else the next one to open.
func expectedNext(window int, days []time.Weekday, now time.Time) time.Time {
	on := map[time.Weekday]bool{}
	for _, d := range days {
		on[d] = true
	}
	for i := -1; i <= 8; i++ {
		w := windowStart(now.AddDate(0, 0, i), window)
		if on[w.Weekday()] && !w.After(now) && now.Before(w.Add(time.Hour)) {
			return w
		}
	}
	for i := 0; i <= 8; i++ {
		w := windowStart(now.AddDate(0, 0, i), window)
		if on[w.Weekday()] && w.After(now) {
			return w
		}
	}
	return time.Time{}
}

// checkNextBackup checks PreferredNextBackupTime's format and value: the
// window computed just before or just after the call.
func checkNextBackup(t testing.TB, got string, window int, days []time.Weekday, before, after time.Time) {
	t.Helper()
	if _, err := time.Parse("2006-01-02T15:04Z", got); err != nil {
		t.Errorf("PreferredNextBackupTime %q is not yyyy-MM-ddTHH:mmZ: %v", got, err)
	}
	a := expectedNext(window, days, before).Format("2006-01-02T15:04Z")
	b := expectedNext(window, days, after).Format("2006-01-02T15:04Z")
	if got != a && got != b {
		t.Errorf("PreferredNextBackupTime %q, want %q", got, a)
	}
}

// hourWindow returns the one-hour window (as PreferredBackupTime and in
// minutes) that starts at the top of the UTC hour holding now, waiting for
// the next hour first when fewer than margin are left in this one.
func hourWindow(t testing.TB, margin time.Duration) (string, int, time.Time) {
	t.Helper()
	now := time.Now().UTC()
	if left := now.Truncate(time.Hour).Add(time.Hour).Sub(now); left < margin {
		t.Logf("waiting %v for the next hour, so that the window stays open during the test", left)
		time.Sleep(left + 100*time.Millisecond)
		now = time.Now().UTC()
	}
	start := now.Truncate(time.Hour)
	end := start.Add(time.Hour)
	return fmt.Sprintf("%02d:00Z-%02d:00Z", start.Hour(), end.Hour()), start.Hour() * 60, start
}

// todayAnd returns PreferredBackupPeriod with today (UTC) and one more day.
func todayAnd(now time.Time) string {
	today := now.UTC().Weekday()
	other := (today + 3) % 7
	return today.String() + "," + other.String()
}

var polNextID atomic.Int64

func init() { polNextID.Store(60000) }

// polSet describes a set written by putSet.
type polSet struct {
	Instance    string
	Status      rdsbackup.BackupStatus
	Mode        rdsbackup.BackupMode
	Start       time.Time
	Expire      time.Time // zero: none
	NoManifest  bool
	ObjectBytes int
}

// putSet writes a set as the runner does: its object and manifest into
// dataDir/storage (Success sets only), then its catalog row.
func putSet(t testing.TB, db *sqlite.DB, dataDir string, sp polSet) *rdsbackup.BackupSet {
	t.Helper()
	id := polNextID.Add(1)
	if sp.Status == "" {
		sp.Status = rdsbackup.BackupSuccess
	}
	if sp.Mode == "" {
		sp.Mode = rdsbackup.BackupManual
	}
	set := &rdsbackup.BackupSet{
		ID: id, InstanceID: sp.Instance, Status: sp.Status, StartTime: sp.Start.UTC().Truncate(time.Second),
		EndTime: sp.Start.UTC().Truncate(time.Second).Add(30 * time.Second), Type: rdsbackup.FullBackup,
		Mode: sp.Mode, Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser,
		StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMySQL, EngineVersion: "8.0",
		Location: backup.Location, Scale: "DBInstance", ExpectExpireTime: sp.Expire,
	}
	if sp.Mode == rdsbackup.BackupAutomated {
		set.Initiator, set.StoreStatus = rdsbackup.InitiatorSystem, rdsbackup.StoreDisabled
	}
	if sp.Status == rdsbackup.BackupFailed {
		set.MetaStatus, set.FailureReason = "EMPTY", "test failure"
	} else {
		n := sp.ObjectBytes
		if n == 0 {
			n = 2000
		}
		data := bytes.Repeat([]byte(fmt.Sprintf("-- set %d\n", id)), n/10+1)[:n]
		sum := strconv.FormatUint(crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)), 10)
		set.ObjectKey, set.Size, set.Checksum, set.Available, set.MetaStatus = backup.ObjectKey(sp.Instance, id), int64(n), sum, true, "OK"
		set.DBNames = []string{"shop"}
		set.Artifacts = []rdsbackup.Artifact{{Database: "shop", Kind: rdsbackup.PartDatabase, Offset: 0, Length: int64(n), Checksum: sum}}
		m := backup.SetObjectManifest{Manifest: backup.Manifest{
			Version: backup.ManifestVersion, ID: id, InstanceID: sp.Instance, Engine: string(set.Engine), EngineVersion: "8.0",
			Method: string(set.Method), Type: string(set.Type), Mode: string(set.Mode), Initiator: string(set.Initiator),
			StoreStatus: string(set.StoreStatus), Scale: set.Scale, StartTime: set.StartTime.Unix(), EndTime: set.EndTime.Unix(),
			Databases: set.DBNames, ObjectKey: set.ObjectKey, Compression: "zstd",
			Parts: []backup.ManifestPart{{Name: "shop", Kind: "database", Length: int64(n), Checksum: sum}},
		}, Size: set.Size, Checksum: sum}
		if !sp.Expire.IsZero() {
			m.ExpectExpireTime = sp.Expire.Unix()
		}
		store := localfs.New(filepath.Join(dataDir, "storage"))
		polPut(t, store, set.ObjectKey, data)
		if !sp.NoManifest {
			buf, _ := json.Marshal(&m)
			polPut(t, store, backup.ManifestKey(sp.Instance, id), buf)
		}
	}
	if err := db.CreateBackupSet(context.Background(), set); err != nil {
		t.Fatalf("create set: %v", err)
	}
	return set
}

func polPut(t testing.TB, store *localfs.FS, key string, data []byte) {
	t.Helper()
	w, err := store.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// polStorageFiles lists the regular files under dataDir/storage, relative
// to it, sorted.
func polStorageFiles(t testing.TB, dataDir string) []string {
	t.Helper()
	root := filepath.Join(dataDir, "storage")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if os.IsNotExist(err) {
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
	sort.Strings(files)
	return files
}

// filesOfSet lists the stored files of a set.
func filesOfSet(files []string, inst string, id int64) []string {
	var out []string
	prefix := fmt.Sprintf("backups/%s/%d/", inst, id)
	for _, f := range files {
		if strings.HasPrefix(f, prefix) {
			out = append(out, f)
		}
	}
	return out
}

// checkStorageMatchesCatalog lists storage against the catalog (opened
// beside the service, or while it is stopped): no temporary file, every
// file under backups/<inst>/<id>/ belongs to a row of that instance, every
// Success row's object is there, and no row is left half deleted.
func checkStorageMatchesCatalog(t testing.TB, dataDir string) {
	t.Helper()
	db := openCatalog(t, dataDir)
	defer db.Close()
	ctx := context.Background()
	sets, _, err := db.FindBackupSets(ctx, rdsbackup.BackupFilter{})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[int64]*rdsbackup.BackupSet{}
	for _, s := range sets {
		rows[s.ID] = s
	}
	deleting, err := db.FindDeletingBackupSets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range deleting {
		t.Errorf("set %d of %s is still marked deleting", s.ID, s.InstanceID)
	}
	files := polStorageFiles(t, dataDir)
	have := map[string]bool{}
	for _, f := range files {
		have[f] = true
		p := strings.Split(f, "/")
		if p[0] == ".tmp" {
			t.Errorf("temporary file left in storage: %s", f)
			continue
		}
		if len(p) != 4 || p[0] != "backups" {
			t.Errorf("unexpected file in storage: %s", f)
			continue
		}
		id, err := strconv.ParseInt(p[2], 10, 64)
		if s := rows[id]; err != nil || s == nil || s.InstanceID != p[1] {
			t.Errorf("orphan file %s: no catalog row knows it", f)
		} else if s.Status != rdsbackup.BackupSuccess {
			t.Errorf("file %s belongs to set %d, which is %s", f, id, s.Status)
		}
	}
	for _, s := range sets {
		if s.Status == rdsbackup.BackupSuccess && !have[s.ObjectKey] {
			t.Errorf("set %d of %s is Success but its object %s is not in storage", s.ID, s.InstanceID, s.ObjectKey)
		}
	}
}

// polBackup is one set of a DescribeBackups body: the SDK's fields plus
// ExpectExpireTime, which the SDK's struct lacks, and FailureReason.
type polBackup struct {
	rds.Backup
	ExpectExpireTime string
	FailureReason    string
}

// listSets returns every visible set of inst through DescribeBackups.
func listSets(t testing.TB, c *clients, inst string) []polBackup {
	t.Helper()
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
		r.DBInstanceId = inst
		r.PageSize = "100"
	})
	if err != nil {
		t.Fatalf("DescribeBackups %s: %v", inst, err)
	}
	var raw struct {
		Items struct{ Backup []polBackup }
	}
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &raw); err != nil {
		t.Fatalf("DescribeBackups body: %v", err)
	}
	if len(raw.Items.Backup) != len(resp.Items.Backup) {
		t.Fatalf("the SDK read %d sets, the body has %d", len(resp.Items.Backup), len(raw.Items.Backup))
	}
	for i := range raw.Items.Backup {
		raw.Items.Backup[i].Backup = resp.Items.Backup[i]
	}
	return raw.Items.Backup
}

func setByID(sets []polBackup, id string) *polBackup {
	for i := range sets {
		if sets[i].BackupId == id {
			return &sets[i]
		}
	}
	return nil
}

// httpStatus GETs a link and returns its status.
func httpStatus(t testing.TB, link string) int {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatalf("GET %s: %v", link, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// polDatabase creates, on a MariaDB server, a database and a user who may
// see only it, so that the instance the user's DSN defines backs up only
// that database, whatever other tests keep on the same server.
func polDatabase(t testing.TB, srv *enginetest.MariaDB, rows int) (dsn, name string, root *sql.DB) {
	t.Helper()
	name = srv.NewDatabase(t)
	root = srv.DB(t, "")
	user := fmt.Sprintf("pol%d", polNextID.Add(1))
	const pw = "pol pw:@1"
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + pw + "'",
		"GRANT ALL PRIVILEGES ON `" + name + "`.* TO '" + user + "'@'%'",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { root.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	db := srv.DB(t, name)
	if rows > 0 {
		for _, q := range []string{
			"CREATE TABLE t (id INT PRIMARY KEY, pad TEXT NOT NULL) ENGINE=InnoDB",
			fmt.Sprintf("INSERT INTO t SELECT seq, REPEAT(SHA2(seq, 256), 4) FROM seq_1_to_%d", rows),
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	return fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/", user, pw, srv.Port), name, root
}

// polJobs lists an instance's jobs (every state) through DescribeBackupTasks.
func polJobs(t testing.TB, c *clients, inst string) []rds.BackupJob {
	t.Helper()
	var out []rds.BackupJob
	for _, st := range []string{"NoStart", "Progressing", "Finished", "Failed"} {
		req := rds.CreateDescribeBackupTasksRequest()
		req.DBInstanceId, req.BackupJobStatus = inst, st
		resp, err := c.RDS.DescribeBackupTasks(req)
		if err != nil {
			t.Fatalf("DescribeBackupTasks %s %s: %v", inst, st, err)
		}
		out = append(out, resp.Items.BackupJob...)
	}
	return out
}

// runningJobs lists an instance's jobs that have not ended.
func runningJobs(t testing.TB, c *clients, inst string) []rds.BackupJob {
	t.Helper()
	req := rds.CreateDescribeBackupTasksRequest()
	req.DBInstanceId = inst
	resp, err := c.RDS.DescribeBackupTasks(req)
	if err != nil {
		t.Fatalf("DescribeBackupTasks %s: %v", inst, err)
	}
	return resp.Items.BackupJob
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// automatedSets returns the automated sets of inst.
func automatedSets(t testing.TB, c *clients, inst string) []polBackup {
	t.Helper()
	var out []polBackup
	for _, b := range listSets(t, c, inst) {
		if b.BackupMode == "Automated" {
			out = append(out, b)
		}
	}
	return out
}

// parseWire parses a DescribeBackups time.
func parseWire(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02T15:04:05Z", s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}

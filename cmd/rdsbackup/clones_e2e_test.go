package main

// CloneDBInstance end to end (docs/clones.md) through the official SDK: a
// clone of a MariaDB and of a PostgreSQL logical set, polled until Running,
// read over its ConnectionString:Port, surviving a restart of the service,
// deleted with DeleteDBInstance; maxClones, a bad BackupId, a clone whose
// restore fails, a config instance refused by DeleteDBInstance, clones
// disabled, RAM on the source.

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// clonePW is the clones' admin password in these tests (through ${VAR}).
const clonePW = "clone pw:@/%#9!"

// clonesSection adds a clones section to the fixture and returns the
// clones directory. It is made where a PostgreSQL server run as the
// postgres user can reach it (the test may run as root).
func clonesSection(t *testing.T, f *backupFixture, maxClones int) string {
	t.Helper()
	base, err := os.MkdirTemp(localserver.TempDir(), "clones-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	first := freeTCPPort(t)
	last := min(first+9, 65535)
	f.Env["RDSBACKUP_TEST_CLONE_PW"] = clonePW
	f.YAML += fmt.Sprintf("clones:\n  dir: %s\n  ports: \"%d-%d\"\n  maxClones: %d\n  adminPassword: \"${RDSBACKUP_TEST_CLONE_PW}\"\n", base, first, last, maxClones)
	return base
}

func cloneRequest(src string, setup func(*rds.CloneDBInstanceRequest)) *rds.CloneDBInstanceRequest {
	req := rds.CreateCloneDBInstanceRequest()
	req.DBInstanceId = src
	// Cloud-only parameters, as Terraform sends them: accepted, ignored.
	req.PayType = "Postpaid"
	req.DBInstanceClass = "rds.mysql.s2.large"
	req.DBInstanceStorage = "20"
	req.ZoneId = "cn-hangzhou-h"
	req.InstanceNetworkType = "VPC"
	req.BackupType = "FullBackup"
	if setup != nil {
		setup(req)
	}
	return req
}

// cloneAttribute reads a clone's DescribeDBInstanceAttribute item.
func cloneAttribute(t *testing.T, c *clients, id string) rds.DBInstanceAttribute {
	t.Helper()
	req := rds.CreateDescribeDBInstanceAttributeRequest()
	req.DBInstanceId = id
	resp, err := c.RDS.DescribeDBInstanceAttribute(req)
	if err != nil || len(resp.Items.DBInstanceAttribute) != 1 {
		t.Fatalf("DescribeDBInstanceAttribute %s: %v", id, err)
	}
	return resp.Items.DBInstanceAttribute[0]
}

// waitClone polls until the clone is Running or Failed and returns it
// with the statuses seen on the way.
func waitClone(t *testing.T, c *clients, id string) (rds.DBInstanceAttribute, []string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var seen []string
	for {
		a := cloneAttribute(t, c, id)
		if len(seen) == 0 || seen[len(seen)-1] != a.DBInstanceStatus {
			seen = append(seen, a.DBInstanceStatus)
		}
		if a.DBInstanceStatus == "Running" || a.DBInstanceStatus == "Failed" {
			return a, seen
		}
		// Creating only: Terraform's wait fails on any other pending state.
		if a.DBInstanceStatus != "Creating" {
			t.Fatalf("clone %s is %s while being made", id, a.DBInstanceStatus)
		}
		if !strings.Contains(a.DBInstanceDescription, "(starting its server)") && !strings.Contains(a.DBInstanceDescription, "(restoring backup set ") {
			t.Errorf("description while being made: %q", a.DBInstanceDescription)
		}
		if time.Now().After(deadline) {
			t.Fatalf("clone %s still %s", id, a.DBInstanceStatus)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listedClones are the ids DescribeDBInstances lists that are not in the
// config, with their statuses.
func listedClones(t *testing.T, c *clients, config ...string) map[string]string {
	t.Helper()
	resp, err := c.RDS.DescribeDBInstances(rds.CreateDescribeDBInstancesRequest())
	if err != nil {
		t.Fatalf("DescribeDBInstances: %v", err)
	}
	out := map[string]string{}
	for _, d := range resp.Items.DBInstance {
		if !strings.Contains(" "+strings.Join(config, " ")+" ", " "+d.DBInstanceId+" ") {
			out[d.DBInstanceId] = d.DBInstanceStatus
		}
	}
	return out
}

func deleteInstance(c *clients, id string) error {
	req := rds.CreateDeleteDBInstanceRequest()
	req.DBInstanceId = id
	_, err := c.RDS.DeleteDBInstance(req)
	return err
}

// dirNames lists a directory.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// checkGone checks that a deleted clone is gone everywhere: the API, its
// port and its directory.
func checkGone(t *testing.T, c *clients, dir, id string, port int) {
	t.Helper()
	req := rds.CreateDescribeDBInstanceAttributeRequest()
	req.DBInstanceId = id
	_, err := c.RDS.DescribeDBInstanceAttribute(req)
	wantServerError(t, err, "InvalidDBInstanceId.NotFound", 400)
	if port != 0 {
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
			conn.Close()
			t.Errorf("something still listens on the deleted clone's port %d", port)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, id)); !os.IsNotExist(err) {
		t.Errorf("the clone's directory %s is still there (%v)", filepath.Join(dir, id), err)
	}
	// No process runs on the clone's directory (the server, a tool).
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), filepath.Join(dir, id)) {
			t.Errorf("a process still runs on the deleted clone's directory: %s: %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

func checkCloneResponse(t *testing.T, resp *rds.CloneDBInstanceResponse, first int) int {
	t.Helper()
	checkRequestID(t, resp, resp.RequestId)
	port, err := strconv.Atoi(resp.Port)
	if err != nil || port < first || port > first+9 {
		t.Errorf("Port %q, want one of %d-%d", resp.Port, first, first+9)
	}
	if resp.ConnectionString != "127.0.0.1" || !regexp.MustCompile(`^clone-(rm|pgm)-[a-z0-9]{12}$`).MatchString(resp.DBInstanceId) || resp.OrderId == "" {
		t.Errorf("response %+v", resp)
	}
	return port
}

func firstPort(t *testing.T, f *backupFixture) int {
	t.Helper()
	m := regexp.MustCompile(`ports: "(\d+)-`).FindStringSubmatch(f.YAML)
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestCloneMariaDB(t *testing.T) {
	t.Parallel()
	const srcPW = "src clone:@/%#1!"
	const inst = "rm-src"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: srcPW})
	dbA, dbB := src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, dbA), 500)
	enginetest.FillMariaDB(t, src.DB(t, dbB), 100)
	want := map[string]map[string]string{}
	for _, d := range []string{dbA, dbB} {
		want[d] = enginetest.MariaDBContents(t, src.DB(t, d))
	}
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	dir := clonesSection(t, fx, 1)
	first := firstPort(t, fx)
	svc := fx.start(t)
	c := rootClients(t, svc)
	setID := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, setID)
	// Written after the backup: not in the clone.
	sqlExec(t, src.DB(t, dbA), "CREATE TABLE after_backup (id INT PRIMARY KEY)")

	resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = setID }))
	if err != nil {
		t.Fatalf("CloneDBInstance: %v", err)
	}
	port := checkCloneResponse(t, resp, first)
	id := resp.DBInstanceId
	if st := listedClones(t, c, inst)[id]; st != "Creating" && st != "Running" {
		t.Errorf("DescribeDBInstances shows the new clone as %q", st)
	}

	t.Run("MaxClones", func(t *testing.T) {
		before := dirNames(t, dir)
		_, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = setID }))
		e := wantServerError(t, err, "QuotaExceeded.Clones", 403)
		if !strings.Contains(e.Message(), "maxClones is 1") {
			t.Errorf("message %q does not name the limit", e.Message())
		}
		if got := listedClones(t, c, inst); len(got) != 1 {
			t.Errorf("clones after the refusal: %v", got)
		}
		if after := dirNames(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("the refused clone left files: %v → %v", before, after)
		}
	})

	a, seen := waitClone(t, c, id)
	if a.DBInstanceStatus != "Running" {
		t.Fatalf("clone %s: %s (%s); statuses %v; log:\n%s", id, a.DBInstanceStatus, a.DBInstanceDescription, seen, svc.Stderr.String())
	}
	t.Logf("statuses seen: %v", seen)
	if a.ConnectionString != "127.0.0.1" || a.Port != resp.Port || a.Engine != "MariaDB" || !strings.Contains(a.DBInstanceDescription, inst) {
		t.Errorf("attribute: ConnectionString %q Port %q Engine %q Description %q", a.ConnectionString, a.Port, a.Engine, a.DBInstanceDescription)
	}
	if n, err := strconv.ParseInt(a.DBInstanceDiskUsed, 10, 64); err != nil || n < 1<<20 {
		t.Errorf("DBInstanceDiskUsed %q, want the bytes of a data directory", a.DBInstanceDiskUsed)
	}
	checkMariaDBClone := func(t *testing.T) {
		t.Helper()
		for d, w := range want {
			sameContents(t, d, w, enginetest.MariaDBContents(t, openMariaDB(t, port, clonePW, d)))
		}
		var n int
		if err := openMariaDB(t, port, clonePW, dbA).QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'after_backup'", dbA).Scan(&n); err != nil || n != 0 {
			t.Errorf("the table made after the backup: %d, %v", n, err)
		}
	}
	checkMariaDBClone(t)

	t.Run("BadBackupId", func(t *testing.T) {
		for _, bad := range []string{"999999", "x1"} {
			_, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = bad }))
			wantServerError(t, err, "InvalidBackupSetID.NotFound", 404)
		}
	})
	t.Run("DeleteConfigInstance", func(t *testing.T) {
		err := deleteInstance(c, inst)
		e := wantServerError(t, err, "OperationDenied.ConfiguredInstance", 403)
		if !strings.Contains(e.Message(), "config") {
			t.Errorf("message %q", e.Message())
		}
	})

	// The clone survives a restart of the service: started again, same port.
	svc.Stop()
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+resp.Port, time.Second); err == nil {
		conn.Close()
		t.Errorf("the clone still listens after the service stopped")
	}
	svc = fx.start(t)
	c = rootClients(t, svc)
	if a := cloneAttribute(t, c, id); a.DBInstanceStatus != "Running" || a.Port != resp.Port {
		t.Fatalf("after the restart the clone is %s on %s: %s", a.DBInstanceStatus, a.Port, a.DBInstanceDescription)
	}
	checkMariaDBClone(t)

	if err := deleteInstance(c, id); err != nil {
		t.Fatalf("DeleteDBInstance: %v", err)
	}
	checkGone(t, c, dir, id, port)
	if got := listedClones(t, c, inst); len(got) != 0 {
		t.Errorf("clones after the delete: %v", got)
	}

	t.Run("Physical", func(t *testing.T) {
		// A physical set is restored into the clone's running server by
		// the engine; DbNames picks a database.
		physID := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, physID)
		resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) {
			r.BackupId, r.DbNames = physID, dbB
		}))
		if err != nil {
			t.Fatalf("CloneDBInstance: %v", err)
		}
		p := checkCloneResponse(t, resp, first)
		a, seen := waitClone(t, c, resp.DBInstanceId)
		if a.DBInstanceStatus != "Running" {
			t.Fatalf("physical clone: %s (%s); statuses %v", a.DBInstanceStatus, a.DBInstanceDescription, seen)
		}
		sameContents(t, dbB, want[dbB], enginetest.MariaDBContents(t, openMariaDB(t, p, clonePW, dbB)))
		if got := mariadbDatabases(t, openMariaDB(t, p, clonePW, "")); slices.Contains(got, dbA) {
			t.Errorf("the clone has %s, which DbNames left out: %v", dbA, got)
		}
		if err := deleteInstance(c, resp.DBInstanceId); err != nil {
			t.Fatalf("DeleteDBInstance: %v", err)
		}
		checkGone(t, c, dir, resp.DBInstanceId, p)
	})

	t.Run("DeleteWhileCreating", func(t *testing.T) {
		// Deleted at once: the start or the restore is cancelled, and
		// nothing of the clone is left.
		resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = setID }))
		if err != nil {
			t.Fatalf("CloneDBInstance: %v", err)
		}
		if st := cloneAttribute(t, c, resp.DBInstanceId).DBInstanceStatus; st != "Creating" {
			t.Errorf("a clone just asked for is %s", st)
		}
		if err := deleteInstance(c, resp.DBInstanceId); err != nil {
			t.Fatalf("DeleteDBInstance: %v", err)
		}
		p, _ := strconv.Atoi(resp.Port)
		checkGone(t, c, dir, resp.DBInstanceId, p)
		if got := listedClones(t, c, inst); len(got) != 0 {
			t.Errorf("clones after the delete: %v", got)
		}
	})

	t.Run("RestoreFails", func(t *testing.T) {
		// A set whose stored bytes were damaged: the clone's restore
		// fails, the clone shows why and its server is gone.
		obj := filepath.Join(svc.DataDir, "storage", "backups", inst, setID, "set.zst")
		buf, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(buf) / 3; i < len(buf)/3+64 && i < len(buf); i++ {
			buf[i] ^= 0x5a
		}
		if err := os.WriteFile(obj, buf, 0o600); err != nil {
			t.Fatal(err)
		}
		resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = setID }))
		if err != nil {
			t.Fatalf("CloneDBInstance: %v", err)
		}
		a, seen := waitClone(t, c, resp.DBInstanceId)
		if a.DBInstanceStatus != "Failed" {
			t.Fatalf("clone of a damaged set: %s, statuses %v", a.DBInstanceStatus, seen)
		}
		if !regexp.MustCompile(`Failed: the clone failed: restore database .*(damaged|CRC|corrupt|invalid)`).MatchString(a.DBInstanceDescription) {
			t.Errorf("the failed clone's description does not say why: %q", a.DBInstanceDescription)
		}
		if a.Port != "" || a.ConnectionString != "" {
			t.Errorf("a failed clone shows a server: %s:%s", a.ConnectionString, a.Port)
		}
		p, _ := strconv.Atoi(resp.Port)
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+resp.Port, time.Second); err == nil {
			conn.Close()
			t.Errorf("the failed clone's server still listens on %d", p)
		}
		if _, err := os.Stat(filepath.Join(dir, resp.DBInstanceId)); !os.IsNotExist(err) {
			t.Errorf("the failed clone's directory is still there (%v)", err)
		}
		// Failed clones do not count against maxClones; Delete removes the record.
		if err := deleteInstance(c, resp.DBInstanceId); err != nil {
			t.Fatalf("DeleteDBInstance of the failed clone: %v", err)
		}
		checkGone(t, c, dir, resp.DBInstanceId, 0)
	})
}

func TestClonePostgres(t *testing.T) {
	t.Parallel()
	const inst = "pg-src"
	src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "pg src clone:@/%#1!"})
	dbA, dbB := src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillPostgres(t, src.DB(t, dbA), 500)
	enginetest.FillPostgres(t, src.DB(t, dbB), 100)
	// A role of the source: in the set's globals part, so in the clone.
	sqlExec(t, src.DB(t, "postgres"), "CREATE ROLE app_reader LOGIN PASSWORD 'reader pw'", "GRANT CONNECT ON DATABASE "+`"`+dbA+`"`+" TO app_reader")
	wantA := enginetest.PostgresContents(t, src.DB(t, dbA))
	wantB := enginetest.PostgresContents(t, src.DB(t, dbB))
	fx := newBackupFixture(t, backupInstance{inst, "PostgreSQL", src.URL("postgres")})
	dir := clonesSection(t, fx, 2)
	first := firstPort(t, fx)
	svc := fx.start(t)
	c := rootClients(t, svc)
	setID := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, setID)

	// DbNames restores a subset, under a new name.
	resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) {
		r.BackupId = setID
		r.DbNames = fmt.Sprintf(`{"%s":"copy_a"}`, dbA)
	}))
	if err != nil {
		t.Fatalf("CloneDBInstance: %v", err)
	}
	port := checkCloneResponse(t, resp, first)
	a, seen := waitClone(t, c, resp.DBInstanceId)
	if a.DBInstanceStatus != "Running" {
		t.Fatalf("clone: %s (%s); statuses %v; log:\n%s", a.DBInstanceStatus, a.DBInstanceDescription, seen, svc.Stderr.String())
	}
	if a.Engine != "PostgreSQL" {
		t.Errorf("Engine %q", a.Engine)
	}
	admin := (&url.URL{Scheme: "postgres", User: url.UserPassword("postgres", clonePW), Host: net.JoinHostPort(a.ConnectionString, a.Port), RawQuery: "sslmode=disable"}).String()
	sameContents(t, dbA, wantA, enginetest.PostgresContents(t, openPostgres(t, admin, "copy_a")))
	got := postgresDatabases(t, openPostgres(t, admin, "postgres"))
	for _, d := range got {
		if d == dbA || d == dbB {
			t.Errorf("the clone has database %s, which DbNames left out (has %v)", d, got)
		}
	}
	// The source's role logs in with its own password.
	reader := openPostgres(t, fmt.Sprintf("postgres://app_reader:reader%%20pw@127.0.0.1:%d/copy_a?sslmode=disable", port), "copy_a")
	var one int
	if err := reader.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Errorf("the source's role cannot log in to the clone: %v", err)
	}
	reader.Close()

	checkTerraformReads(t, c, resp.DBInstanceId, "127.0.0.1", a.Port, "PostgreSQL")

	// A restart: the clone's server is started again on its data, with the
	// admin password.
	svc.Stop()
	svc = fx.start(t)
	c = rootClients(t, svc)
	if a := cloneAttribute(t, c, resp.DBInstanceId); a.DBInstanceStatus != "Running" || a.Port != resp.Port {
		t.Fatalf("after the restart the clone is %s on %s: %s", a.DBInstanceStatus, a.Port, a.DBInstanceDescription)
	}
	sameContents(t, dbA, wantA, enginetest.PostgresContents(t, openPostgres(t, admin, "copy_a")))

	t.Run("UnknownDatabase", func(t *testing.T) {
		_, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = setID; r.DbNames = "nosuchdb" }))
		wantServerError(t, err, "InvalidDBName.NotFound", 404)
	})

	t.Run("Physical", func(t *testing.T) {
		// The set's image becomes the clone's data directory: the whole
		// instance, as it was at the backup.
		physID := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, physID)
		sqlExec(t, src.DB(t, dbB), "CREATE TABLE after_physical (id int)")
		_, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = physID; r.DbNames = dbA }))
		wantServerError(t, err, "InvalidParameterCombination", 400)
		resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = physID }))
		if err != nil {
			t.Fatalf("CloneDBInstance: %v", err)
		}
		pport := checkCloneResponse(t, resp, first)
		a, seen := waitClone(t, c, resp.DBInstanceId)
		if a.DBInstanceStatus != "Running" {
			t.Fatalf("physical clone: %s (%s); statuses %v; log:\n%s", a.DBInstanceStatus, a.DBInstanceDescription, seen, svc.Stderr.String())
		}
		if n, err := strconv.ParseInt(a.DBInstanceDiskUsed, 10, 64); err != nil || n < 1<<20 {
			t.Errorf("DBInstanceDiskUsed %q", a.DBInstanceDiskUsed)
		}
		admin := (&url.URL{Scheme: "postgres", User: url.UserPassword("postgres", clonePW), Host: net.JoinHostPort(a.ConnectionString, a.Port), RawQuery: "sslmode=disable"}).String()
		sameContents(t, dbA, wantA, enginetest.PostgresContents(t, openPostgres(t, admin, dbA)))
		sameContents(t, dbB, wantB, enginetest.PostgresContents(t, openPostgres(t, admin, dbB)))
		var n int
		if err := openPostgres(t, admin, dbB).QueryRow("SELECT count(*) FROM pg_tables WHERE tablename = 'after_physical'").Scan(&n); err != nil || n != 0 {
			t.Errorf("the table made after the backup: %d %v", n, err)
		}
		if err := deleteInstance(c, resp.DBInstanceId); err != nil {
			t.Fatalf("DeleteDBInstance: %v", err)
		}
		checkGone(t, c, dir, resp.DBInstanceId, pport)
	})

	if err := deleteInstance(c, resp.DBInstanceId); err != nil {
		t.Fatalf("DeleteDBInstance: %v", err)
	}
	checkGone(t, c, dir, resp.DBInstanceId, port)
}

// TestCloneRefusals: clones off, RAM on the source, parameters; no server
// is needed for any of them.
func TestCloneRefusals(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), instancesYAML("rm-a", "rm-b"), testEnv(nil))
	root := rootClients(t, s)
	_, err := root.RDS.CloneDBInstance(cloneRequest("rm-a", func(r *rds.CloneDBInstanceRequest) { r.BackupId = "1" }))
	e := wantServerError(t, err, "OperationDenied.ClonesDisabled", 403)
	if !strings.Contains(e.Message(), "clones") {
		t.Errorf("message %q", e.Message())
	}
	_, err = root.RDS.CloneDBInstance(cloneRequest("rm-a", nil))
	wantServerError(t, err, "InvalidParameterCombination", 400)
	_, err = root.RDS.CloneDBInstance(cloneRequest("rm-a", func(r *rds.CloneDBInstanceRequest) { r.RestoreTime = "yesterday" }))
	wantServerError(t, err, "InvalidRestoreTime.Format", 400)
	_, err = root.RDS.CloneDBInstance(cloneRequest("rm-zz", func(r *rds.CloneDBInstanceRequest) { r.BackupId = "1" }))
	wantServerError(t, err, "InvalidDBInstanceId.NotFound", 400)
	wantServerError(t, deleteInstance(root, "clone-rm-nosuchclone0"), "InvalidDBInstanceId.NotFound", 400)
	wantServerError(t, deleteInstance(root, "rm-b"), "OperationDenied.ConfiguredInstance", 403)

	// The actions Terraform reads after a clone: nothing to say about an
	// instance of the config (its address is in the DSN).
	checkTerraformReads(t, root, "rm-a", "", "", "MySQL")
	for _, action := range []string{"DescribeDBInstanceNetInfo", "DescribeDBInstanceIPArrayList", "DescribeDBInstanceSSL", "DescribeDBInstanceHAConfig", "DescribeParameters"} {
		r := rawCall(t, s.Addr, rootSigned(url.Values{"Action": {action}, "Version": {"2014-08-15"}, "DBInstanceId": {"rm-nosuch"}}))
		wantRawError(t, r, "InvalidDBInstanceId.NotFound", 400)
	}

	// RAM: rds:CloneDBInstance on the source instance.
	ak, secret := createUserWithKey(t, root, "cloner")
	createPolicy(t, root, "clone-a", policyDocument("Allow", "rds:CloneDBInstance", "acs:rds:*:*:dbinstance/rm-a"))
	attachPolicy(t, root, "clone-a", "Custom", "cloner")
	user := newClients(t, s.Addr, ak, secret)
	_, err = user.RDS.CloneDBInstance(cloneRequest("rm-b", func(r *rds.CloneDBInstanceRequest) { r.BackupId = "1" }))
	wantServerError(t, err, "Forbidden.RAM", 403)
	_, err = user.RDS.CloneDBInstance(cloneRequest("rm-a", func(r *rds.CloneDBInstanceRequest) { r.BackupId = "1" }))
	wantServerError(t, err, "OperationDenied.ClonesDisabled", 403)
	wantServerError(t, deleteInstance(user, "rm-a"), "Forbidden.RAM", 403)
}

// TestClonesDirUnreachable: run as root, PostgreSQL clones run as the
// postgres user; a clones.dir that user cannot reach (the default, under a
// private dataDir) stops the start with a message naming clones.dir. Not
// as root the same config starts.
func TestClonesDirUnreachable(t *testing.T) {
	t.Parallel()
	cfg := instancesYAML("pg-a") + "clones:\n  ports: \"34000-34009\"\n"
	cfg = strings.Replace(cfg, "engine: MySQL", "engine: PostgreSQL", 1)
	cfg = regexp.MustCompile(`dsn: .*`).ReplaceAllString(cfg, `dsn: "postgres://u@127.0.0.1:1/postgres"`)
	if os.Geteuid() != 0 {
		startService(t, t.TempDir(), cfg, testEnv(nil))
		return
	}
	code, stderr := runConfig(t, cfg, nil)
	if code != exitFailed || !strings.Contains(stderr, "config: clones.dir") || !strings.Contains(stderr, "cannot reach") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}

// TestCloneMariaDBToTime: a clone to a RestoreTime, from a Logical set
// rolled forward with the streamed binary log (docs/pitr.md).
func TestCloneMariaDBToTime(t *testing.T) {
	t.Parallel()
	const inst = "rm-src"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 5, LogBin: true, RootPassword: "src-pw#5", Args: []string{"--binlog-format=ROW"}})
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	fx.YAML += "logs:\n  uploadInterval: 1s\nbackups:\n  schedule: false\n  tickInterval: 1s\n"
	dir := clonesSection(t, fx, 1)
	svc := fx.start(t)
	c := rootClients(t, svc)
	db := src.DB(t, "")
	sqlExec(t, db, "CREATE DATABASE shop",
		"CREATE TABLE shop.t (id INT PRIMARY KEY, v VARBINARY(32) NULL, s VARCHAR(32) CHARACTER SET utf8mb4 NULL)",
		"INSERT INTO shop.t VALUES (1, 'base', 'base')")
	mustModifyPolicy(t, c, inst, func(r *rds.ModifyBackupPolicyRequest) {
		r.BackupPolicyMode, r.EnableBackupLog, r.LogBackupRetentionPeriod = "LogBackupPolicy", "True", "7"
	})
	sqlExec(t, db, "INSERT INTO shop.t VALUES (100, 'warm', 'up')", "FLUSH BINARY LOGS")
	waitBinlogFiles(t, c, inst, 1)
	setID := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, setID)
	sqlExec(t, db, "INSERT INTO shop.t VALUES (2, NULL, 'ünïcødé ✓')", "UPDATE shop.t SET s = 'changed' WHERE id = 1", "FLUSH BINARY LOGS")
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	sqlExec(t, db, "INSERT INTO shop.t VALUES (5, 't3', 't3')", "DELETE FROM shop.t WHERE id = 2")
	atTarget := "1|62617365|changed\n2|NULL|ünïcødé ✓\n100|7761726D|up"
	waitWindowEnd(t, c, inst, target.Add(time.Second))

	_, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.RestoreTime = "2001-01-01T00:00:00Z" }))
	wantServerError(t, err, "InvalidRestoreTime.NotCovered", 400)
	resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.RestoreTime = target.Format(pitrLayout) }))
	if err != nil {
		t.Fatalf("CloneDBInstance: %v", err)
	}
	port := checkCloneResponse(t, resp, firstPort(t, fx))
	a, seen := waitClone(t, c, resp.DBInstanceId)
	if a.DBInstanceStatus != "Running" {
		t.Fatalf("clone: %s (%s); statuses %v; log:\n%s", a.DBInstanceStatus, a.DBInstanceDescription, seen, svc.Stderr.String())
	}
	if !strings.Contains(a.DBInstanceDescription, inst) {
		t.Errorf("description %q", a.DBInstanceDescription)
	}
	if got := rowsOf(t, openMariaDB(t, port, clonePW, ""), "shop.t"); got != atTarget {
		t.Errorf("the clone at %s:\n%s\nwant\n%s", target.Format(pitrLayout), got, atTarget)
	}
	if err := deleteInstance(c, resp.DBInstanceId); err != nil {
		t.Fatalf("DeleteDBInstance: %v", err)
	}
	checkGone(t, c, dir, resp.DBInstanceId, port)
}

// TestCloneServiceKilled SIGKILLs the service (a child process) with one
// clone Running and one still being made: the servers die with it; after
// the restart the Running one is started again and answers, the other is
// Failed with the reason, its directory removed, nothing running on it.
func TestCloneServiceKilled(t *testing.T) {
	t.Parallel()
	bin := buildRdsbackup(t)
	const inst = "rm-src"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "kill clone pw"})
	name := src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, name), 3000)
	want := enginetest.MariaDBContents(t, src.DB(t, name))
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	dir := clonesSection(t, fx, 2)
	config := fx.configFile(t)
	p := startServeProcess(t, bin, config, fx.Env)
	c := p.clients(t)
	setID := createBackup(t, c, inst, "Logical", nil)
	waitFinished(t, c, inst, setID)
	clone := func() *rds.CloneDBInstanceResponse {
		resp, err := c.RDS.CloneDBInstance(cloneRequest(inst, func(r *rds.CloneDBInstanceRequest) { r.BackupId = setID }))
		if err != nil {
			t.Fatalf("CloneDBInstance: %v", err)
		}
		return resp
	}
	running := clone()
	if a, seen := waitClone(t, c, running.DBInstanceId); a.DBInstanceStatus != "Running" {
		t.Fatalf("clone: %s (%s) %v", a.DBInstanceStatus, a.DBInstanceDescription, seen)
	}
	making := clone()
	p.kill()
	// The servers die with their parent.
	waitFor(t, 30*time.Second, "the clones' servers to die with the service", func() bool {
		for _, port := range []string{running.Port, making.Port} {
			if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
				conn.Close()
				return false
			}
		}
		return true
	})

	p = startServeProcess(t, bin, config, fx.Env)
	c = p.clients(t)
	a := cloneAttribute(t, c, running.DBInstanceId)
	if a.DBInstanceStatus != "Running" || a.Port != running.Port {
		t.Fatalf("the running clone after the restart: %s on %s (%s)", a.DBInstanceStatus, a.Port, a.DBInstanceDescription)
	}
	port, _ := strconv.Atoi(running.Port)
	sameContents(t, name, want, enginetest.MariaDBContents(t, openMariaDB(t, port, clonePW, name)))
	// The clone's server got none of the service's secrets (its
	// environment holds the root key, the master key, the admin password
	// and the DSN), in its environment or on its command line.
	secrets := []string{clonePW, rootKeySecret, testMasterKey, src.DSN("")}
	found := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, pc := range procs {
		cmdline, err := os.ReadFile(pc)
		if err != nil || !strings.Contains(string(cmdline), filepath.Join(dir, running.DBInstanceId)) {
			continue
		}
		found++
		environ, err := os.ReadFile(filepath.Join(filepath.Dir(pc), "environ"))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range secrets {
			if strings.Contains(string(environ), secret) || strings.Contains(string(cmdline), secret) {
				t.Errorf("the clone's server (%s) has a secret of the service in its environment or command line", pc)
			}
		}
	}
	if found == 0 {
		t.Errorf("no process runs on the clone's directory")
	}
	m := cloneAttribute(t, c, making.DBInstanceId)
	if m.DBInstanceStatus != "Failed" || !strings.Contains(m.DBInstanceDescription, "rdsbackup stopped while the clone was being made") {
		t.Errorf("the interrupted clone after the restart: %s (%s)", m.DBInstanceStatus, m.DBInstanceDescription)
	}
	mport, _ := strconv.Atoi(making.Port)
	if err := deleteInstance(c, making.DBInstanceId); err != nil {
		t.Fatal(err)
	}
	checkGone(t, c, dir, making.DBInstanceId, mport)
	if err := deleteInstance(c, running.DBInstanceId); err != nil {
		t.Fatal(err)
	}
	checkGone(t, c, dir, running.DBInstanceId, port)
}

// checkTerraformReads calls the instance actions Terraform's
// alicloud_rds_clone_db_instance reads after creating (besides
// DescribeDBInstanceAttribute) through the SDK: for a clone (host set) its
// address, port, who may connect and no SSL; for an instance of the config
// (host "") empty lists and strings.
func checkTerraformReads(t *testing.T, c *clients, id, host, port, engine string) {
	t.Helper()
	ni := rds.CreateDescribeDBInstanceNetInfoRequest()
	ni.DBInstanceId = id
	nr, err := c.RDS.DescribeDBInstanceNetInfo(ni)
	if err != nil {
		t.Fatalf("DescribeDBInstanceNetInfo: %v", err)
	}
	infos := nr.DBInstanceNetInfos.DBInstanceNetInfo
	ip := rds.CreateDescribeDBInstanceIPArrayListRequest()
	ip.DBInstanceId = id
	ir, err := c.RDS.DescribeDBInstanceIPArrayList(ip)
	if err != nil {
		t.Fatalf("DescribeDBInstanceIPArrayList: %v", err)
	}
	sl := rds.CreateDescribeDBInstanceSSLRequest()
	sl.DBInstanceId = id
	sr, err := c.RDS.DescribeDBInstanceSSL(sl)
	if err != nil {
		t.Fatalf("DescribeDBInstanceSSL: %v", err)
	}
	ha := rds.CreateDescribeDBInstanceHAConfigRequest()
	ha.DBInstanceId = id
	hr, err := c.RDS.DescribeDBInstanceHAConfig(ha)
	if err != nil || hr.DBInstanceId != id {
		t.Fatalf("DescribeDBInstanceHAConfig: %+v %v", hr, err)
	}
	pa := rds.CreateDescribeParametersRequest()
	pa.DBInstanceId = id
	pr, err := c.RDS.DescribeParameters(pa)
	if err != nil || pr.Engine != engine || len(pr.RunningParameters.DBInstanceParameter) != 0 {
		t.Fatalf("DescribeParameters: %+v %v", pr, err)
	}
	if host == "" {
		if len(infos) != 0 || len(ir.Items.DBInstanceIPArray) != 0 || sr.SSLEnabled != "" {
			t.Errorf("an instance of the config: net %+v, IP arrays %+v, SSLEnabled %q", infos, ir.Items.DBInstanceIPArray, sr.SSLEnabled)
		}
		return
	}
	if len(infos) != 1 || infos[0].ConnectionString != host || infos[0].IPAddress != host || infos[0].Port != port || infos[0].IPType != "Private" {
		t.Errorf("DescribeDBInstanceNetInfo of the clone: %+v", infos)
	}
	if arr := ir.Items.DBInstanceIPArray; len(arr) != 1 || arr[0].DBInstanceIPArrayName != "default" || arr[0].SecurityIPList != "127.0.0.1" {
		t.Errorf("DescribeDBInstanceIPArrayList of the clone: %+v", arr)
	}
	if sr.SSLEnabled != "off" || sr.ConnectionString != host {
		t.Errorf("DescribeDBInstanceSSL of the clone: SSLEnabled %q ConnectionString %q", sr.SSLEnabled, sr.ConnectionString)
	}
}

// TestClonePortsTaken: every port of clones.ports is taken by another
// process: a clear QuotaExceeded.Clones, nothing started. A MySQL Physical
// set cannot be cloned. No database server is needed for either.
func TestClonePortsTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dataDir, clonesDir := t.TempDir(), t.TempDir()
	cfg := instancesYAML("rm-a") + fmt.Sprintf("clones:\n  dir: %s\n  ports: \"%d-%d\"\n  maxClones: 1\n  adminPassword: x-secret-x\n", clonesDir, port, port)
	s := startService(t, dataDir, cfg, testEnv(nil))
	c := rootClients(t, s)
	db := openCatalog(t, dataDir)
	logical := sampleSet("rm-a", time.Now().Add(-time.Hour))
	physical := sampleSet("rm-a", time.Now().Add(-2*time.Hour))
	physical.Method = rdsbackup.MethodPhysical
	for _, set := range []*rdsbackup.BackupSet{logical, physical} {
		if err := db.CreateBackupSet(t.Context(), set); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.RDS.CloneDBInstance(cloneRequest("rm-a", func(r *rds.CloneDBInstanceRequest) { r.BackupId = strconv.FormatInt(logical.ID, 10) }))
	if e := wantServerError(t, err, "QuotaExceeded.Clones", 403); !strings.Contains(e.Message(), fmt.Sprintf("No port of clones.ports (%d-%d) is free", port, port)) {
		t.Errorf("message %q", e.Message())
	}
	_, err = c.RDS.CloneDBInstance(cloneRequest("rm-a", func(r *rds.CloneDBInstanceRequest) { r.BackupId = strconv.FormatInt(physical.ID, 10) }))
	wantServerError(t, err, "InvalidBackupMethod.NotSupported", 400)
	if got := listedClones(t, c, "rm-a"); len(got) != 0 {
		t.Errorf("clones: %v", got)
	}
	if names := dirNames(t, clonesDir); len(names) != 1 || names[0] != "clones.json" {
		t.Errorf("the clones directory holds %v, want only the records", names)
	}
	if strings.Contains(s.Stderr.String(), "x-secret-x") {
		t.Errorf("the admin password is in the service's log")
	}
}

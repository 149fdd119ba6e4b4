package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
)

// TestNodesLeasedBackups: three `rdsbackup serve` processes, each with its
// own node id and data directory, on one PostgreSQL catalog and one S3
// bucket. A backup runs on node n1 (its upload held by a gate); the other
// nodes refuse a second backup of the instance; restarting n3 leaves n1's
// backup running; SIGKILL of n1 makes another node settle the job within
// the lease time — Failed "node lost", no object and no incomplete upload
// left — and the instance can be backed up again.
func TestNodesLeasedBackups(t *testing.T) {
	const inst, lease = "rm-nodes", 3 * time.Second
	dsn, db := incompressibleSource(t)
	pg := enginetest.SharedPostgres(t)
	catalogDSN := pg.URL(pg.NewDatabase(t))
	srv := s3test.Shared(t)
	gate := s3test.NewGate(t, srv.Endpoint)
	s3 := newS3Target(t, srv)
	s3.endpoint = gate.Addr()
	bin := buildRdsbackup(t)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", dsn})
	s3.use(fx, "")
	fx.Env["CATALOG_DSN"] = catalogDSN

	configs := map[string]string{}
	for _, node := range []string{"n1", "n2", "n3"} {
		cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\nbackups:\n  schedule: false\n"+
			"encryption:\n  enabled: false\nnode:\n  id: %s\n  lease: %s\n%s%s", t.TempDir(), node, lease, catalogYAML, fx.YAML)
		path := filepath.Join(t.TempDir(), node+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		configs[node] = path
	}
	procs := map[string]*serveProcess{}
	for _, node := range []string{"n1", "n2", "n3"} {
		procs[node] = startServeProcess(t, bin, configs[node], fx.Env)
		resp, err := http.Get("http://" + procs[node].addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Rdsbackup-Node"); resp.StatusCode != 200 || got != node {
			t.Errorf("/healthz of %s: %s, node %q", node, resp.Status, got)
		}
	}

	held := gate.HoldAfter(6 << 20)
	id := createBackup(t, procs["n1"].clients(t), inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	select {
	case <-held:
	case <-time.After(time.Minute):
		t.Fatal("the upload did not reach 6 MiB")
	}
	if j := describeJob(t, procs["n3"].clients(t), inst, id); j.NodeId != "n1" || j.BackupStatus != "Uploading" {
		t.Errorf("the job seen from n3: %+v", j)
	}
	// One backup of an instance at a time, across the nodes.
	_, err := tryCreateBackup(t, procs["n2"].clients(t), inst, "Logical", nil)
	if se := wantServerError(t, err, rdsbackup.EBackupRunning, http.StatusForbidden); se != nil && !strings.Contains(se.Message(), "n1") {
		t.Errorf("the refusal does not name the node: %s", se.Message())
	}

	// Restarting another node leaves n1's backup alone.
	procs["n3"].cmd.Process.Signal(syscall.SIGTERM)
	<-procs["n3"].done
	procs["n3"] = startServeProcess(t, bin, configs["n3"], fx.Env)
	time.Sleep(2 * lease) // several sweeps of n2 and n3
	if j := describeJob(t, procs["n3"].clients(t), inst, id); j.BackupStatus != "Uploading" || j.NodeId != "n1" {
		t.Fatalf("n1's running job after n3 restarted: %+v", j)
	}

	procs["n1"].kill()
	killed := time.Now()
	gate.Release()
	c := procs["n2"].clients(t)
	var j taskOut
	for {
		j = describeJob(t, c, inst, id)
		if j.BackupStatus == "Failed" || j.BackupStatus == "Finished" {
			break
		}
		if time.Since(killed) > 4*lease {
			t.Fatalf("job %s still %s %v after its node was killed (lease %v)", id, j.BackupStatus, time.Since(killed), lease)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("settled %v after SIGKILL by %s", time.Since(killed).Round(100*time.Millisecond), j.NodeId)
	if j.BackupStatus != "Failed" || !strings.Contains(j.FailureReason, "node lost") || (j.NodeId != "n2" && j.NodeId != "n3") {
		t.Errorf("the dead node's job: %+v", j)
	}
	checkFailedSet(t, describeSet(t, procs["n3"].clients(t), inst, id), `node lost`)
	if ups := srv.Uploads(t, s3.bucket, ""); len(ups) != 0 {
		t.Errorf("incomplete uploads after the job was settled: %v", ups)
	}
	if keys := s3.keys(t); len(keys) != 0 {
		t.Errorf("bucket after the dead node's job was settled: %v", keys)
	}

	// The instance is free: a backup through n3, polled on n2.
	id2 := createBackup(t, procs["n3"].clients(t), inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	waitFinished(t, c, inst, id2)
	if j := describeJob(t, c, inst, id2); j.NodeId != "n3" {
		t.Errorf("the new job's node %q, want n3", j.NodeId)
	}
	if b := describeSet(t, c, inst, id2); b.BackupStatus != "Success" || b.IsAvail != 1 {
		t.Errorf("backup after the failover: %s %d", b.BackupStatus, b.IsAvail)
	}
	if keys := s3.keys(t); len(keys) != 2 {
		t.Errorf("bucket after the new backup: %v, want the set and its manifest", keys)
	}
}

package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
)

// TestNodesOneScheduler: three nodes on one PostgreSQL catalog and S3
// bucket, a window open now: the instance is backed up once, by the node
// holding the scheduler lease. A policy changed through another node takes
// effect on the leader; once the leader stops, another node schedules.
func TestNodesOneScheduler(t *testing.T) {
	window, _, wstart := hourWindow(t, 60*time.Second)
	src := enginetest.SharedMariaDB(t)
	dsnA, _, _ := polDatabase(t, src, 100)
	dsnB, _, _ := polDatabase(t, src, 100)
	dsnC, _, _ := polDatabase(t, src, 100)
	today := todayAnd(time.Now())
	away := wstart.Add(6 * time.Hour)
	awayWindow := fmt.Sprintf("%02d:00Z-%02d:00Z", away.Hour(), away.Add(time.Hour).Hour())
	pg := enginetest.SharedPostgres(t)
	catalogDSN := pg.URL(pg.NewDatabase(t))
	s3srv := s3test.Shared(t)
	s3 := newS3Target(t, s3srv)
	nodes := map[string]*testService{}
	for _, id := range []string{"n1", "n2", "n3"} {
		pc := &polConfig{DataDir: t.TempDir(), Backups: fastBackups,
			Env: map[string]string{"CATALOG_DSN": catalogDSN, envTestS3Secret: s3srv.SecretKey},
			Insts: []polInst{
				{ID: "rm-nsa", Engine: "MariaDB", DSN: dsnA, Policy: []string{"preferredBackupTime: " + window, "preferredBackupPeriod: " + today}},
				{ID: "rm-nsb", Engine: "MariaDB", DSN: dsnB, Policy: []string{"preferredBackupTime: " + awayWindow, "preferredBackupPeriod: " + today}},
				{ID: "rm-nsc", Engine: "MariaDB", DSN: dsnC, Policy: []string{"preferredBackupTime: " + awayWindow, "preferredBackupPeriod: " + today}},
			},
			Extra: catalogYAML + s3.yaml("") + "node:\n  id: " + id + "\n  lease: 2s\n"}
		nodes[id] = pc.start(t)
	}
	c := rootClients(t, nodes["n1"])

	// finished returns the instance's ended jobs, with their nodes.
	finished := func(inst string) []taskOut {
		return describeTasks(t, c, inst, func(r *rds.DescribeBackupTasksRequest) { r.BackupJobStatus = "Finished" })
	}
	waitFor(t, time.Minute, "the automated backup of rm-nsa", func() bool { return len(finished("rm-nsa")) > 0 })
	time.Sleep(time.Second) // ten more ticks on each node
	jobs := polJobs(t, c, "rm-nsa")
	if len(jobs) != 1 || len(automatedSets(t, c, "rm-nsa")) != 1 {
		t.Fatalf("rm-nsa, one window, three nodes: jobs %+v", jobs)
	}
	leader := finished("rm-nsa")[0].NodeId
	if nodes[leader] == nil {
		t.Fatalf("the automated job's node %q", leader)
	}
	var other string
	for id := range nodes {
		if id != leader {
			other = id
			break
		}
	}
	t.Logf("leader %s; changing rm-nsb's policy through %s", leader, other)

	// A policy changed through a node that does not schedule.
	mustModifyPolicy(t, rootClients(t, nodes[other]), "rm-nsb", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = window })
	waitFor(t, time.Minute, "the automated backup of rm-nsb", func() bool { return len(finished("rm-nsb")) > 0 })
	if j := finished("rm-nsb"); len(j) != 1 || j[0].NodeId != leader {
		t.Errorf("rm-nsb's automated jobs: %+v, want one by %s", j, leader)
	}

	// The leader stops: another node schedules.
	nodes[leader].Stop()
	delete(nodes, leader)
	c = rootClients(t, nodes[other])
	mustModifyPolicy(t, rootClients(t, nodes[other]), "rm-nsc", func(r *rds.ModifyBackupPolicyRequest) { r.PreferredBackupTime = window })
	waitFor(t, time.Minute, "the automated backup of rm-nsc", func() bool { return len(finished("rm-nsc")) > 0 })
	time.Sleep(time.Second)
	if j := finished("rm-nsc"); len(j) != 1 || j[0].NodeId == leader {
		t.Errorf("rm-nsc's automated jobs: %+v, want one, not by the stopped %s", j, leader)
	}
	for _, inst := range []string{"rm-nsa", "rm-nsb", "rm-nsc"} {
		if n := len(polJobs(t, c, inst)); n != 1 {
			t.Errorf("%s: %d jobs, want 1", inst, n)
		}
	}
}

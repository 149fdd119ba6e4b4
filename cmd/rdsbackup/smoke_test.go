package main

import (
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

func TestSmokeDescribeBackups(t *testing.T) {
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-a1"), testEnv(nil))
	db := openCatalog(t, dir)
	if err := db.CreateBackupSet(t.Context(), sampleSet("rm-a1", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))); err != nil {
		t.Fatal(err)
	}
	c, err := rds.NewClientWithAccessKey("cn-hangzhou", rootKeyID, rootKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	c.Domain = s.Addr
	req := rds.CreateDescribeBackupsRequest()
	req.DBInstanceId = "rm-a1"
	req.PageSize = requests.NewInteger(30)
	resp, err := c.DescribeBackups(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TotalRecordCount != "1" || len(resp.Items.Backup) != 1 || resp.Items.Backup[0].BackupStartTime != "2026-01-02T03:04:05Z" {
		t.Fatalf("unexpected response: %s", resp.GetHttpContentString())
	}
}

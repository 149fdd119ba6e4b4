package main

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
)

// filterBase is the start time of the first set of the filter fixture.
var filterBase = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)

// startFilterService runs a service with rm-a1 and rm-b1 and this fixture:
//
//	id   instance status  mode       type               start
//	101  rm-a1    Success Automated  FullBackup         base
//	102  rm-a1    Failed  Automated  FullBackup         base+1h
//	103  rm-a1    Success Manual     IncrementalBackup  base+2h
//	104  rm-a1    Success Manual     FullBackup         base+3h
//	105  rm-a1    Failed  Manual     IncrementalBackup  base+4h
//	201  rm-b1    Success Automated  FullBackup         base+2h
func startFilterService(t *testing.T) *testService {
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-a1", "rm-b1"), testEnv(nil))
	h := time.Hour
	insertSets(t, openCatalog(t, dir),
		setSpec{ID: 101, Instance: "rm-a1", Start: filterBase, Mode: rdsbackup.BackupAutomated, Type: rdsbackup.FullBackup},
		setSpec{ID: 102, Instance: "rm-a1", Start: filterBase.Add(h), Status: rdsbackup.BackupFailed, Mode: rdsbackup.BackupAutomated, Type: rdsbackup.FullBackup},
		setSpec{ID: 103, Instance: "rm-a1", Start: filterBase.Add(2 * h), Mode: rdsbackup.BackupManual, Type: rdsbackup.IncrementalBackup},
		setSpec{ID: 104, Instance: "rm-a1", Start: filterBase.Add(3 * h), Mode: rdsbackup.BackupManual, Type: rdsbackup.FullBackup},
		setSpec{ID: 105, Instance: "rm-a1", Start: filterBase.Add(4 * h), Status: rdsbackup.BackupFailed, Mode: rdsbackup.BackupManual, Type: rdsbackup.IncrementalBackup},
		setSpec{ID: 201, Instance: "rm-b1", Start: filterBase.Add(2 * h), Mode: rdsbackup.BackupAutomated, Type: rdsbackup.FullBackup},
	)
	return s
}

func TestDescribeBackupsFilters(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	h := time.Hour
	allA := idStrings(105, 104, 103, 102, 101)

	tests := []struct {
		name  string
		setup func(*rds.DescribeBackupsRequest)
		want  []string
	}{
		{"DBInstanceId/a", func(r *rds.DescribeBackupsRequest) {}, allA},
		{"DBInstanceId/b", func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "rm-b1" }, idStrings(201)},
		{"BackupId/match", func(r *rds.DescribeBackupsRequest) { r.BackupId = "103" }, idStrings(103)},
		{"BackupId/other instance", func(r *rds.DescribeBackupsRequest) { r.BackupId = "201" }, nil},
		{"BackupId/unknown", func(r *rds.DescribeBackupsRequest) { r.BackupId = "999999" }, nil},
		{"BackupStatus/Success", func(r *rds.DescribeBackupsRequest) { r.BackupStatus = "Success" }, idStrings(104, 103, 101)},
		{"BackupStatus/Failed", func(r *rds.DescribeBackupsRequest) { r.BackupStatus = "Failed" }, idStrings(105, 102)},
		{"BackupMode/Automated", func(r *rds.DescribeBackupsRequest) { r.BackupMode = "Automated" }, idStrings(102, 101)},
		{"BackupMode/Manual", func(r *rds.DescribeBackupsRequest) { r.BackupMode = "Manual" }, idStrings(105, 104, 103)},
		{"BackupType/FullBackup", func(r *rds.DescribeBackupsRequest) { r.BackupType = "FullBackup" }, idStrings(104, 102, 101)},
		{"BackupType/IncrementalBackup", func(r *rds.DescribeBackupsRequest) { r.BackupType = "IncrementalBackup" }, idStrings(105, 103)},
		{"StartTime/inclusive", func(r *rds.DescribeBackupsRequest) { r.StartTime = minute(filterBase.Add(h)) }, idStrings(105, 104, 103, 102)},
		{"StartTime/between sets", func(r *rds.DescribeBackupsRequest) { r.StartTime = minute(filterBase.Add(h + time.Minute)) }, idStrings(105, 104, 103)},
		{"StartTime/after all", func(r *rds.DescribeBackupsRequest) { r.StartTime = minute(filterBase.Add(5 * h)) }, nil},
		{"EndTime/inclusive", func(r *rds.DescribeBackupsRequest) { r.EndTime = minute(filterBase.Add(3 * h)) }, idStrings(104, 103, 102, 101)},
		{"EndTime/between sets", func(r *rds.DescribeBackupsRequest) { r.EndTime = minute(filterBase.Add(3*h - time.Minute)) }, idStrings(103, 102, 101)},
		{"EndTime/before all", func(r *rds.DescribeBackupsRequest) { r.EndTime = minute(filterBase.Add(-h)) }, nil},
		{"StartTime+EndTime", func(r *rds.DescribeBackupsRequest) {
			r.StartTime, r.EndTime = minute(filterBase.Add(h)), minute(filterBase.Add(3*h))
		}, idStrings(104, 103, 102)},
		{"StartTime+EndTime/one minute", func(r *rds.DescribeBackupsRequest) {
			r.StartTime, r.EndTime = minute(filterBase.Add(2*h)), minute(filterBase.Add(2*h+time.Minute))
		}, idStrings(103)},
		{"Status+Mode+Type", func(r *rds.DescribeBackupsRequest) {
			r.BackupStatus, r.BackupMode, r.BackupType = "Success", "Manual", "FullBackup"
		}, idStrings(104)},
		{"Status+StartTime", func(r *rds.DescribeBackupsRequest) {
			r.BackupStatus, r.StartTime = "Failed", minute(filterBase.Add(2*h))
		}, idStrings(105)},
		// Accepted and ignored: the result equals the unfiltered one.
		{"ignored/BackupLocation", func(r *rds.DescribeBackupsRequest) { r.BackupLocation = "OSS" }, allA},
		{"ignored/ResourceGroupId", func(r *rds.DescribeBackupsRequest) { r.ResourceGroupId = "rg-acfmy12345" }, allA},
		{"ignored/OwnerId", func(r *rds.DescribeBackupsRequest) { r.OwnerId = requests.NewInteger64(1234567890123) }, allA},
		{"ignored/ResourceOwnerId", func(r *rds.DescribeBackupsRequest) { r.ResourceOwnerId = requests.NewInteger64(987654321) }, allA},
		{"ignored/ResourceOwnerAccount", func(r *rds.DescribeBackupsRequest) { r.ResourceOwnerAccount = "owner@example.com" }, allA},
		{"ignored/OwnerAccount", func(r *rds.DescribeBackupsRequest) { r.OwnerAccount = "someone" }, allA},
		{"ignored/RegionId", func(r *rds.DescribeBackupsRequest) { r.QueryParams["RegionId"] = "eu-central-1" }, allA},
		{"ignored/all at once", func(r *rds.DescribeBackupsRequest) {
			r.BackupLocation, r.ResourceGroupId, r.OwnerAccount, r.ResourceOwnerAccount = "OSS", "rg-x", "o", "ro"
			r.OwnerId, r.ResourceOwnerId = requests.NewInteger(1), requests.NewInteger(2)
			r.QueryParams["RegionId"] = "cn-shanghai"
		}, allA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := rootClients(t, s) // an SDK client is not safe for concurrent use
			resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
				r.DBInstanceId = "rm-a1"
				tt.setup(r)
			})
			if err != nil {
				t.Fatal(err)
			}
			got := backupIDs(resp)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("BackupIds %v, want %v", got, tt.want)
			}
			n := strconv.Itoa(len(tt.want))
			if resp.TotalRecordCount != n || resp.PageRecordCount != n || resp.PageNumber != "1" {
				t.Fatalf("TotalRecordCount %q PageRecordCount %q PageNumber %q, want %s/%s/1",
					resp.TotalRecordCount, resp.PageRecordCount, resp.PageNumber, n, n)
			}
			if ps := pageSize(t, resp); ps != 30 {
				t.Errorf("default PageSize %d, want 30", ps)
			}
			for _, b := range resp.Items.Backup {
				if b.DBInstanceId != "rm-a1" && tt.name != "DBInstanceId/b" {
					t.Errorf("set %s of %s in a query for rm-a1", b.BackupId, b.DBInstanceId)
				}
			}
		})
	}
}

// TestDescribeBackupsItemFields checks every field of one set as the SDK
// decodes it.
func TestDescribeBackupsItemFields(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	resp, err := describeBackups(t, rootClients(t, s), func(r *rds.DescribeBackupsRequest) {
		r.DBInstanceId, r.BackupId = "rm-a1", "104"
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Items.Backup) != 1 {
		t.Fatalf("want one set: %s", resp.GetHttpContentString())
	}
	b := resp.Items.Backup[0]
	start := filterBase.Add(3 * time.Hour)
	checks := []struct{ name, got, want string }{
		{"BackupId", b.BackupId, "104"},
		{"DBInstanceId", b.DBInstanceId, "rm-a1"},
		{"BackupStatus", b.BackupStatus, "Success"},
		{"BackupStartTime", b.BackupStartTime, "2026-01-10T03:00:00Z"},
		{"BackupEndTime", b.BackupEndTime, "2026-01-10T03:01:30Z"},
		{"BackupType", b.BackupType, "FullBackup"},
		{"BackupMode", b.BackupMode, "Manual"},
		{"BackupMethod", b.BackupMethod, "Logical"},
		{"BackupInitiator", b.BackupInitiator, "User"},
		{"StoreStatus", b.StoreStatus, "Enabled"},
		{"MetaStatus", b.MetaStatus, "OK"},
		{"StorageClass", b.StorageClass, "0"},
		{"CopyOnlyBackup", b.CopyOnlyBackup, "0"},
		{"Checksum", b.Checksum, "12345678901234567890"},
		{"HostInstanceID", b.HostInstanceID, "5882781"},
		{"Encryption", b.Encryption, "{}"},
		{"Engine", b.Engine, "MySQL"},
		{"EngineVersion", b.EngineVersion, "8.0"},
		{"BackupLocation", b.BackupLocation, "Local"},
		{"BackupScale", b.BackupScale, "DBInstance"},
		{"BackupDBNames", b.BackupDBNames, "shop,crm"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if b.IsAvail != 1 || b.BackupSize != 2167808 || b.ConsistentTime != start.Unix() || b.TotalBackupSize != 2167808 {
		t.Errorf("IsAvail %d BackupSize %d ConsistentTime %d TotalBackupSize %d", b.IsAvail, b.BackupSize, b.ConsistentTime, b.TotalBackupSize)
	}

	// A failed set is not available.
	resp, err = describeBackups(t, rootClients(t, s), func(r *rds.DescribeBackupsRequest) {
		r.DBInstanceId, r.BackupId = "rm-a1", "105"
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Items.Backup) != 1 || resp.Items.Backup[0].IsAvail != 0 || resp.Items.Backup[0].BackupStatus != "Failed" {
		t.Fatalf("failed set: %s", resp.GetHttpContentString())
	}
}

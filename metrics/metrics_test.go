package metrics_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/metrics"
	"github.com/rdsbackup/rdsbackup/metrics/metricstest"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

// scrape reads the metrics as Prometheus does and returns each sample by
// its name and labels as written, e.g. `rdsbackup_backups_total{engine="MariaDB",method="Logical",result="Success"}`.
func scrape(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	out, err := metricstest.Parse(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func want(t *testing.T, got map[string]float64, sample string, v float64) {
	t.Helper()
	if g, ok := got[sample]; !ok || g != v {
		t.Errorf("%s = %v (present %v), want %v", sample, g, ok, v)
	}
}

func TestRequests(t *testing.T) {
	m := metrics.New()
	m.RequestDone("DescribeBackups", "", 3*time.Millisecond)
	m.RequestDone("DescribeBackups", "", 40*time.Millisecond)
	m.RequestDone("DescribeBackups", rdsbackup.ESignatureDoesNotMatch, time.Millisecond)
	m.RequestDone("CreateUser", rdsbackup.EForbiddenRAM, time.Millisecond)
	m.RequestDone("DescribeBackups", rdsbackup.EThrottling, time.Millisecond)
	m.RequestDone("unknown", rdsbackup.EInvalidAction, time.Millisecond)
	got := scrape(t, m)
	want(t, got, `rdsbackup_api_requests_total{action="DescribeBackups",code="OK"}`, 2)
	want(t, got, `rdsbackup_api_requests_total{action="DescribeBackups",code="SignatureDoesNotMatch"}`, 1)
	want(t, got, `rdsbackup_api_requests_total{action="unknown",code="InvalidAction.NotFound"}`, 1)
	want(t, got, `rdsbackup_api_auth_failures_total{reason="SignatureDoesNotMatch"}`, 1)
	want(t, got, `rdsbackup_api_auth_failures_total{reason="Forbidden.RAM"}`, 1)
	want(t, got, `rdsbackup_api_throttled_requests_total`, 1)
	want(t, got, `rdsbackup_api_request_duration_seconds_count{action="DescribeBackups"}`, 4)
	want(t, got, `rdsbackup_api_request_duration_seconds_bucket{action="DescribeBackups",le="0.005"}`, 3)
	if _, ok := got[`rdsbackup_api_auth_failures_total{reason="InvalidAction.NotFound"}`]; ok {
		t.Error("an unknown action counted as an authentication failure")
	}
	if got["go_goroutines"] <= 0 || got["process_resident_memory_bytes"] <= 0 {
		t.Error("no Go runtime or process metrics")
	}
}

func TestBackupsJobsAndGauges(t *testing.T) {
	m := metrics.New()
	m.BackupDone(rdsbackup.EngineMariaDB, rdsbackup.MethodLogical, "Success", 3*time.Second, 12345)
	m.BackupDone(rdsbackup.EngineMariaDB, rdsbackup.MethodLogical, "Failed", time.Second, 0)
	m.CatalogWriteFailed(true)
	m.CatalogWriteFailed(true)
	m.CatalogWriteFailed(false)
	m.TickDone(2*time.Millisecond, 1)
	m.SweepDone(3, nil)
	m.SweepDone(0, errors.New("catalog down"))
	entries := 7
	m.ReplayMemory(func() int { return entries }, 1000)
	m.Jobs(func() map[rdsbackup.JobStatus]int {
		return map[rdsbackup.JobStatus]int{rdsbackup.JobUploading: 2, rdsbackup.JobFailed: 1}
	}, func() int { return 1 })
	got := scrape(t, m)
	want(t, got, `rdsbackup_backups_total{engine="MariaDB",method="Logical",result="Success"}`, 1)
	want(t, got, `rdsbackup_backups_total{engine="MariaDB",method="Logical",result="Failed"}`, 1)
	want(t, got, `rdsbackup_backup_stored_bytes_total{engine="MariaDB",method="Logical"}`, 12345)
	want(t, got, `rdsbackup_backup_duration_seconds_sum{engine="MariaDB",method="Logical",result="Success"}`, 3)
	want(t, got, `rdsbackup_catalog_job_write_failures_total{kind="final"}`, 2)
	want(t, got, `rdsbackup_catalog_job_write_failures_total{kind="progress"}`, 1)
	want(t, got, `rdsbackup_scheduler_tick_duration_seconds_count`, 1)
	want(t, got, `rdsbackup_expiry_sweeps_total{result="ok"}`, 1)
	want(t, got, `rdsbackup_expiry_sweeps_total{result="error"}`, 1)
	want(t, got, `rdsbackup_expiry_deleted_sets_total`, 3)
	want(t, got, `rdsbackup_replay_memory_entries`, 7)
	want(t, got, `rdsbackup_replay_memory_capacity_entries`, 1000)
	want(t, got, `rdsbackup_backup_jobs{state="Uploading"}`, 2)
	want(t, got, `rdsbackup_backup_jobs{state="Failed"}`, 1)
	want(t, got, `rdsbackup_backup_jobs{state="Preparing"}`, 0)
	want(t, got, `rdsbackup_backup_jobs_unsettled`, 1)
	entries = 9 // gauges are read at each scrape
	want(t, scrape(t, m), `rdsbackup_replay_memory_entries`, 9)
}

// TestStoreErrors: failures of the wrapped store are counted by operation
// and code; a missing object is not a failure.
func TestStoreErrors(t *testing.T) {
	m := metrics.New()
	faulty := storagetest.NewFaulty(localfs.New(t.TempDir()))
	s := m.Store(faulty)
	ctx := t.Context()
	if _, err := s.Stat(ctx, "backups/none"); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Fatal(err)
	}
	faulty.Inject(storagetest.Fault{Op: storagetest.OpWrite, After: 10, Times: 1, Err: rdsbackup.NoSpace("backup storage", errors.New("ENOSPC"))},
		storagetest.Fault{Op: storagetest.OpList, Times: 1})
	w, err := s.Create(ctx, "backups/a/1/set.zst")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 100))
	w.Write(make([]byte, 100))
	w.Commit()
	rdsbackup.CollectObjects(s.List(ctx, "backups/"))
	w, _ = s.Create(ctx, "backups/a/2/set.zst")
	w.Write([]byte("data"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, "backups/a/2/set.zst", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(r)
	r.Close()
	got := scrape(t, m)
	want(t, got, `rdsbackup_storage_errors_total{code="InsufficientStorage",op="write"}`, 1)
	want(t, got, `rdsbackup_storage_errors_total{code="InternalError",op="list"}`, 1)
	for k := range got {
		if strings.HasPrefix(k, "rdsbackup_storage_errors_total") && !strings.Contains(k, `op="write"`) && !strings.Contains(k, `op="list"`) {
			t.Errorf("counted %s", k)
		}
	}
}

func TestLogMetrics(t *testing.T) {
	m := metrics.New()
	m.LogStored("rm-a", 100)
	m.LogStored("rm-a", 50)
	m.LogGap("rm-a")
	m.StreamFailed("rm-b")
	got := scrape(t, m)
	want(t, got, `rdsbackup_log_files_stored_total{instance="rm-a"}`, 2)
	want(t, got, `rdsbackup_log_stored_bytes_total{instance="rm-a"}`, 150)
	want(t, got, `rdsbackup_log_gaps_total{instance="rm-a"}`, 1)
	want(t, got, `rdsbackup_log_stream_failures_total{instance="rm-b"}`, 1)
}

func TestDrillMetrics(t *testing.T) {
	m := metrics.New()
	m.DrillDone(rdsbackup.DrillFailed)
	m.DrillDone(rdsbackup.DrillPassed)
	m.DrillDone(rdsbackup.DrillPassed)
	got := scrape(t, m)
	want(t, got, `rdsbackup_drills_total{result="Passed"}`, 2)
	want(t, got, `rdsbackup_drills_total{result="Failed"}`, 1)
	want(t, got, `rdsbackup_drills_total{result="NotRun"}`, 0)
}

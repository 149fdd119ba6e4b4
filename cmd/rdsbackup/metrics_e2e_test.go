package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"

	"github.com/rdsbackup/rdsbackup/metrics/metricstest"
)

var metricsAddr = regexp.MustCompile(`msg="metrics serving" addr=(\S+)`)

// metricsURL returns the service's /metrics address, from its log.
func metricsURL(t testing.TB, s *testService) string {
	t.Helper()
	m := metricsAddr.FindStringSubmatch(s.Stderr.String())
	if m == nil {
		t.Fatalf("the service logs no metrics address:\n%s", s.Stderr.String())
	}
	return "http://" + m[1] + "/metrics"
}

// scrapeMetrics reads url as Prometheus does: samples by name and labels.
func scrapeMetrics(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s %q: %s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	out, err := metricstest.Parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMetricsEndpoint scrapes a running service's metrics.listen while
// official SDK clients call it: the request, latency, auth-failure and
// replay-memory series move with the calls, and the API listener does not
// serve /metrics.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), "metrics:\n  listen: 127.0.0.1:0\n"+instancesYAML("rm-m1"), testEnv(nil))
	url := metricsURL(t, s)
	before := scrapeMetrics(t, url)
	const ok = `rdsbackup_api_requests_total{action="DescribeBackups",code="OK"}`
	if before[ok] != 0 || before["rdsbackup_replay_memory_capacity_entries"] != 2097152 {
		t.Errorf("before any call: %s = %v, capacity %v", ok, before[ok], before["rdsbackup_replay_memory_capacity_entries"])
	}

	root := rootClients(t, s)
	for range 3 {
		if _, err := describeOn(t, root, "rm-m1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := describeOn(t, newClients(t, s.Addr, rootKeyID, rootKeySecret+"x"), "rm-m1")
	wantServerError(t, err, "SignatureDoesNotMatch", 400)
	_, err = describeOn(t, root, "rm-nope")
	wantServerError(t, err, "InvalidDBInstanceId.NotFound", 400)
	ak, secret := createUserWithKey(t, root, "metrics-user")
	_, err = newClients(t, s.Addr, ak, secret).RAM.ListUsers(ram.CreateListUsersRequest())
	wantServerError(t, err, "Forbidden.RAM", 403)

	got := scrapeMetrics(t, url)
	for sample, v := range map[string]float64{
		ok: 3,
		`rdsbackup_api_requests_total{action="DescribeBackups",code="SignatureDoesNotMatch"}`:        1,
		`rdsbackup_api_requests_total{action="DescribeBackups",code="InvalidDBInstanceId.NotFound"}`: 1,
		`rdsbackup_api_requests_total{action="ListUsers",code="Forbidden.RAM"}`:                      1,
		`rdsbackup_api_auth_failures_total{reason="SignatureDoesNotMatch"}`:                          1,
		`rdsbackup_api_auth_failures_total{reason="Forbidden.RAM"}`:                                  1,
		`rdsbackup_api_request_duration_seconds_count{action="DescribeBackups"}`:                     5,
		`rdsbackup_backup_jobs_unsettled`:                                                            0,
	} {
		if got[sample] != v {
			t.Errorf("%s = %v, want %v", sample, got[sample], v)
		}
	}
	// Every verified request left its nonce: 3 + 1 + 2 CreateUser/Key + 1.
	if n := got["rdsbackup_replay_memory_entries"]; n < 7 {
		t.Errorf("replay memory holds %v entries after 7 verified calls", n)
	}
	if _, err := describeOn(t, root, "rm-m1"); err != nil {
		t.Fatal(err)
	}
	if after := scrapeMetrics(t, url); after[ok] != 4 {
		t.Errorf("%s did not move: %v", ok, after[ok])
	}

	resp, err := http.Get("http://" + s.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("the API listener serves /metrics")
	}
}

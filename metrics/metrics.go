// Package metrics exposes rdsbackup's metrics in the Prometheus text format
// (github.com/prometheus/client_golang). The parts of the service report
// through small interfaces of their own (api.RequestMetrics,
// backup.Metrics, backup.SweepMetrics, scheduler.TickMetrics), which
// *Metrics implements, so that none of them imports Prometheus; main wires
// them together.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rdsbackup/rdsbackup"
)

const namespace = "rdsbackup"

// Metrics holds the service's collectors in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	authFailures   *prometheus.CounterVec
	throttled      prometheus.Counter
	backups        *prometheus.CounterVec
	backupDuration *prometheus.HistogramVec
	backupBytes    *prometheus.CounterVec
	catalogFailed  *prometheus.CounterVec
	tick           prometheus.Histogram
	sweeps         *prometheus.CounterVec
	expired        prometheus.Counter
	storageErrors  *prometheus.CounterVec
	logFiles       *prometheus.CounterVec
	logBytes       *prometheus.CounterVec
	logGaps        *prometheus.CounterVec
	logStreamFails *prometheus.CounterVec
	drills         *prometheus.CounterVec
}

// New returns the service's metrics, with Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "api_requests_total",
		Help: "API calls answered, by action (\"unknown\" for an action the service does not serve) and error code (\"OK\" for success)."},
		[]string{"action", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "api_request_duration_seconds",
		Help:    "Time from reading an API call to its answer, by action.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}},
		[]string{"action"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "api_auth_failures_total",
		Help: "API calls refused by authentication or RAM authorization, by reason (the error code)."},
		[]string{"reason"})
	m.throttled = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "api_throttled_requests_total",
		Help: "API calls refused with Throttling.User."})
	m.backups = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "backups_total",
		Help: "Backup jobs that ended, by engine, method and result (Success or Failed)."},
		[]string{"engine", "method", "result"})
	m.backupDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "backup_duration_seconds",
		Help:    "How long backup jobs ran, by engine, method and result.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16)}, // 1 s to 9 h
		[]string{"engine", "method", "result"})
	m.backupBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "backup_stored_bytes_total",
		Help: "Bytes of the backup sets stored (compressed), by engine and method."},
		[]string{"engine", "method"})
	m.catalogFailed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "catalog_job_write_failures_total",
		Help: "Writes of a backup job's state that the catalog refused; kind \"final\" (retried until it passes) or \"progress\"."},
		[]string{"kind"})
	m.tick = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "scheduler_tick_duration_seconds",
		Help:    "How long a pass of the backup scheduler took.",
		Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5}})
	m.sweeps = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "expiry_sweeps_total",
		Help: "Expiry sweeps, by result (ok or error)."},
		[]string{"result"})
	m.expired = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "expiry_deleted_sets_total",
		Help: "Backup sets deleted because they expired."})
	m.storageErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "storage_errors_total",
		Help: "Failed operations on the backup storage, by operation and error code (a missing object and a cancelled call are not counted)."},
		[]string{"op", "code"})
	m.logFiles = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "log_files_stored_total",
		Help: "Complete log files (binlog files, WAL segments) stored for point-in-time recovery, by instance."},
		[]string{"instance"})
	m.logBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "log_stored_bytes_total",
		Help: "Bytes of the complete log files stored (compressed), by instance."},
		[]string{"instance"})
	m.logGaps = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "log_gaps_total",
		Help: "Gaps recorded in an instance's log archive: times a restore cannot reach (docs/pitr.md)."},
		[]string{"instance"})
	m.logStreamFails = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "log_stream_failures_total",
		Help: "Times an instance's log stream broke and was restarted."},
		[]string{"instance"})
	m.drills = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "drills_total",
		Help: "Restore drills by result: Passed, Failed (the set is no longer available) or NotRun (docs/drills.md)."},
		[]string{"result"})
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.authFailures, m.throttled, m.backups, m.backupDuration,
		m.backupBytes, m.catalogFailed, m.tick, m.sweeps, m.expired, m.storageErrors, m.logFiles, m.logBytes, m.logGaps, m.logStreamFails, m.drills} {
		f(c)
	}
	m.catalogFailed.WithLabelValues("final")
	m.catalogFailed.WithLabelValues("progress")
	for _, r := range []string{"ok", "error"} {
		m.sweeps.WithLabelValues(r)
	}
	for _, r := range []rdsbackup.DrillResult{rdsbackup.DrillPassed, rdsbackup.DrillFailed, rdsbackup.DrillNotRun} {
		m.drills.WithLabelValues(string(r))
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// authCodes are the error codes of calls refused by authentication or
// authorization.
var authCodes = map[string]bool{
	rdsbackup.EAccessKeyNotFound:     true,
	rdsbackup.EAccessKeyDisabled:     true,
	rdsbackup.ESignatureDoesNotMatch: true,
	rdsbackup.EIncompleteSignature:   true,
	rdsbackup.ETimestampExpired:      true,
	rdsbackup.ETimestampFormat:       true,
	rdsbackup.ENonceUsed:             true,
	rdsbackup.EUnsupportedSignature:  true,
	rdsbackup.EForbiddenRAM:          true,
}

// RequestDone counts an API call; code is its error code, "" on success.
// Authentication failures and throttling are told by the code alone.
func (m *Metrics) RequestDone(action, code string, took time.Duration) {
	if code == "" {
		code = "OK"
	}
	m.requests.WithLabelValues(action, code).Inc()
	m.latency.WithLabelValues(action).Observe(took.Seconds())
	if authCodes[code] {
		m.authFailures.WithLabelValues(code).Inc()
	}
	if code == rdsbackup.EThrottling {
		m.throttled.Inc()
	}
}

// BackupDone counts a backup job that ended.
func (m *Metrics) BackupDone(engine rdsbackup.Engine, method rdsbackup.BackupMethod, result string, took time.Duration, bytes int64) {
	m.backups.WithLabelValues(string(engine), string(method), result).Inc()
	m.backupDuration.WithLabelValues(string(engine), string(method), result).Observe(took.Seconds())
	if bytes > 0 {
		m.backupBytes.WithLabelValues(string(engine), string(method)).Add(float64(bytes))
	}
}

// LogStored counts a complete log file stored (logs.Metrics).
func (m *Metrics) LogStored(instanceID string, bytes int64) {
	m.logFiles.WithLabelValues(instanceID).Inc()
	m.logBytes.WithLabelValues(instanceID).Add(float64(bytes))
}

// LogGap counts a gap recorded in an instance's log archive.
func (m *Metrics) LogGap(instanceID string) { m.logGaps.WithLabelValues(instanceID).Inc() }

// StreamFailed counts a broken log stream.
func (m *Metrics) StreamFailed(instanceID string) { m.logStreamFails.WithLabelValues(instanceID).Inc() }

// DrillDone counts a restore drill by its result.
func (m *Metrics) DrillDone(result rdsbackup.DrillResult) {
	m.drills.WithLabelValues(string(result)).Inc()
}

// CatalogWriteFailed counts a job state the catalog refused.
func (m *Metrics) CatalogWriteFailed(final bool) {
	kind := "progress"
	if final {
		kind = "final"
	}
	m.catalogFailed.WithLabelValues(kind).Inc()
}

// TickDone observes a scheduler pass.
func (m *Metrics) TickDone(took time.Duration, started int) { m.tick.Observe(took.Seconds()) }

// SweepDone counts an expiry sweep and the sets it deleted.
func (m *Metrics) SweepDone(deleted int, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.sweeps.WithLabelValues(result).Inc()
	m.expired.Add(float64(deleted))
}

// ReplayMemory exports the replay memory's use: entries (read at each
// scrape) against its capacity.
func (m *Metrics) ReplayMemory(entries func() int, capacity int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "replay_memory_entries",
		Help: "Nonces held by the replay memory (requests signed in the last 15 minutes)."},
		func() float64 { return float64(entries()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "replay_memory_capacity_entries",
		Help: "The replay memory's bound (auth.maxNonces)."},
		func() float64 { return float64(capacity) }))
}

// jobStates are the states the jobs gauge reports, every one always.
var jobStates = []rdsbackup.JobStatus{rdsbackup.JobNoStart, rdsbackup.JobPreparing, rdsbackup.JobWaiting,
	rdsbackup.JobUploading, rdsbackup.JobChecking, rdsbackup.JobFinished, rdsbackup.JobFailed}

// Jobs exports the running backup jobs by state, and how many of them
// wait for their final state to be recorded, both read at each scrape.
func (m *Metrics) Jobs(states func() map[rdsbackup.JobStatus]int, unsettled func() int) {
	desc := prometheus.NewDesc(namespace+"_backup_jobs", "Backup jobs in progress by state; Finished and Failed count the ended jobs whose final state is being recorded.", []string{"state"}, nil)
	udesc := prometheus.NewDesc(namespace+"_backup_jobs_unsettled", "Ended backup jobs whose final state the catalog has not taken yet (retried; see /healthz).", nil, nil)
	m.reg.MustRegister(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		counts := states()
		for _, st := range jobStates {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
		ch <- prometheus.MustNewConstMetric(udesc, prometheus.GaugeValue, float64(unsettled()))
	}))
}

// storageError counts a failed storage operation, unless the failure is a
// missing object or the caller's cancellation.
func (m *Metrics) storageError(op string, err error) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return
	}
	code := rdsbackup.ErrorCode(err)
	if code == rdsbackup.ENOTFOUND {
		return
	}
	m.storageErrors.WithLabelValues(op, code).Inc()
}

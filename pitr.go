package rdsbackup

import (
	"context"
	"io"
	"sort"
	"time"
)

// Point-in-time recovery (docs/pitr.md). An instance with log backup on has
// its server's log (MariaDB/MySQL binary log, PostgreSQL WAL) streamed into
// a local spool by a LogStreamer, each complete file uploaded to the object
// store and recorded as a LogFile. A restore to a time T takes the newest
// usable full set that ends at or before T and rolls it forward with the
// continuous logs from the set's recorded LogPosition up to T
// (PointInTimeRestorer).

// LogPosition is a point in an instance's log stream. Engines fill the
// fields they have; the others stay zero.
type LogPosition struct {
	// File is the LogFile.Name of the log file that holds the position:
	// a binary log file ("mysql-bin.000042") or a WAL segment name.
	File string `json:"file,omitempty"`
	// Offset is the byte offset inside File: the binlog position (an
	// event starts there), or the offset of the LSN inside its segment.
	Offset int64 `json:"offset,omitempty"`
	// GTID is MariaDB's gtid_binlog_pos or MySQL's executed GTID set.
	GTID string `json:"gtid,omitempty"`
	// LSN ("0/3000028") and Timeline are PostgreSQL's.
	LSN      string `json:"lsn,omitempty"`
	Timeline int    `json:"timeline,omitempty"`
}

// IsZero reports whether p holds no position.
func (p LogPosition) IsZero() bool { return p == LogPosition{} }

// LogFileStatus is a stored log file's state, RemoteStatus on the wire.
type LogFileStatus string

const (
	// LogCompleted: the file is complete (the server has moved on to the
	// next one) and its object holds all of it.
	LogCompleted LogFileStatus = "Completed"
	// LogUploading: the file the server is still writing; its object is a
	// replaceable copy of the events received so far, rewritten at most
	// every logs.uploadInterval, and replaced by the Completed one.
	LogUploading LogFileStatus = "Uploading"
)

// Log file kinds.
const (
	// LogKindLog is an ordinary log file, part of the Seq chain.
	LogKindLog = ""
	// LogKindHistory is a PostgreSQL timeline history file: kept beside
	// the segments, restored with them, outside the Seq chain.
	LogKindHistory = "history"
)

// LogFile is one log file of one instance as held in the object store.
type LogFile struct {
	InstanceID string
	// Name is LogFileName: the server's own name of the file.
	Name string
	// Kind is LogKindLog or LogKindHistory.
	Kind string
	// Seq orders an instance's log files and defines adjacency: files
	// with Seq n and n+1 follow each other with no event between them,
	// unless a LogGap says otherwise. MariaDB: the binlog file's numeric
	// suffix. PostgreSQL: the segment number (timeline excluded; a
	// timeline switch is a gap unless the engine proves it is not).
	Seq int64
	// BeginTime and EndTime are the times of the first and the last event
	// in the file (LogBeginTime, LogEndTime), to the second.
	BeginTime time.Time
	EndTime   time.Time
	// Start and End are the positions of the file's first byte and of the
	// end of its last complete event.
	Start LogPosition
	End   LogPosition
	// RawSize is the size of the log file itself; Size (FileSize) and
	// Checksum (decimal CRC64-ECMA) are those of the stored object, the
	// bytes a download link returns (zstd-compressed).
	RawSize   int64
	Size      int64
	Checksum  string
	ObjectKey string
	Status    LogFileStatus
	// HostID is the server's identity (@@server_id, the PostgreSQL system
	// identifier): HostInstanceID.
	HostID    string
	CreatedAt time.Time
}

// LogGap records that events of an instance's log stream are missing:
// between the file with Seq AfterSeq and the next file held, events from
// From to To (To zero: not known yet) are not in the store. A gap is never
// papered over: the recovery window ends at it, and restores into it are
// refused.
type LogGap struct {
	ID         int64
	InstanceID string
	// AfterSeq is the Seq of the last file held before the gap; 0 when no
	// file was held yet.
	AfterSeq int64
	// BeforeSeq is the Seq of the first file held after the gap; 0 while
	// none is.
	BeforeSeq  int64
	From       time.Time
	To         time.Time
	Reason     string // for people: "binlog mysql-bin.000007 purged on the server before it was received"
	DetectedAt time.Time
}

// LogFileFilter selects log files. StartTime/EndTime (when non-zero) keep
// the files whose [BeginTime, EndTime] overlaps them. Results are in Seq
// order, oldest first.
type LogFileFilter struct {
	InstanceID string
	StartTime  time.Time
	EndTime    time.Time
	// Statuses, when set, keeps those statuses only.
	Statuses []LogFileStatus
	Offset   int
	Limit    int
}

// LogService stores the log files, gaps and positions of point-in-time
// recovery. Both catalogs implement it; catalog/catalogtest checks them.
type LogService interface {
	// PutLogFile records f once its object is committed. A file with the
	// same instance and name replaces an Uploading row; replacing a
	// Completed row is ECONFLICT unless the new one is identical (a
	// retried upload).
	PutLogFile(ctx context.Context, f *LogFile) error
	// FindLogFiles returns one page of matching files and the number of
	// all matching files (deleting ones are never returned).
	FindLogFiles(ctx context.Context, filter LogFileFilter) ([]*LogFile, int, error)
	// MarkLogFilesDeleting marks the instance's files with Seq <= upToSeq
	// (history files included when their name's timeline is older: engines
	// leave them, see LogKindHistory) as deleting and returns them; they
	// disappear from FindLogFiles at once. Their objects are deleted next,
	// their rows last (DeleteLogFile), so a crash leaves rows that a
	// later sweep finishes (FindDeletingLogFiles).
	MarkLogFilesDeleting(ctx context.Context, instanceID string, upToSeq int64) ([]*LogFile, error)
	FindDeletingLogFiles(ctx context.Context) ([]*LogFile, error)
	DeleteLogFile(ctx context.Context, instanceID, name string) error

	// CreateLogGap stores g and assigns its id. UpdateLogGap closes an
	// open gap (BeforeSeq, To).
	CreateLogGap(ctx context.Context, g *LogGap) error
	UpdateLogGap(ctx context.Context, g *LogGap) error
	// FindLogGaps returns the instance's gaps, oldest first.
	FindLogGaps(ctx context.Context, instanceID string) ([]*LogGap, error)

	// PutSetLogPositions records where in the log each part of a backup
	// set starts (part name → position; one "instance" part for a
	// physical set). FindSetLogPositions returns them for every set of
	// the instance that has any: set id → part → position.
	PutSetLogPositions(ctx context.Context, setID int64, positions map[string]LogPosition) error
	FindSetLogPositions(ctx context.Context, instanceID string) (map[int64]map[string]LogPosition, error)

	// LogStreamServerID returns the instance's replication server id,
	// assigning one on first use that no other instance has (MariaDB's
	// --stop-never-slave-server-id). The ids are taken from the top of the
	// 32-bit range, far from the small ids real replicas use.
	LogStreamServerID(ctx context.Context, instanceID string) (uint32, error)
}

// SpooledLog is a log file in a streamer's spool directory.
type SpooledLog struct {
	// Path is the file in the spool; the sink reads it and deletes it
	// once stored. Nothing else writes it after it is reported.
	Path string
	// Name, Kind, Seq, times and positions as in LogFile. RawSize is the
	// size of the complete events in Path; for a partial file the bytes
	// after it (an event still being written) must not be stored.
	Name      string
	Kind      string
	Seq       int64
	BeginTime time.Time
	EndTime   time.Time
	Start     LogPosition
	End       LogPosition
	RawSize   int64
	HostID    string
}

// LogSink receives what a streamer produces. Its methods are called from
// the streamer's goroutine, one at a time.
type LogSink interface {
	// CompleteLog is called once for each file that is complete: every
	// event it will ever hold is in Path, fsync'd. The newest file being
	// written is never complete; a file becomes complete when the server
	// has moved past it (binlog rotation, a full WAL segment). An error
	// stops the stream (StreamLogs returns it) and the file is offered
	// again on the next run.
	CompleteLog(ctx context.Context, f SpooledLog) error
	// PartialLog offers the file being written, up to RawSize, so that
	// the store is never far behind; the sink decides how often to store
	// it (logs.uploadInterval) and may ignore the call.
	PartialLog(ctx context.Context, f SpooledLog) error
	// Gap reports events the streamer knows are lost (a file purged on
	// the server before it was received, a WAL slot lost): the sink
	// records it. Seq jumps between complete files are detected by the
	// sink itself.
	Gap(ctx context.Context, g LogGap) error
}

// StreamSpec says where and from where to stream.
type StreamSpec struct {
	// SpoolDir is the instance's own 0700 directory under dataDir. It
	// survives restarts; files in it that were not reported complete are
	// the streamer's to reuse or overwrite.
	SpoolDir string
	// Resume is the last file stored complete for the instance (nil:
	// none). The streamer continues with the file after it; when that is
	// no longer on the server it reports a Gap and starts at the oldest
	// file the server has.
	Resume *LogFile
	// ServerID is the replication server id to use (MariaDB/MySQL).
	ServerID uint32
	// Slot is the replication slot to use (PostgreSQL), created when
	// missing.
	Slot string
}

// LogStreamer streams one engine's logs. A StreamLogs call runs one
// connection: it returns when ctx is done (nil) or the stream breaks (the
// error); the caller (logs.Supervisor) restarts it from the last complete
// file with backoff, so StreamLogs itself never reconnects.
type LogStreamer interface {
	// CheckLogSource reports whether the server can stream its log: an
	// EINVALID *Error whose message names the missing setting or
	// privilege (log_bin, binlog_format=ROW, REPLICATION SLAVE;
	// wal_level, REPLICATION) when it cannot. ModifyBackupPolicy refuses
	// to enable log backup on such a server.
	CheckLogSource(ctx context.Context, inst *Instance) error
	// StreamLogs streams inst's log into spec.SpoolDir, calling sink for
	// each complete file, in Seq order.
	StreamLogs(ctx context.Context, inst *Instance, spec StreamSpec, sink LogSink) error
	// DropLogSource undoes what streaming left on the server (the
	// PostgreSQL replication slot) when log backup is turned off.
	DropLogSource(ctx context.Context, inst *Instance, spec StreamSpec) error
}

// PointInTimeRequest is one restore to a time.
type PointInTimeRequest struct {
	// Source is the instance the set and the logs come from; Target the
	// server to restore into (its DSN). For a restore into a data
	// directory (the CLI's --data-dir) Target is nil and DataDir is set.
	Source  *Instance
	Target  *Instance
	DataDir string
	// WorkDir is a private 0700 directory the engine may use for scratch
	// files (decompressed logs, a temporary server); the caller removes
	// it.
	WorkDir string
	// Set is the base set, with its Artifacts; Positions its parts' log
	// positions (FindSetLogPositions).
	Set       *BackupSet
	Positions map[string]LogPosition
	// OpenPart returns the decompressed bytes of one part of the set.
	OpenPart func(ctx context.Context, a Artifact) (io.ReadCloser, error)
	// Logs are the files to replay in Seq order: from the one holding the
	// earliest position of the set to the first one whose EndTime is at
	// or after Time (history files first). OpenLog returns a file's
	// decompressed bytes, checked against its checksum.
	Logs    []*LogFile
	OpenLog func(ctx context.Context, f *LogFile) (io.ReadCloser, error)
	// Time is the target: every transaction committed before it is
	// restored, none at or after it. Zero means "the end of Logs".
	Time time.Time
	// Databases maps the source databases to restore to their names on
	// the target; nil restores every database of the set under its own
	// name. Engines refuse a name that exists on the target before
	// writing anything (ECONFLICT).
	Databases map[string]string
}

// PointInTimeRestorer restores a base set rolled forward to a time.
type PointInTimeRestorer interface {
	// RestoreToTime restores req.Set into the target and replays req.Logs
	// up to req.Time with the engine's own tools. It succeeds only when
	// the target reached req.Time (PostgreSQL: "recovery stopping
	// before"); progress, when set, receives a percentage.
	RestoreToTime(ctx context.Context, req PointInTimeRequest, progress func(percent int)) error
}

// RecoveryWindow is a span of time a restore can reach: from the base
// time of the oldest usable set to the last event of the continuous logs
// after it.
type RecoveryWindow struct {
	Begin time.Time
	End   time.Time
}

// Contains reports whether t is inside the window (both ends included).
func (w RecoveryWindow) Contains(t time.Time) bool {
	return !t.Before(w.Begin) && !t.After(w.End)
}

// PointInTimeBase is the time from which a set can be rolled forward: its
// EndTime. Parts of a logical set are dumped one after another, each a
// snapshot at its own position; only from the set's end on does every part
// lie before the target.
func PointInTimeBase(set *BackupSet) time.Time { return set.EndTime }

// logRun is a stretch of adjacent log files with no gap inside.
type logRun struct {
	files []*LogFile
	seqs  map[string]int64 // name → seq
}

// logRuns splits the instance's log files (any order; history files
// ignored) into continuous runs, oldest first.
func logRuns(files []*LogFile, gaps []*LogGap) []logRun {
	var chain []*LogFile
	for _, f := range files {
		if f.Kind == LogKindLog {
			chain = append(chain, f)
		}
	}
	sort.Slice(chain, func(i, j int) bool { return chain[i].Seq < chain[j].Seq })
	broken := map[int64]bool{} // a gap right after this seq
	for _, g := range gaps {
		broken[g.AfterSeq] = true
	}
	var runs []logRun
	for i, f := range chain {
		if i == 0 || f.Seq != chain[i-1].Seq+1 || broken[chain[i-1].Seq] || chain[i-1].Status != LogCompleted {
			runs = append(runs, logRun{seqs: map[string]int64{}})
		}
		r := &runs[len(runs)-1]
		r.files = append(r.files, f)
		r.seqs[f.Name] = f.Seq
	}
	return runs
}

// usableIn reports whether every position of a set lies in run, and
// returns the lowest seq among them.
func (r logRun) usableIn(positions map[string]LogPosition) (int64, bool) {
	if len(positions) == 0 {
		return 0, false
	}
	low := int64(-1)
	for _, p := range positions {
		s, ok := r.seqs[p.File]
		if !ok {
			return 0, false
		}
		if low < 0 || s < low {
			low = s
		}
	}
	return low, true
}

func usableSet(s *BackupSet) bool {
	return s.Status == BackupSuccess && s.Available && s.Type == FullBackup
}

// RecoveryWindows computes the spans a restore to a time can reach from
// the instance's sets, their log positions (set id → part → position), its
// log files and gaps, oldest first. A window begins at the base time of
// the oldest usable set whose every position lies in a continuous run of
// files, and ends at the last event of that run; a gap or a missing file
// ends a run. An open gap after the newest file does not shorten the last
// window: it ends at the last event held.
func RecoveryWindows(sets []*BackupSet, positions map[int64]map[string]LogPosition, files []*LogFile, gaps []*LogGap) []RecoveryWindow {
	var out []RecoveryWindow
	for _, r := range logRuns(files, gaps) {
		end := r.files[len(r.files)-1].EndTime
		var begin time.Time
		for _, s := range sets {
			if !usableSet(s) {
				continue
			}
			if _, ok := r.usableIn(positions[s.ID]); !ok {
				continue
			}
			b := PointInTimeBase(s)
			if b.After(end) {
				continue
			}
			if begin.IsZero() || b.Before(begin) {
				begin = b
			}
		}
		if !begin.IsZero() {
			out = append(out, RecoveryWindow{Begin: begin, End: end})
		}
	}
	return out
}

// PointInTimePlan is what a restore to a time needs: the base set and the
// log files to replay.
type PointInTimePlan struct {
	Set       *BackupSet
	Positions map[string]LogPosition
	Logs      []*LogFile
}

// PlanPointInTime chooses, for a restore to t, the newest usable set whose
// base time is at or before t and the files from its earliest position up
// to the first file ending at or after t, all in one continuous run. It
// returns an EPITRNotCovered error naming the windows when t is outside
// every window (inside a gap, before the oldest set, after the last event).
func PlanPointInTime(t time.Time, sets []*BackupSet, positions map[int64]map[string]LogPosition, files []*LogFile, gaps []*LogGap) (*PointInTimePlan, error) {
	var history []*LogFile
	for _, f := range files {
		if f.Kind == LogKindHistory {
			history = append(history, f)
		}
	}
	for _, r := range logRuns(files, gaps) {
		if t.After(r.files[len(r.files)-1].EndTime) {
			continue
		}
		var best *BackupSet
		var low int64
		for _, s := range sets {
			if !usableSet(s) || PointInTimeBase(s).After(t) {
				continue
			}
			l, ok := r.usableIn(positions[s.ID])
			if !ok {
				continue
			}
			if best == nil || PointInTimeBase(s).After(PointInTimeBase(best)) ||
				(PointInTimeBase(s).Equal(PointInTimeBase(best)) && s.ID > best.ID) {
				best, low = s, l
			}
		}
		if best == nil {
			continue
		}
		plan := &PointInTimePlan{Set: best, Positions: positions[best.ID], Logs: append([]*LogFile(nil), history...)}
		for _, f := range r.files {
			if f.Seq < low {
				continue
			}
			plan.Logs = append(plan.Logs, f)
			if !f.EndTime.Before(t) {
				break
			}
		}
		return plan, nil
	}
	return nil, notCovered(t, RecoveryWindows(sets, positions, files, gaps))
}

func notCovered(t time.Time, ws []RecoveryWindow) error {
	if len(ws) == 0 {
		return Errorf(EPITRNotCovered, "No backup and logs cover %s: the instance has no recovery window (log backup off, no full backup since it was turned on, or no log held after one).", t.UTC().Format(time.RFC3339))
	}
	msg := ""
	for i, w := range ws {
		if i > 0 {
			msg += ", "
		}
		msg += w.Begin.UTC().Format(time.RFC3339) + " to " + w.End.UTC().Format(time.RFC3339)
	}
	return Errorf(EPITRNotCovered, "No backup and logs cover %s: the instance can be restored to a time from %s.", t.UTC().Format(time.RFC3339), msg)
}

package catalogtest

// Point-in-time recovery: log files, gaps, set positions, stream server
// ids, recovery jobs.

import (
	"reflect"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

func logRow(inst string, seq int64, begin time.Time) *rdsbackup.LogFile {
	name := "mysql-bin." + string(rune('0'+seq/100%10)) + string(rune('0'+seq/10%10)) + string(rune('0'+seq%10))
	return &rdsbackup.LogFile{
		InstanceID: inst, Name: name, Seq: seq, BeginTime: begin, EndTime: begin.Add(59 * time.Second),
		Start: rdsbackup.LogPosition{File: name, Offset: 4}, End: rdsbackup.LogPosition{File: name, Offset: 1000 + seq, GTID: "0-1-" + name},
		RawSize: 1000 + seq, Size: 300 + seq, Checksum: "1234567890123456789" + name[len(name)-1:], ObjectKey: "logs/" + inst + "/" + name + ".zst",
		Status: rdsbackup.LogCompleted, HostID: "1", CreatedAt: begin.Add(time.Minute),
	}
}

// testLogFiles: files round-trip, list in Seq order filtered by time span
// and status with paging, a partial row is replaced by the complete one,
// a complete one only by itself, and deletion hides files at once.
func testLogFiles(t *testing.T, c Catalog) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var all []*rdsbackup.LogFile
	for _, seq := range []int64{3, 1, 2, 4} {
		f := logRow("rm-log1", seq, t0.Add(time.Duration(seq)*time.Minute))
		ok(t, c.PutLogFile(ctx, f), "put %s", f.Name)
		all = append(all, f)
	}
	ok(t, c.PutLogFile(ctx, logRow("rm-log2", 1, t0)), "put other instance")
	hist := logRow("pgm-log", 0, t0)
	hist.Name, hist.Kind, hist.Start, hist.End = "00000002.history", rdsbackup.LogKindHistory, rdsbackup.LogPosition{}, rdsbackup.LogPosition{}
	ok(t, c.PutLogFile(ctx, hist), "put history")

	got, total, err := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log1"})
	ok(t, err, "find")
	if total != 4 || len(got) != 4 {
		t.Fatalf("files: %d of %d", len(got), total)
	}
	for i, f := range got {
		if f.Seq != int64(i+1) {
			t.Errorf("file %d: seq %d, want Seq order", i, f.Seq)
		}
	}
	if d := diff(got[0], all[1]); d != "" {
		t.Errorf("round trip: %s", d)
	}
	// [10:02:30, 10:03:10] overlaps files 2 (10:02:00-10:02:59) and 3.
	got, total, err = c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log1", StartTime: t0.Add(150 * time.Second), EndTime: t0.Add(190 * time.Second)})
	if err != nil || total != 2 || len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 3 {
		t.Errorf("span filter: %v of %d, %v", got, total, err)
	}
	got, total, err = c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log1", Offset: 1, Limit: 2})
	if err != nil || total != 4 || len(got) != 2 || got[0].Seq != 2 {
		t.Errorf("page: %v of %d, %v", got, total, err)
	}
	if got, total, err := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log1", Name: all[0].Name}); err != nil || total != 1 || len(got) != 1 || got[0].Seq != 3 {
		t.Errorf("by name: %v of %d, %v", got, total, err)
	}
	if got, _, err := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "pgm-log"}); err != nil || len(got) != 1 || got[0].Kind != rdsbackup.LogKindHistory {
		t.Errorf("history file: %v, %v", got, err)
	}

	// The file being written: Uploading, then replaced.
	part := logRow("rm-log1", 5, t0.Add(5*time.Minute))
	part.Status, part.ObjectKey = rdsbackup.LogUploading, "logs/rm-log1/mysql-bin.005.partial.zst"
	ok(t, c.PutLogFile(ctx, part), "put partial")
	part2 := *part
	part2.EndTime, part2.Size = part.EndTime.Add(time.Minute), part.Size+10
	ok(t, c.PutLogFile(ctx, &part2), "put a newer partial")
	done := logRow("rm-log1", 5, t0.Add(5*time.Minute))
	ok(t, c.PutLogFile(ctx, done), "complete it")
	if got, _, err := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log1", Statuses: []rdsbackup.LogFileStatus{rdsbackup.LogUploading}}); err != nil || len(got) != 0 {
		t.Errorf("uploading files after completion: %v, %v", got, err)
	}
	ok(t, c.PutLogFile(ctx, logRow("rm-log1", 5, t0.Add(5*time.Minute))), "the same complete file again")
	wantCode(t, c.PutLogFile(ctx, part), rdsbackup.ECONFLICT, "a partial over a complete file")
	other := logRow("rm-log1", 5, t0.Add(5*time.Minute))
	other.Checksum = "1"
	wantCode(t, c.PutLogFile(ctx, other), rdsbackup.ECONFLICT, "another complete file of the same name")
	wantCode(t, c.PutLogFile(ctx, &rdsbackup.LogFile{InstanceID: "rm-log1"}), rdsbackup.EINVALID, "a file without name")

	// Deletion: marked files are hidden and returned, then their rows go.
	marked, err := c.MarkLogFilesDeleting(ctx, "rm-log1", 2)
	ok(t, err, "mark")
	if len(marked) != 2 || marked[0].Seq != 1 || marked[1].Seq != 2 {
		t.Fatalf("marked: %v", marked)
	}
	if again, err := c.MarkLogFilesDeleting(ctx, "rm-log1", 2); err != nil || len(again) != 0 {
		t.Errorf("marked twice: %v, %v", again, err)
	}
	if _, total, _ := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log1"}); total != 3 {
		t.Errorf("files after marking: %d, want 3", total)
	}
	deleting, err := c.FindDeletingLogFiles(ctx)
	if err != nil || len(deleting) != 2 {
		t.Errorf("deleting: %v, %v", deleting, err)
	}
	wantCode(t, c.PutLogFile(ctx, logRow("rm-log1", 1, t0)), rdsbackup.ECONFLICT, "a file being deleted")
	for _, f := range marked {
		ok(t, c.DeleteLogFile(ctx, f.InstanceID, f.Name), "delete %s", f.Name)
	}
	wantCode(t, c.DeleteLogFile(ctx, "rm-log1", marked[0].Name), rdsbackup.ENOTFOUND, "delete twice")
	if deleting, _ := c.FindDeletingLogFiles(ctx); len(deleting) != 0 {
		t.Errorf("deleting after delete: %v", deleting)
	}
	if _, total, _ := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-log2"}); total != 1 {
		t.Errorf("other instance's files: %d", total)
	}
}

// testLogGapsAndPositions: gaps are stored and closed, positions round-trip
// per set and part, server ids are stable and distinct.
func testLogGapsAndPositions(t *testing.T, c Catalog) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	g := &rdsbackup.LogGap{InstanceID: "rm-gap", AfterSeq: 7, From: t0, Reason: "mysql-bin.000008 purged on the server"}
	ok(t, c.CreateLogGap(ctx, g), "create gap")
	if g.ID == 0 || g.DetectedAt.IsZero() {
		t.Errorf("gap not stamped: %+v", g)
	}
	g2 := &rdsbackup.LogGap{InstanceID: "rm-gap", AfterSeq: 9, From: t0.Add(time.Hour), To: t0.Add(2 * time.Hour), BeforeSeq: 12, Reason: "stream down", DetectedAt: t0}
	ok(t, c.CreateLogGap(ctx, g2), "create gap 2")
	g.BeforeSeq, g.To = 9, t0.Add(time.Minute)
	ok(t, c.UpdateLogGap(ctx, g), "close gap")
	wantCode(t, c.UpdateLogGap(ctx, &rdsbackup.LogGap{ID: 999999}), rdsbackup.ENOTFOUND, "update unknown gap")
	gaps, err := c.FindLogGaps(ctx, "rm-gap")
	ok(t, err, "find gaps")
	if len(gaps) != 2 || diff(gaps[0], g) != "" || diff(gaps[1], g2) != "" {
		t.Errorf("gaps: %+v %+v", gaps, err)
	}
	if gaps, _ := c.FindLogGaps(ctx, "rm-other"); len(gaps) != 0 {
		t.Errorf("gaps of another instance: %v", gaps)
	}

	s1, s2 := newSet("rm-gap", t0), newSet("rm-gap", t0.Add(time.Hour))
	createSets(t, c, s1, s2)
	p1 := map[string]rdsbackup.LogPosition{"shop": {File: "mysql-bin.000003", Offset: 1234, GTID: "0-1-17"}, "crm": {File: "mysql-bin.000003", Offset: 2000}}
	ok(t, c.PutSetLogPositions(ctx, s1.ID, p1), "positions")
	p2 := map[string]rdsbackup.LogPosition{"instance": {File: "000000010000000000000004", LSN: "0/4000028", Timeline: 1}}
	ok(t, c.PutSetLogPositions(ctx, s2.ID, p2), "positions 2")
	wantCode(t, c.PutSetLogPositions(ctx, 987654321, p1), rdsbackup.ENOTFOUND, "positions of an unknown set")
	pos, err := c.FindSetLogPositions(ctx, "rm-gap")
	ok(t, err, "find positions")
	if len(pos) != 2 || !reflect.DeepEqual(pos[s1.ID], p1) || !reflect.DeepEqual(pos[s2.ID], p2) {
		t.Errorf("positions: %+v", pos)
	}
	// The set's update keeps them.
	s1.MetaStatus = "OK"
	ok(t, c.UpdateBackupSet(ctx, s1), "update set")
	if pos, _ := c.FindSetLogPositions(ctx, "rm-gap"); !reflect.DeepEqual(pos[s1.ID], p1) {
		t.Errorf("positions after the set's update: %+v", pos[s1.ID])
	}

	a, err := c.LogStreamServerID(ctx, "rm-a")
	ok(t, err, "server id")
	b, err := c.LogStreamServerID(ctx, "rm-b")
	ok(t, err, "server id")
	again, err := c.LogStreamServerID(ctx, "rm-a")
	ok(t, err, "server id")
	if a == b || a != again || a < 1<<31 || b < 1<<31 {
		t.Errorf("server ids: %d %d %d", a, b, again)
	}
}

// testRecoveries: recovery jobs round-trip, one unfinished per target.
func testRecoveries(t *testing.T, c Catalog) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	j := &rdsbackup.RecoveryJob{SourceID: "rm-src", TargetID: "rm-dst", RestoreTime: t0, Databases: map[string]string{"shop": "shop_restored", `we"ird`: "x"}, Status: rdsbackup.JobPreparing}
	ok(t, c.CreateRecovery(ctx, j), "create")
	if j.ID == 0 || j.CreatedAt.IsZero() {
		t.Errorf("not stamped: %+v", j)
	}
	wantCode(t, c.CreateRecovery(ctx, &rdsbackup.RecoveryJob{SourceID: "rm-x", TargetID: "rm-dst", BackupID: 3, Status: rdsbackup.JobPreparing}), rdsbackup.ECONFLICT, "second recovery of a target")
	other := &rdsbackup.RecoveryJob{SourceID: "rm-dst", TargetID: "rm-src", BackupID: 3, Status: rdsbackup.JobPreparing}
	ok(t, c.CreateRecovery(ctx, other), "recovery of another target")
	j.Status, j.Progress, j.Error, j.BackupID = rdsbackup.JobFailed, 40, "no space", 17
	ok(t, c.UpdateRecovery(ctx, j), "update")
	wantCode(t, c.UpdateRecovery(ctx, &rdsbackup.RecoveryJob{ID: 999999, Status: rdsbackup.JobFailed}), rdsbackup.ENOTFOUND, "update unknown")
	ok(t, c.CreateRecovery(ctx, &rdsbackup.RecoveryJob{SourceID: "rm-src", TargetID: "rm-dst", BackupID: 4, Status: rdsbackup.JobPreparing}), "after the first failed")

	got, err := c.FindRecoveries(ctx, rdsbackup.RecoveryFilter{ID: &j.ID})
	if err != nil || len(got) != 1 || diff(got[0], j, "UpdatedAt") != "" {
		t.Errorf("find by id: %+v, %v", got, err)
	}
	got, err = c.FindRecoveries(ctx, rdsbackup.RecoveryFilter{InstanceID: "rm-src"})
	if err != nil || len(got) != 3 || got[0].ID < got[1].ID {
		t.Errorf("by instance (source or target), newest first: %d, %v", len(got), err)
	}
	got, err = c.FindRecoveries(ctx, rdsbackup.RecoveryFilter{TargetID: "rm-dst", Statuses: []rdsbackup.JobStatus{rdsbackup.JobPreparing}, Limit: 5})
	if err != nil || len(got) != 1 || got[0].BackupID != 4 {
		t.Errorf("unfinished of target: %+v, %v", got, err)
	}
}

// fillPITR writes a row of every PITR table.
func fillPITR(t testing.TB, c Catalog, f *Filled) {
	ctx := t.Context()
	check := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("fill: %s: %v", what, err)
		}
	}
	t0 := time.Date(2025, 2, 3, 10, 0, 0, 0, time.UTC)
	f.Logs = []*rdsbackup.LogFile{logRow("rm-fill1", 1, t0), logRow("rm-fill1", 2, t0.Add(time.Minute))}
	f.Logs[1].Status = rdsbackup.LogUploading
	for _, l := range f.Logs {
		check(c.PutLogFile(ctx, l), "log file")
	}
	f.Gap = &rdsbackup.LogGap{InstanceID: "rm-fill1", AfterSeq: 1, BeforeSeq: 2, From: t0, To: t0.Add(time.Minute), Reason: "purged", DetectedAt: t0}
	check(c.CreateLogGap(ctx, f.Gap), "gap")
	f.Positions = map[string]rdsbackup.LogPosition{"shop": {File: "mysql-bin.001", Offset: 77, GTID: "0-1-5"}}
	check(c.PutSetLogPositions(ctx, f.Sets[1].ID, f.Positions), "positions")
	var err error
	f.ServerID, err = c.LogStreamServerID(ctx, "rm-fill1")
	check(err, "server id")
	f.Recovery = &rdsbackup.RecoveryJob{SourceID: "rm-fill1", TargetID: "pgm-fill2", BackupID: f.Sets[1].ID, RestoreTime: t0, Databases: map[string]string{"shop": "shop2"}, Status: rdsbackup.JobPreparing, Progress: 5}
	check(c.CreateRecovery(ctx, f.Recovery), "recovery")
}

func (f *Filled) checkPITR(t testing.TB, c Catalog) {
	ctx := t.Context()
	logs, _, err := c.FindLogFiles(ctx, rdsbackup.LogFileFilter{InstanceID: "rm-fill1"})
	if err != nil || len(logs) != len(f.Logs) {
		t.Errorf("log files: %v, %v", logs, err)
	}
	for i := range logs {
		if d := diff(logs[i], f.Logs[i]); d != "" {
			t.Errorf("log file %d: %s", i, d)
		}
	}
	// Check may run more than once on a catalog: it adds a gap and a
	// recovery below, so only the first of each is Fill's.
	if gaps, err := c.FindLogGaps(ctx, "rm-fill1"); err != nil || len(gaps) == 0 || diff(gaps[0], f.Gap) != "" {
		t.Errorf("gaps: %v, %v", gaps, err)
	}
	if pos, err := c.FindSetLogPositions(ctx, "rm-fill1"); err != nil || !reflect.DeepEqual(pos[f.Sets[1].ID], f.Positions) {
		t.Errorf("positions: %v, %v", pos, err)
	}
	if id, err := c.LogStreamServerID(ctx, "rm-fill1"); err != nil || id != f.ServerID {
		t.Errorf("server id: %d, %v, want %d", id, err, f.ServerID)
	}
	if id, err := c.LogStreamServerID(ctx, "rm-fill-new"); err != nil || id == f.ServerID {
		t.Errorf("a new server id: %d, %v, want another than %d", id, err, f.ServerID)
	}
	rs, err := c.FindRecoveries(ctx, rdsbackup.RecoveryFilter{ID: &f.Recovery.ID})
	if err != nil || len(rs) != 1 || diff(rs[0], f.Recovery) != "" {
		t.Errorf("recoveries: %v, %v", rs, err)
	}
	// Ids go on above the copied ones.
	g := &rdsbackup.LogGap{InstanceID: "rm-fill1", AfterSeq: 9, Reason: "x"}
	if err := c.CreateLogGap(ctx, g); err != nil || g.ID <= f.Gap.ID {
		t.Errorf("a new gap: id %d, %v, want above %d", g.ID, err, f.Gap.ID)
	}
	r := &rdsbackup.RecoveryJob{SourceID: "a", TargetID: "b", Status: rdsbackup.JobFinished}
	if err := c.CreateRecovery(ctx, r); err != nil || r.ID <= f.Recovery.ID {
		t.Errorf("a new recovery: id %d, %v, want above %d", r.ID, err, f.Recovery.ID)
	}
}

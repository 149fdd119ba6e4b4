package rdsbackup

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func logFile(seq int64, begin, end int) *LogFile {
	return &LogFile{InstanceID: "i", Name: binlogName(seq), Seq: seq, BeginTime: at(begin), EndTime: at(end), Status: LogCompleted}
}

func binlogName(seq int64) string { return "bin." + strings.Repeat("0", 5) + string(rune('0'+seq)) }

func fullSet(id int64, end int) *BackupSet {
	return &BackupSet{ID: id, InstanceID: "i", Status: BackupSuccess, Available: true, Type: FullBackup, StartTime: at(end - 1), EndTime: at(end)}
}

func TestRecoveryWindows(t *testing.T) {
	files := []*LogFile{logFile(3, 30, 39), logFile(1, 0, 9), logFile(2, 10, 29), logFile(5, 50, 59), logFile(6, 60, 69)}
	sets := []*BackupSet{fullSet(10, 5), fullSet(11, 52), fullSet(12, 65)}
	sets[2].Status = BackupFailed
	pos := map[int64]map[string]LogPosition{
		10: {"a": {File: binlogName(1), Offset: 100}, "b": {File: binlogName(2), Offset: 4}},
		11: {"instance": {File: binlogName(5), Offset: 400}},
		12: {"instance": {File: binlogName(6), Offset: 400}},
	}
	// Seq 4 is missing: two windows.
	ws := RecoveryWindows(sets, pos, files, nil)
	if len(ws) != 2 || !ws[0].Begin.Equal(at(5)) || !ws[0].End.Equal(at(39)) || !ws[1].Begin.Equal(at(52)) || !ws[1].End.Equal(at(69)) {
		t.Fatalf("windows %+v", ws)
	}
	// A recorded gap after 2 cuts the first window at 29.
	ws = RecoveryWindows(sets, pos, files, []*LogGap{{AfterSeq: 2}})
	if len(ws) != 2 || !ws[0].End.Equal(at(29)) {
		t.Fatalf("windows with gap %+v", ws)
	}

	plan, err := PlanPointInTime(at(31), sets, pos, files, nil)
	if err != nil || plan.Set.ID != 10 || len(plan.Logs) != 3 || plan.Logs[0].Seq != 1 || plan.Logs[2].Seq != 3 {
		t.Fatalf("plan 31: %+v %v", plan, err)
	}
	plan, err = PlanPointInTime(at(55), sets, pos, files, nil)
	if err != nil || plan.Set.ID != 11 || len(plan.Logs) != 1 || plan.Logs[0].Seq != 5 {
		t.Fatalf("plan 55: %+v %v", plan, err)
	}
	for _, bad := range []int{3, 45, 70} {
		_, err := PlanPointInTime(at(bad), sets, pos, files, nil)
		if ErrorCode(err) != EPITRNotCovered || !strings.Contains(ErrorMessage(err), "10:05:00Z to 2026-12-01T10:39:00Z") {
			t.Errorf("plan %d: %v", bad, err)
		}
	}
	if _, err := PlanPointInTime(at(31), sets, pos, files, []*LogGap{{AfterSeq: 2}}); ErrorCode(err) != EPITRNotCovered {
		t.Errorf("plan into a gap: %v", err)
	}
	// A set whose position is outside the held files is not usable.
	if ws := RecoveryWindows(sets[:1], map[int64]map[string]LogPosition{10: {"a": {File: "other.000001"}}}, files, nil); len(ws) != 0 {
		t.Errorf("windows without a usable set: %+v", ws)
	}
	// The file being written extends the window; a partial file in the middle breaks it.
	part := logFile(7, 70, 75)
	part.Status = LogUploading
	if ws := RecoveryWindows(sets, pos, append(files, part), nil); !ws[1].End.Equal(at(75)) {
		t.Errorf("partial newest file: %+v", ws)
	}
}

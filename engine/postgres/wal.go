package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// WALFile is one complete file of an instance's WAL stream: a segment
// (24 hexadecimal digits: timeline, log, segment) or a timeline history
// file (8 digits + ".history").
type WALFile struct {
	Name     string // e.g. 000000010000000000000042, 00000002.history
	Path     string // where it is in the spool, while the callback runs
	History  bool   // a timeline history file, not a segment
	Timeline uint32
	// Seq is the segment number (the LSN divided by the segment size,
	// timeline left out); 0 for a history file.
	Seq int64
	// StartLSN and EndLSN bound the WAL the segment holds, [StartLSN,
	// EndLSN); zero for a history file.
	StartLSN, EndLSN LSN
	Size             int64
	CRC64            uint64 // CRC-64/XZ (crc64.ECMA, as OSS), of the file's bytes
	// BeginTime and EndTime are the earliest and latest commit (or abort)
	// timestamps of transactions in the segment, as pg_waldump reads them:
	// the times recovery_target_time is compared with. A segment without
	// any (HasCommits false) gets, for both, the last commit time of the
	// stream before it (or, for the first, when the stream began): no
	// later segment can hold a commit older than that, whereas the time it
	// was received can be after commits that follow it.
	BeginTime, EndTime time.Time
	HasCommits         bool
	// ReceivedAt is when the streamer saw the file complete.
	ReceivedAt time.Time
	// HostID is the server's system identifier.
	HostID string
	// Partial marks a copy of the segment being written: Size bytes of
	// it, up to EndLSN.
	Partial bool
}

// LSN is a PostgreSQL WAL position.
type LSN uint64

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// ParseLSN reads "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return LSN(h<<32 | l), nil
}

// walName is a parsed WAL file name.
type walName struct {
	tli     uint32
	segno   uint64 // meaningful for segments only
	history bool
}

var (
	segmentNameRE = regexp.MustCompile(`^[0-9A-F]{24}$`)
	historyNameRE = regexp.MustCompile(`^[0-9A-F]{8}\.history$`)
)

// parseWALName parses a segment or history file name for segments of
// segSize bytes.
func parseWALName(name string, segSize int64) (walName, bool) {
	switch {
	case historyNameRE.MatchString(name):
		tli, _ := strconv.ParseUint(name[:8], 16, 32)
		return walName{tli: uint32(tli), history: true}, true
	case segmentNameRE.MatchString(name):
		tli, _ := strconv.ParseUint(name[:8], 16, 32)
		log, _ := strconv.ParseUint(name[8:16], 16, 32)
		seg, _ := strconv.ParseUint(name[16:], 16, 32)
		perLog := uint64(0x100000000) / uint64(segSize)
		if seg >= perLog {
			return walName{}, false
		}
		return walName{tli: uint32(tli), segno: log*perLog + seg}, true
	}
	return walName{}, false
}

// segmentName is the file name of segment segno on timeline tli.
func segmentName(tli uint32, segno uint64, segSize int64) string {
	perLog := uint64(0x100000000) / uint64(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perLog, segno%perLog)
}

// SegmentOf returns the name of the segment holding lsn.
func SegmentOf(tli uint32, lsn LSN, segSize int64) string {
	return segmentName(tli, uint64(lsn)/uint64(segSize), segSize)
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// fileSizeCRC reads a file's size and CRC64.
func fileSizeCRC(path string) (int64, uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	h := crc64.New(crcTable)
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, 0, err
	}
	return n, h.Sum64(), nil
}

// commitRE matches the transaction records pg_waldump prints, e.g.
// "desc: COMMIT 2026-12-03 08:10:00.123456 UTC; inval msgs: …" and
// "desc: COMMIT_PREPARED 5: 2026-12-03 …".
var commitRE = regexp.MustCompile(`desc: (?:COMMIT|ABORT|COMMIT_PREPARED|ABORT_PREPARED)(?: \d+:)? (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC`)

// waldumpEndRE matches how pg_waldump ends on a segment given alone: the
// zeroes after a switch or at the end of the WAL, or a record continued in
// the next segment, which is not in the directory (or only as .partial).
var waldumpEndRE = regexp.MustCompile(`invalid record length|could not find file|could not read file|could not read from file|could not open file|contrecord|invalid magic number|unexpected pageaddr|invalid resource manager ID|record with incorrect prev-link|out of memory while trying to decode a record|error in WAL record`)

// commitSpan runs pg_waldump, bounded to the one segment, (of the server's own major version: WAL
// formats differ between versions) on one segment in dir and returns the
// earliest and latest commit/abort timestamps in it. ok is false when the
// segment holds none.
func (e *Engine) commitSpan(ctx context.Context, waldump, dir, name string, until LSN) (begin, end time.Time, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	s := &session{env: append(childEnv(nil, nil), "TZ=UTC")}
	args := []string{"--path=" + dir, "--rmgr=Transaction"}
	if until != 0 {
		args = append(args, "--end="+until.String())
	}
	c, err := e.start(ctx, s, waldump, "of "+name, append(args, name, name), startOptions{stdout: true})
	if err != nil {
		return begin, end, false, err
	}
	sc := bufio.NewScanner(c.stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		m := commitRE.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		t, perr := time.ParseInLocation("2006-01-02 15:04:05.999999", string(m[1]), time.UTC)
		if perr != nil {
			continue
		}
		if !ok || t.Before(begin) {
			begin = t
		}
		if !ok || t.After(end) {
			end = t
		}
		ok = true
	}
	scanErr := sc.Err()
	if scanErr != nil {
		c.kill()
	}
	werr := c.wait()
	if scanErr != nil {
		return begin, end, ok, fmt.Errorf("read pg_waldump output: %w", scanErr)
	}
	if werr != nil {
		var te *ToolError
		if !errors.As(werr, &te) || !waldumpEndRE.MatchString(te.Stderr) {
			return begin, end, ok, werr
		}
	}
	return begin, end, ok, nil
}

// describeWALFile fills in a WALFile for the complete file dir/name.
// A segment without transactions, and a history file, get quiet as their
// time span.
func (e *Engine) describeWALFile(ctx context.Context, waldump, dir, name string, segSize int64, now, quiet time.Time) (WALFile, error) {
	wn, ok := parseWALName(name, segSize)
	if !ok {
		return WALFile{}, fmt.Errorf("%s is not a WAL file name", name)
	}
	f := WALFile{Name: name, Path: filepath.Join(dir, name), History: wn.history, Timeline: wn.tli, ReceivedAt: now}
	if !wn.history {
		f.Seq = int64(wn.segno)
	}
	var err error
	if f.Size, f.CRC64, err = fileSizeCRC(f.Path); err != nil {
		return f, err
	}
	if wn.history {
		f.BeginTime, f.EndTime = quiet, quiet
		return f, nil
	}
	f.StartLSN = LSN(wn.segno * uint64(segSize))
	f.EndLSN = f.StartLSN + LSN(segSize)
	begin, end, ok, err := e.commitSpan(ctx, waldump, dir, name, 0)
	if err != nil {
		return f, err
	}
	if ok {
		f.BeginTime, f.EndTime, f.HasCommits = begin, end, true
	} else {
		f.BeginTime, f.EndTime = quiet, quiet
	}
	return f, nil
}

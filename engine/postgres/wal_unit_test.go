package postgres

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWALNames(t *testing.T) {
	for _, size := range []int64{16 << 20, 1 << 30, 1 << 20} {
		for _, segno := range []uint64{0, 1, 255, 256, 4095, 1 << 20} {
			name := segmentName(3, segno, size)
			wn, ok := parseWALName(name, size)
			if !ok || wn.tli != 3 || wn.segno != segno || wn.history {
				t.Errorf("size %d segno %d: %s parsed as %+v %v", size, segno, name, wn, ok)
			}
		}
	}
	if got := SegmentOf(1, LSN(0x1_0300_0028), 16<<20); got != "000000010000000100000003" {
		t.Errorf("SegmentOf = %s", got)
	}
	for _, bad := range []string{"000000010000000000000100", "00000001000000000000000g", "0000000100000000000000", "x.history", "000000010000000000000001.partial"} {
		if _, ok := parseWALName(bad, 16<<20); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	if wn, ok := parseWALName("0000000A.history", 16<<20); !ok || !wn.history || wn.tli != 10 {
		t.Errorf("history: %+v %v", wn, ok)
	}
	if l, err := ParseLSN("16/B374D848"); err != nil || l.String() != "16/B374D848" {
		t.Errorf("ParseLSN: %v %v", l, err)
	}
	if _, err := ParseLSN("16B374D848"); err == nil {
		t.Error("ParseLSN without a slash succeeded")
	}
}

func TestRecoveryLogParsing(t *testing.T) {
	for line, want := range map[string]time.Time{
		`LOG:  last completed transaction was at log time 2026-12-03 08:10:00.5+00`:                        time.Date(2026, 12, 3, 8, 10, 0, 5e8, time.UTC),
		`LOG:  last completed transaction was at log time 2026-12-03 03:10:00.123456-05`:                   time.Date(2026, 12, 3, 8, 10, 0, 123456e3, time.UTC),
		`LOG:  last completed transaction was at log time 2026-12-03 13:40:00+05:30`:                       time.Date(2026, 12, 3, 8, 10, 0, 0, time.UTC),
		"LOG:  redo done\nLOG:  last completed transaction was at log time 2026-12-03 08:10:00+00\nLOG: x": time.Date(2026, 12, 3, 8, 10, 0, 0, time.UTC),
		`LOG:  nothing`: {},
	} {
		if got := lastTransaction(line); !got.Equal(want) {
			t.Errorf("%q: %v, want %v", line, got, want)
		}
	}
	out := "LOG:  restored log file \"000000010000000000000002\" from archive\nLOG:  restored log file \"000000010000000000000003\" from archive\n"
	if got := lastRestored(out); got != "000000010000000000000003" {
		t.Errorf("lastRestored = %q", got)
	}
	var w walPoints
	w.Write([]byte("pg_basebackup: initiating base backup\npg_basebackup: write-ahead log start poi"))
	w.Write([]byte("nt: 0/2000028 on timeline 1\n"))
	pos, ok := w.position(16 << 20)
	if !ok || pos.File != "000000010000000000000002" || pos.Offset != 0x28 || pos.LSN != "0/2000028" || pos.Timeline != 1 {
		t.Errorf("start point %+v %v", pos, ok)
	}
	for v, want := range map[[2]string]int64{{"16777216", "B"}: 16 << 20, {"2048", "8kB"}: 16 << 20, {"16", "MB"}: 16 << 20} {
		if got, err := settingBytes(v[0], v[1]); err != nil || got != want {
			t.Errorf("settingBytes(%v) = %d, %v", v, got, err)
		}
	}
	if _, err := settingBytes("16", "GB"); err == nil {
		t.Error("unknown unit accepted")
	}
}

func TestPadSegment(t *testing.T) {
	dir := t.TempDir()
	page := make([]byte, 8192)
	binary.LittleEndian.PutUint16(page[0:2], 0xD110)
	binary.LittleEndian.PutUint16(page[2:4], 0x0002) // long header
	binary.LittleEndian.PutUint32(page[32:36], 16<<20)
	p := filepath.Join(dir, "seg")
	os.WriteFile(p, page[:400], 0o600)
	if err := padSegment(p); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Size() != 16<<20 {
		t.Errorf("padded to %d", fi.Size())
	}
	if err := padSegment(p); err != nil {
		t.Errorf("a full segment: %v", err)
	}
	binary.LittleEndian.PutUint32(page[32:36], 12345)
	os.WriteFile(p, page[:400], 0o600)
	if err := padSegment(p); err == nil {
		t.Error("an invalid segment size was accepted")
	}
	binary.LittleEndian.PutUint16(page[2:4], 0)
	os.WriteFile(p, page[:400], 0o600)
	if err := padSegment(p); err == nil {
		t.Error("a page without a long header was accepted")
	}
	os.WriteFile(p, page[:10], 0o600)
	if err := padSegment(p); err == nil {
		t.Error("a 10-byte file was accepted")
	}
}

package mysql

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// binlogEvent is a binary log event of the given type, timestamp and total
// size (header included).
func binlogEvent(typ byte, ts uint32, size int) []byte {
	e := make([]byte, size)
	binary.LittleEndian.PutUint32(e[0:4], ts)
	e[4] = typ
	binary.LittleEndian.PutUint32(e[9:13], uint32(size))
	for i := binlogHeaderSize; i < size; i++ {
		e[i] = byte(i)
	}
	return e
}

// TestScanBinlogFrom: following a growing file from the previous scan gives
// what a scan of the whole file gives, at every length (events cut in their
// header or their body included), without reading again what it had read;
// a file shorter than the previous scan is read from its start.
func TestScanBinlogFrom(t *testing.T) {
	var file []byte
	file = append(file, binlogMagic...)
	base := uint32(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC).Unix())
	for i := range 40 {
		typ := byte(30) // a row event
		if i == 39 {
			typ = eventRotate
		}
		file = append(file, binlogEvent(typ, base+uint32(i/3), 19+(i*37)%300)...)
	}
	path := filepath.Join(t.TempDir(), "mariadb-bin.000001")
	var prev binlogInfo
	for n := 0; n <= len(file); n += 7 {
		if err := os.WriteFile(path, file[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := scanBinlogFrom(path, prev)
		if err != nil {
			t.Fatalf("length %d: %v", n, err)
		}
		want, err := scanBinlog(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("length %d: incremental %+v, whole file %+v", n, got, want)
		}
		prev = got
	}
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	full, err := scanBinlogFrom(path, prev)
	if err != nil || full.Events != 40 || !full.closed() || full.Size != int64(len(file)) {
		t.Fatalf("whole file: %+v, %v", full, err)
	}

	// What was scanned is not read again: a damaged first event goes
	// unnoticed by the incremental scan, and a whole-file scan reports it.
	damaged := append([]byte(nil), file...)
	binary.LittleEndian.PutUint32(damaged[len(binlogMagic)+9:], 3)
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := scanBinlogFrom(path, full); err != nil || got != full {
		t.Errorf("incremental scan of an unchanged length: %+v, %v", got, err)
	}
	if _, err := scanBinlog(path); err == nil {
		t.Error("whole-file scan of a damaged file: no error")
	}

	// A shorter file (a new one under the same name) is scanned anew.
	short := file[:len(binlogMagic)+19+56] // the first two events
	if err := os.WriteFile(path, short, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := scanBinlogFrom(path, full)
	if err != nil || got.Events != 2 || got.Size != int64(len(short)) {
		t.Errorf("shorter file: %+v, %v", got, err)
	}
}

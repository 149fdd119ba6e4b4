package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

var testCRCTable = crc64.MakeTable(crc64.ECMA)

// buildSet makes a logical MariaDB set object as docs/backup-format.md
// describes it: a zstd frame per dump, then the manifest trailer.
func buildSet(t *testing.T, dumps map[string]string, order ...string) ([]byte, *backup.Manifest) {
	t.Helper()
	m := &backup.Manifest{Version: backup.ManifestVersion, ID: 1, InstanceID: "rm-test", Engine: "MariaDB",
		Method: "Logical", Type: "FullBackup", Compression: "zstd", Databases: order}
	var obj []byte
	for _, name := range order {
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		frame := enc.EncodeAll([]byte(dumps[name]), nil)
		m.Parts = append(m.Parts, backup.ManifestPart{Name: name, Kind: "database", Offset: int64(len(obj)),
			Length: int64(len(frame)), Checksum: backup.FormatChecksum(crc64.Checksum(frame, testCRCTable))})
		obj = append(obj, frame...)
	}
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	obj = binary.LittleEndian.AppendUint32(obj, 0x184D2A50)
	obj = binary.LittleEndian.AppendUint32(obj, uint32(len(js)+8))
	obj = append(obj, js...)
	obj = binary.LittleEndian.AppendUint32(obj, uint32(len(js)))
	obj = append(obj, "RDSM"...)
	return obj, m
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

func testDumps() map[string]string {
	return map[string]string{
		"shop":  strings.Repeat("INSERT INTO t VALUES (1, 'shop');\n", 5000),
		"crm":   strings.Repeat("INSERT INTO c VALUES (2, 'crm');\n", 3000),
		"empty": "",
	}
}

func TestVerifyPartsWithoutSecondPass(t *testing.T) {
	obj, m := buildSet(t, testDumps(), "crm", "empty", "shop")
	r := &countingReaderAt{r: bytes.NewReader(obj)}
	if err := verifyParts(r, int64(len(obj)), crc64.Checksum(obj, testCRCTable), m.Parts); err != nil {
		t.Fatal(err)
	}
	last := m.Parts[len(m.Parts)-1]
	if trailer := int64(len(obj)) - last.Offset - last.Length; r.n.Load() != trailer {
		t.Errorf("read %d bytes to verify the parts; want only the %d of the trailer", r.n.Load(), trailer)
	}
}

func TestVerifyPartsNamesTheCorruptPart(t *testing.T) {
	obj, m := buildSet(t, testDumps(), "crm", "empty", "shop")
	shop := m.Parts[2]
	obj[shop.Offset+shop.Length/2] ^= 0x20
	// The whole file's CRC64 is that of the corrupt bytes, as the
	// download computes it.
	err := verifyParts(bytes.NewReader(obj), int64(len(obj)), crc64.Checksum(obj, testCRCTable), m.Parts)
	if err == nil || !strings.Contains(err.Error(), "part shop is corrupt") || !strings.Contains(err.Error(), "nothing was restored") {
		t.Errorf("corrupt part: %v", err)
	}
}

func TestVerifyPartsNotTiled(t *testing.T) {
	// Parts that do not tile the file (here: listed out of order) are
	// checked one by one.
	obj, m := buildSet(t, testDumps(), "crm", "shop")
	parts := []backup.ManifestPart{m.Parts[1], m.Parts[0]}
	r := &countingReaderAt{r: bytes.NewReader(obj)}
	if err := verifyParts(r, int64(len(obj)), crc64.Checksum(obj, testCRCTable), parts); err != nil {
		t.Fatal(err)
	}
	if r.n.Load() < m.Parts[0].Length+m.Parts[1].Length {
		t.Errorf("read %d bytes: the parts were not read again", r.n.Load())
	}
	parts[0].Checksum = "123"
	if err := verifyParts(bytes.NewReader(obj), int64(len(obj)), crc64.Checksum(obj, testCRCTable), parts); err == nil || !strings.Contains(err.Error(), "part shop is corrupt") {
		t.Errorf("wrong checksum of an untiled part: %v", err)
	}
}

// TestRestoreFileCorruptPartRefused: a set file with a corrupt part and no
// --checksum is refused before the target is contacted.
func TestRestoreFileCorruptPartRefused(t *testing.T) {
	obj, m := buildSet(t, testDumps(), "crm", "shop")
	crm := m.Parts[0]
	obj[crm.Offset+crm.Length-5] ^= 1
	file := filepath.Join(t.TempDir(), "set.zst")
	if err := os.WriteFile(file, obj, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	// Nothing listens there: reaching the target would fail otherwise.
	env := map[string]string{envTargetDSN: "root:x@tcp(127.0.0.1:1)/"}
	mm := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	code := mm.Run(ctx, []string{"restore", "--work-dir", t.TempDir(), "--file", file})
	out := stderr.String()
	if code != exitFailed || !strings.Contains(out, "part crm is corrupt") || !strings.Contains(out, "nothing was restored") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "restoring database") {
		t.Errorf("the restore started:\n%s", out)
	}
}

// fifoSource serves a named pipe: the first reader that opens it gets
// first, any later one gets second. It reports how many times it was
// opened, which is how many times the restore read the "file".
type fifoSource struct {
	path  string
	opens atomic.Int32
	done  chan struct{}
}

func newFIFOSource(t *testing.T, first, second []byte) *fifoSource {
	t.Helper()
	f := &fifoSource{path: filepath.Join(t.TempDir(), "set.zst"), done: make(chan struct{})}
	if err := syscall.Mkfifo(f.path, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(f.done)
		for {
			// Non-blocking: it succeeds only while a reader has the pipe
			// open (or waits in open), so the loop can stop.
			w, err := os.OpenFile(f.path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err == nil {
				data := second
				if f.opens.Add(1) == 1 {
					data = first
				}
				w.Write(data)
				w.Close()
				// The reader sees EOF and closes the pipe at once; until it
				// has, an open would find it again, not a new reader.
				select {
				case <-stop:
					return
				case <-time.After(500 * time.Millisecond):
				}
				continue
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-f.done })
	return f
}

// TestRestoreFileReadOnce: `restore --file` reads its file once. The file
// here is a named pipe that gives a valid set the first time it is read
// and another (valid, different) one on any later read: the restore must
// restore exactly the bytes it verified — the first set — and never open the
// file again.
func TestRestoreFileReadOnce(t *testing.T) {
	t.Parallel()
	good, _ := buildSet(t, map[string]string{"crm": "CREATE TABLE t (v INT);\nINSERT INTO t VALUES (1);\n"}, "crm")
	swapped, _ := buildSet(t, map[string]string{"crm": "CREATE TABLE t (v INT);\nINSERT INTO t VALUES (666);\n", "x": "SELECT 1;\n"}, "crm", "x")
	src := newFIFOSource(t, good, swapped)

	srv := enginetest.SharedMariaDB(t)
	target := srv.NewDatabase(t)
	code, out := runRestore(t, srv.DSN(""), "--file", src.path, "--checksum", crcOf(good), "--database", "crm", "--as", target)
	if code != exitOK {
		t.Fatalf("restore: exit %d:\n%s", code, out)
	}
	if n := src.opens.Load(); n != 1 {
		t.Errorf("the restore opened the file %d times", n)
	}
	got := queryColumn(t, srv.DB(t, target), "SELECT v FROM t ORDER BY v")
	if !slices.Equal(got, []string{"1"}) {
		t.Errorf("restored rows %v, want the verified set's [1]", got)
	}
}

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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup/backup"
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

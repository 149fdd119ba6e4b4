package backup

import (
	"bytes"
	"errors"
	"hash/crc64"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// TestSetWriterChecksums checks the combined set checksum against hashing
// the stored bytes: parts of every size (an empty dump too), then the
// manifest trailer.
func TestSetWriterChecksums(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var obj bytes.Buffer
	sw, err := newSetWriter(&obj, zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []int{0, 1, 1000, 3 << 20, 0, 70000} {
		dump := make([]byte, size)
		for j := range dump {
			dump[j] = byte(rng.IntN(16)) // compressible, not trivially
		}
		part := rdsbackup.Part{Name: "db" + strconv.Itoa(i), Kind: rdsbackup.PartDatabase}
		if err := sw.WritePart(t.Context(), part, bytes.NewReader(dump)); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.writeTrailer([]byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	b := obj.Bytes()
	if sw.n != int64(len(b)) {
		t.Fatalf("counted %d bytes, stored %d", sw.n, len(b))
	}
	if want := crc64.Checksum(b, crcTable); sw.sum != want {
		t.Errorf("set checksum %d, CRC64 of the object %d", sw.sum, want)
	}
	for _, a := range sw.parts {
		if got := FormatChecksum(crc64.Checksum(b[a.Offset:a.Offset+a.Length], crcTable)); got != a.Checksum {
			t.Errorf("part %s: checksum %s, CRC64 of its range %s", a.Database, a.Checksum, got)
		}
	}
	if m, err := ReadTrailer(bytes.NewReader(b), int64(len(b))); err != nil || m.Version != 1 {
		t.Errorf("trailer: %+v, %v", m, err)
	}
}

// shortWriter stores up to limit bytes, then fails, as a full disk would.
type shortWriter struct {
	buf   bytes.Buffer
	limit int
}

func (w *shortWriter) Write(p []byte) (int, error) {
	room := w.limit - w.buf.Len()
	if len(p) <= room {
		return w.buf.Write(p)
	}
	w.buf.Write(p[:room])
	return room, errors.New("disk full")
}

// TestSetWriterChecksumShortWrite: the count and checksum describe exactly
// the bytes the storage took, also when it failed mid-write.
func TestSetWriterChecksumShortWrite(t *testing.T) {
	out := &shortWriter{limit: 5000}
	sw, err := newSetWriter(out, zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	dump := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range dump {
		dump[i] = byte(rng.Uint32())
	}
	err = sw.WritePart(t.Context(), rdsbackup.Part{Name: "db", Kind: rdsbackup.PartDatabase}, bytes.NewReader(dump))
	if err == nil {
		t.Fatal("no error from a failing storage")
	}
	b := out.buf.Bytes()
	if sw.n != int64(len(b)) || sw.sum != crc64.Checksum(b, crcTable) {
		t.Errorf("after a short write: %d bytes, CRC64 %d; stored %d, CRC64 %d", sw.n, sw.sum, len(b), crc64.Checksum(b, crcTable))
	}
}

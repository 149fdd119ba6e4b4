package backup

import (
	"bytes"
	"encoding/json"
	"hash/crc64"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// setFileSeed is a real two-part set file, as the runner writes one.
func setFileSeed(f *testing.F) []byte {
	var obj bytes.Buffer
	sw, err := newSetWriter(&obj, zstd.SpeedFastest)
	if err != nil {
		f.Fatal(err)
	}
	m := Manifest{Version: ManifestVersion, ID: 7, InstanceID: "rm-1", Engine: "MariaDB", Method: "Logical"}
	for _, p := range []struct{ name, dump string }{{"shop", "CREATE TABLE t (id INT);\n"}, {"crm", "INSERT INTO t VALUES (1);\n"}} {
		start := sw.n
		if err := sw.WritePart(f.Context(), rdsbackup.Part{Name: p.name, Kind: rdsbackup.PartDatabase}, bytes.NewReader([]byte(p.dump))); err != nil {
			f.Fatal(err)
		}
		sum := crc64.Checksum(obj.Bytes()[start:sw.n], crcTable)
		m.Parts = append(m.Parts, ManifestPart{Name: p.name, Kind: rdsbackup.PartDatabase, Offset: start, Length: sw.n - start, Checksum: FormatChecksum(sum)})
	}
	js, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	if err := sw.writeTrailer(js); err != nil {
		f.Fatal(err)
	}
	return obj.Bytes()
}

// FuzzSetFile reads hostile set files as restore does: the manifest from
// the trailer, then each part's byte range as a zstd stream. Nothing may
// panic or allocate without bound, and the real file's parts decode.
func FuzzSetFile(f *testing.F) {
	seed := setFileSeed(f)
	f.Add(seed)
	f.Add(seed[len(seed)-40:])
	f.Add([]byte("\x50\x2a\x4d\x18\x10\x00\x00\x00{\"version\":1}\x0d\x00\x00\x00RDSM"))
	f.Add([]byte("\xff\xff\xff\xffRDSM\xff\xff\xff\xffRDSM"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		m, err := ReadTrailer(r, int64(len(data)))
		if err != nil {
			return
		}
		if m.Version != ManifestVersion {
			t.Fatalf("accepted manifest version %d", m.Version)
		}
		decoded := 0
		for _, p := range m.Parts {
			if p.Offset < 0 || p.Length < 0 || p.Offset > int64(len(data)) || p.Length > int64(len(data))-p.Offset {
				continue // restore's checksum pass refuses such a part first
			}
			dec, err := zstd.NewReader(io.NewSectionReader(r, p.Offset, p.Length),
				zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(16<<20))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.CopyN(io.Discard, dec, 1<<20); err == nil || err == io.EOF {
				decoded++
			}
			dec.Close()
		}
		if bytes.Equal(data, seed) && decoded != 2 {
			t.Fatalf("the real set file decoded %d parts", decoded)
		}
	})
}

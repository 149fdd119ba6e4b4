package backup

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// The set file format (docs/backup-format.md): the parts of a backup set,
// each compressed as its own zstd frame, one after another, followed by the
// set's manifest (JSON) in a zstd skippable frame. `zstd -d` of the whole
// file yields every part's dump in order and ignores the manifest; a part's
// byte range alone is a valid zstd stream, which is what a per-database
// download link serves.

// crcTable is CRC-64/XZ, the value Alibaba OSS reports as
// x-oss-hash-crc64ecma.
var crcTable = crc64.MakeTable(crc64.ECMA)

// skippableMagic is the first zstd skippable-frame magic number; decoders
// skip such frames whole.
const skippableMagic = 0x184D2A50

// FormatChecksum renders a CRC64 as the API shows it: unsigned decimal.
func FormatChecksum(sum uint64) string { return strconv.FormatUint(sum, 10) }

// setWriter streams a set's parts into one object while checksumming and
// counting exactly the bytes stored. Each byte is hashed once, into its
// part's CRC64 (or the trailer's); the set's CRC64 is combined from those.
type setWriter struct {
	out   io.Writer    // the object
	sum   uint64       // CRC64 of the n bytes written so far
	n     int64        // bytes written to the object
	raw   atomic.Int64 // uncompressed bytes read from the engine, for progress
	enc   *zstd.Encoder
	parts []rdsbackup.Artifact
}

func newSetWriter(out io.Writer, level zstd.EncoderLevel) (*setWriter, error) {
	// One encoder goroutine: the dump tool and storage use the other core,
	// and memory stays bounded whatever the database size.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(4<<20), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	return &setWriter{out: out, enc: enc}, nil
}

// write appends p to the object, adding what was written to the piece's
// checksum and to the object's length. The caller adds the piece's
// checksum to the set's with addPiece.
func (w *setWriter) write(p []byte, pieceCRC hash.Hash64) (int, error) {
	n, err := w.out.Write(p)
	pieceCRC.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// addPiece extends the set's checksum with a piece (a part, the trailer)
// of length bytes, whose own CRC64 is crc.
func (w *setWriter) addPiece(crc uint64, length int64) {
	w.sum = CombineCRC64(w.sum, crc, length)
}

type partWriter struct {
	w   *setWriter
	crc hash.Hash64
}

func (p partWriter) Write(b []byte) (int, error) { return p.w.write(b, p.crc) }

// countingReader counts the uncompressed bytes and stops when ctx ends.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// WritePart compresses r into a new zstd frame of the object.
func (w *setWriter) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	start := w.n
	pw := partWriter{w: w, crc: crc64.New(crcTable)}
	w.enc.Reset(pw)
	_, err := io.Copy(w.enc, countingReader{ctx: ctx, r: r, n: &w.raw})
	if cerr := w.enc.Close(); err == nil {
		err = cerr
	}
	w.addPiece(pw.crc.Sum64(), w.n-start)
	if err != nil {
		return fmt.Errorf("store part %s: %w", part.Name, err)
	}
	w.parts = append(w.parts, rdsbackup.Artifact{Database: part.Name, Kind: part.Kind, Offset: start, Length: w.n - start,
		Checksum: FormatChecksum(pw.crc.Sum64())})
	return nil
}

// trailerMarker ends every set object, so its manifest can be found from
// the end without decoding the frames before it.
const trailerMarker = "RDSM"

// writeTrailer appends the manifest as a skippable frame whose payload is
// the JSON, its length (uint32 LE) and trailerMarker.
func (w *setWriter) writeTrailer(manifest []byte) error {
	frame := make([]byte, 0, 8+len(manifest)+8)
	frame = binary.LittleEndian.AppendUint32(frame, skippableMagic)
	frame = binary.LittleEndian.AppendUint32(frame, uint32(len(manifest)+8))
	frame = append(frame, manifest...)
	frame = binary.LittleEndian.AppendUint32(frame, uint32(len(manifest)))
	frame = append(frame, trailerMarker...)
	start, h := w.n, crc64.New(crcTable)
	_, err := w.write(frame, h)
	w.addPiece(h.Sum64(), w.n-start)
	return err
}

// ReadTrailer returns the manifest stored at the end of a set object.
func ReadTrailer(r io.ReaderAt, size int64) (*Manifest, error) {
	if size < 16 {
		return nil, fmt.Errorf("not a backup set file: too short")
	}
	var foot [8]byte
	if _, err := r.ReadAt(foot[:], size-8); err != nil {
		return nil, fmt.Errorf("read trailer: %w", err)
	}
	if string(foot[4:]) != trailerMarker {
		return nil, fmt.Errorf("not a backup set file: no manifest trailer")
	}
	n := int64(binary.LittleEndian.Uint32(foot[:4]))
	if n > size-16 || n > 64<<20 {
		return nil, fmt.Errorf("not a backup set file: bad manifest length %d", n)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-8-n); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return parseManifest(buf)
}

// ManifestVersion is the version of the manifest format.
const ManifestVersion = 1

// Manifest describes a backup set completely, so that the catalog can be
// rebuilt from storage alone. It is stored beside the set's object and, as
// a skippable frame, at the end of it.
type Manifest struct {
	Version int `json:"version"`
	// ID is the BackupId; it equals the id of the job that made the set.
	ID               int64             `json:"backupId"`
	InstanceID       string            `json:"instanceId"`
	Engine           string            `json:"engine"`
	EngineVersion    string            `json:"engineVersion"`
	HostInstanceID   string            `json:"hostInstanceId"`
	Method           string            `json:"method"`
	Type             string            `json:"type"`
	Mode             string            `json:"mode"`
	Initiator        string            `json:"initiator"`
	StoreStatus      string            `json:"storeStatus"`
	Scale            string            `json:"scale"`
	StartTime        int64             `json:"startTime"`
	EndTime          int64             `json:"endTime"`
	ConsistentTime   int64             `json:"consistentTime"`
	ExpectExpireTime int64             `json:"expectExpireTime,omitempty"`
	Databases        []string          `json:"databases"`
	ObjectKey        string            `json:"objectKey"`
	Parts            []ManifestPart    `json:"parts"`
	Compression      string            `json:"compression"`
	Extra            map[string]string `json:"extra,omitempty"`
	// LogPositions says where in the server's log each part starts, for
	// point-in-time recovery (docs/pitr.md).
	LogPositions map[string]rdsbackup.LogPosition `json:"logPositions,omitempty"`
}

// ManifestPart is one part's place in the object. Its checksum is the
// CRC64 of its compressed byte range; the whole object's checksum cannot be
// inside the object, so it lives in the catalog and the manifest object.
type ManifestPart struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
	Checksum string `json:"crc64"`
}

// SetObjectManifest is the manifest object stored beside the set: the
// manifest plus what only exists after the trailer is written.
type SetObjectManifest struct {
	Manifest
	Size     int64  `json:"size"`
	Checksum string `json:"crc64"`
}

// ToBackupSet turns a stored manifest back into a catalog entry.
func (m *SetObjectManifest) ToBackupSet() *rdsbackup.BackupSet {
	set := &rdsbackup.BackupSet{
		ID: m.ID, InstanceID: m.InstanceID, Status: rdsbackup.BackupSuccess, Available: true,
		StartTime: unixTime(m.StartTime), EndTime: unixTime(m.EndTime), ExpectExpireTime: unixTime(m.ExpectExpireTime),
		Type: rdsbackup.BackupType(m.Type), Mode: rdsbackup.BackupMode(m.Mode), Method: rdsbackup.BackupMethod(m.Method),
		Initiator: rdsbackup.BackupInitiator(m.Initiator), StoreStatus: rdsbackup.StoreStatus(m.StoreStatus),
		Size: m.Size, Checksum: m.Checksum, HostInstanceID: m.HostInstanceID, Engine: rdsbackup.Engine(m.Engine),
		EngineVersion: m.EngineVersion, ConsistentTime: m.ConsistentTime, Scale: m.Scale, DBNames: m.Databases,
		ObjectKey: m.ObjectKey, Location: Location, Encryption: "{}", StorageClass: "0",
	}
	if m.Method == string(rdsbackup.MethodLogical) {
		set.MetaStatus = "OK"
	}
	for _, p := range m.Parts {
		set.Artifacts = append(set.Artifacts, rdsbackup.Artifact{Database: p.Name, Kind: p.Kind, Offset: p.Offset, Length: p.Length, Checksum: p.Checksum})
	}
	return set
}

func parseManifest(buf []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(buf, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest version %d not supported", m.Version)
	}
	return &m, nil
}

func unixTime(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

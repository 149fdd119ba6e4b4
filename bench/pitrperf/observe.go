package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
)

// Every benchmark transaction writes one row holding a marker: markerPrefix
// and its sequence number in markerDigits decimal digits. Row-based binary
// logs and WAL heap records carry short strings as they are, so the marker
// is found byte for byte in the log files, and where it is found first is
// when that transaction reached that place.
const (
	markerPrefix = "PITRMARK"
	markerDigits = 10
	markerLen    = len(markerPrefix) + markerDigits
)

func marker(seq int) string {
	b := []byte(markerPrefix + "0000000000")
	for i := len(b) - 1; seq > 0; i-- {
		b[i] = byte('0' + seq%10)
		seq /= 10
	}
	return string(b)
}

// findMarkers calls f with the sequence number of each marker in b.
func findMarkers(b []byte, f func(seq int)) {
	for {
		i := bytes.Index(b, []byte(markerPrefix))
		if i < 0 {
			return
		}
		b = b[i+len(markerPrefix):]
		if len(b) < markerDigits {
			return
		}
		n, ok := 0, true
		for _, c := range b[:markerDigits] {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + int(c-'0')
		}
		if ok {
			f(n)
		}
	}
}

// seen records when each sequence number was first seen somewhere.
type seen struct {
	mu sync.Mutex
	at []time.Time // by seq
}

func newSeen(n int) *seen { return &seen{at: make([]time.Time, n)} }

func (s *seen) mark(seq int, t time.Time) {
	s.mu.Lock()
	if seq >= 0 && seq < len(s.at) && s.at[seq].IsZero() {
		s.at[seq] = t
	}
	s.mu.Unlock()
}

func (s *seen) get(seq int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at[seq]
}

// spoolWatcher polls the instance's spool (stream/ and ready/) and reads
// what was appended to each log file since the last poll, looking for
// markers. A file moved from stream/ to ready/ keeps its name and its
// offset. Bytes the watcher can read are in the spool file: written by the
// streaming tool, in the kernel's page cache (they survive the tool or
// rdsbackup being killed; they are fsync'd by the streamer when the file
// is complete, see BENCHMARKS.md).
type spoolWatcher struct {
	dirs     []string
	interval time.Duration
	seen     *seen
	wal      bool // PostgreSQL segments: pre-allocated, zero after what was written
	offsets  map[string]int64
	buf      []byte
}

func (w *spoolWatcher) run(ctx context.Context) {
	w.offsets = map[string]int64{}
	w.buf = make([]byte, 1<<20)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.poll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *spoolWatcher) poll() {
	for _, d := range w.dirs {
		entries, _ := os.ReadDir(d)
		for _, en := range entries {
			if !en.Type().IsRegular() || filepath.Ext(en.Name()) == ".json" {
				continue
			}
			w.read(filepath.Join(d, en.Name()), en.Name())
		}
	}
}

// read scans a file from its last offset. The last markerLen-1 bytes are
// read again next time, so a marker cut by the end of what was written is
// found once it is whole.
func (w *spoolWatcher) read(path, name string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if w.wal {
		w.readWAL(f, name)
		return
	}
	off := w.offsets[name]
	for {
		n, _ := f.ReadAt(w.buf, off)
		if n <= 0 {
			break
		}
		now := time.Now()
		findMarkers(w.buf[:n], func(seq int) { w.seen.mark(seq, now) })
		if n < len(w.buf) {
			off += int64(max(n-(markerLen-1), 0))
			break
		}
		off += int64(n - (markerLen - 1))
	}
	w.offsets[name] = off
}

// walPage is the WAL page size (XLOG_BLCKSZ, 8 KiB by default).
const walPage = 8192

// readWAL scans a WAL segment, which pg_receivewal zero-fills before it
// writes: every written page begins with a non-zero header (xlp_magic), so
// the written part ends at the first page whose first two bytes are zero;
// the last written page is read again next time, as it may still grow.
func (w *spoolWatcher) readWAL(f *os.File, name string) {
	off := w.offsets[name]
	for {
		n, _ := f.ReadAt(w.buf, off)
		n -= n % walPage
		if n <= 0 {
			break
		}
		now := time.Now()
		end := n
		for p := 0; p < n; p += walPage {
			if w.buf[p] == 0 && w.buf[p+1] == 0 {
				end = p
				break
			}
		}
		findMarkers(w.buf[:end], func(seq int) { w.seen.mark(seq, now) })
		if end < n {
			off += int64(max(end-walPage, 0))
			break
		}
		off += int64(n - walPage)
	}
	w.offsets[name] = off
}

// observedStore is the service's object store with a tap: each committed
// log object is decompressed and its markers recorded as stored at the
// time its commit returned.
type observedStore struct {
	rdsbackup.ObjectStore
	seen *seen
}

func (s *observedStore) Create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	w, err := s.ObjectStore.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return &observedWriter{ObjectWriter: w, s: s}, nil
}

type observedWriter struct {
	rdsbackup.ObjectWriter
	s   *observedStore
	buf bytes.Buffer
}

func (w *observedWriter) Write(p []byte) (int, error) {
	n, err := w.ObjectWriter.Write(p)
	w.buf.Write(p[:n])
	return n, err
}

func (w *observedWriter) Commit() error {
	if err := w.ObjectWriter.Commit(); err != nil {
		return err
	}
	now := time.Now()
	dec, err := zstd.NewReader(bytes.NewReader(w.buf.Bytes()))
	if err != nil {
		return nil
	}
	defer dec.Close()
	raw, err := io.ReadAll(dec)
	if err != nil {
		return nil
	}
	findMarkers(raw, func(seq int) { w.s.seen.mark(seq, now) })
	return nil
}

package encrypted

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// oneObject is a store of one object, for the fuzzer (a file system store
// per input would be slow): it reads that object and captures the one a
// writer commits.
type oneObject struct {
	rdsbackup.ObjectStore // nil: only what is used here is implemented
	key                   string
	data                  []byte
}

func (o *oneObject) Open(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if key != o.key {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no")
	}
	if off > int64(len(o.data)) {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "offset")
	}
	b := o.data[off:]
	if n >= 0 && n < int64(len(b)) {
		b = b[:n]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (o *oneObject) Stat(_ context.Context, key string) (rdsbackup.ObjectInfo, error) {
	return rdsbackup.ObjectInfo{Key: key, Size: int64(len(o.data)), ModTime: time.Now()}, nil
}

func (o *oneObject) Create(context.Context, string) (rdsbackup.ObjectWriter, error) {
	return &memWriter{o: o}, nil
}

type memWriter struct {
	bytes.Buffer
	o *oneObject
}

func (w *memWriter) Commit() error { w.o.data = bytes.Clone(w.Bytes()); return nil }
func (w *memWriter) Abort() error  { return nil }

// fuzzObject encrypts n pattern bytes under fixed keys and nonces, so that
// every fuzzing process makes the same objects.
func fuzzObject(t testing.TB, kek Key, n int) (obj, plain []byte) {
	plain = make([]byte, n)
	for i := range plain {
		plain[i] = byte(i*7 + i>>8)
	}
	dek := bytes.Repeat([]byte{byte(n)}, dataKeySize)
	hdr, err := wrapHeader(kek, "k", dek, make([]byte, wrapNonceSize))
	if err != nil {
		t.Fatal(err)
	}
	o := &oneObject{key: "k"}
	w, err := (&Store{Inner: o}).create(context.Background(), "k", kek, hdr, dek)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return o.data, plain
}

// FuzzDecrypt feeds hostile objects to the chunk decoder, whole (Decrypt,
// Open from 0) and in ranges: it must never panic, and only objects the
// writer made may decrypt (every byte is authenticated), to their
// plaintext.
func FuzzDecrypt(f *testing.F) {
	kek := Key{ID: "ek-fuzz", Secret: bytes.Repeat([]byte{7}, KeySize)}
	keys := NewKeyring(kek)
	valid := map[string][]byte{}
	for _, n := range []int{0, 1, 100, ChunkSize, ChunkSize + 3} {
		obj, plain := fuzzObject(f, kek, n)
		valid[string(obj)] = plain
		if n < 200 {
			f.Add(obj, int64(0), int64(-1))
			f.Add(obj, int64(n/2), int64(5))
		}
	}
	f.Add([]byte(magic+"\x01\x01\x07ek-fuzz\x00\x01k"), int64(1), int64(-1))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}, int64(2), int64(2))
	f.Fuzz(func(t *testing.T, obj []byte, off, n int64) {
		enc := hasMagic(obj)
		want, isValid := valid[string(obj)]
		var out bytes.Buffer
		_, err := Decrypt(&out, bytes.NewReader(obj), keys)
		switch {
		case err == nil && enc && !isValid:
			t.Fatalf("a forged object decrypted: %d bytes", out.Len())
		case err == nil && enc && !bytes.Equal(out.Bytes(), want):
			t.Fatal("wrong plaintext")
		case err != nil && isValid:
			t.Fatalf("a valid object failed: %v", err)
		case err == nil && !enc && !bytes.Equal(out.Bytes(), obj):
			t.Fatal("a plain object was changed")
		}

		s := New(&oneObject{key: "k", data: obj}, keys, false)
		if off < 0 {
			off = -(off + 1)
		}
		off %= int64(len(obj)) + 2
		rc, err := s.Open(context.Background(), "k", off, n)
		if err != nil {
			return
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !enc {
			return
		}
		if !isValid {
			// An empty range reads nothing, so it authenticates nothing.
			if len(got) > 0 {
				t.Fatalf("a forged object read: %d bytes", len(got))
			}
			return
		}
		want = want[min(off, int64(len(want))):]
		if n >= 0 && n < int64(len(want)) {
			want = want[:n]
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("range [%d,%d]: wrong bytes", off, n)
		}
	})
}

// The cost of the format alone, without storage: sealing and opening a
// set's worth of bytes (BENCHMARKS.md).
func BenchmarkSeal(b *testing.B) {
	kek := Key{ID: "ek-bench", Secret: bytes.Repeat([]byte{1}, KeySize)}
	buf := make([]byte, 256<<10)
	b.SetBytes(64 << 20)
	for b.Loop() {
		w, err := (&Store{Inner: discardStore{}, Keys: NewKeyring(kek), Encrypt: true}).Create(context.Background(), "k")
		if err != nil {
			b.Fatal(err)
		}
		for range (64 << 20) / len(buf) {
			w.Write(buf)
		}
		w.Commit()
	}
}

func BenchmarkOpen(b *testing.B) {
	kek := Key{ID: "ek-bench", Secret: bytes.Repeat([]byte{1}, KeySize)}
	obj, _ := fuzzObject(b, kek, 64<<20)
	s := New(&oneObject{key: "k", data: obj}, NewKeyring(kek), false)
	b.SetBytes(64 << 20)
	for b.Loop() {
		rc, err := s.Open(context.Background(), "k", 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, rc); err != nil || n != 64<<20 {
			b.Fatal(n, err)
		}
		rc.Close()
	}
}

type discardStore struct{ rdsbackup.ObjectStore }

func (discardStore) Create(context.Context, string) (rdsbackup.ObjectWriter, error) {
	return discardWriter{}, nil
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) Commit() error               { return nil }
func (discardWriter) Abort() error                { return nil }

package encrypted_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/storage/encrypted"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

// leftovers: the temp files of localfs under the decorator.
var leftovers = storagetest.Options{Leftovers: func(t *testing.T, s rdsbackup.ObjectStore) []string {
	entries, err := os.ReadDir(filepath.Join(s.(*encrypted.Store).Inner.(*localfs.FS).Root, ".tmp"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}}

func TestConformance(t *testing.T) {
	storagetest.RunWith(t, func(t *testing.T) rdsbackup.ObjectStore {
		return encrypted.New(localfs.New(t.TempDir()), encrypted.NewKeyring(encrypted.NewKey()), true)
	}, leftovers)
}

// With encryption off the decorator must still be a conforming store (it
// stores in the clear, as installations that did not turn it on do).
func TestConformancePlain(t *testing.T) {
	storagetest.RunWith(t, func(t *testing.T) rdsbackup.ObjectStore {
		return encrypted.New(localfs.New(t.TempDir()), encrypted.NewKeyring(encrypted.NewKey()), false)
	}, leftovers)
}

func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, s rdsbackup.ObjectStore, key string, b []byte) {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(s rdsbackup.ObjectStore, key string, off, n int64) ([]byte, error) {
	rc, err := s.Open(context.Background(), key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

type fixture struct {
	dir   string
	raw   *localfs.FS
	store *encrypted.Store
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	raw := localfs.New(dir)
	return &fixture{dir: dir, raw: raw, store: encrypted.New(raw, encrypted.NewKeyring(encrypted.NewKey()), true)}
}

func (f *fixture) rawBytes(t *testing.T, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, key))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) setRaw(t *testing.T, key string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, key), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The stored bytes reveal neither the plaintext nor its format, and each
// object's header names its key.
func TestNothingReadableStored(t *testing.T) {
	f := newFixture(t)
	secret := []byte("customer-secret-value-4711")
	plain := bytes.Repeat(append([]byte{0x28, 0xb5, 0x2f, 0xfd}, secret...), 10000)
	put(t, f.store, "backups/a/1/set.zst", plain)
	stored := f.rawBytes(t, "backups/a/1/set.zst")
	if bytes.Contains(stored, secret) || bytes.Contains(stored, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatal("the stored object contains plaintext")
	}
	got, err := get(f.store, "backups/a/1/set.zst", 0, -1)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	doc, err := f.store.ObjectEncryption(t.Context(), "backups/a/1/set.zst")
	cur, _ := f.store.Keys.Current()
	if err != nil || doc != `{"EncryptionType":"AES-256-GCM","KeyId":"`+cur.ID+`"}` {
		t.Fatalf("ObjectEncryption: %s, %v", doc, err)
	}
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if rdsbackup.ErrorCode(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// readAll reads key whole and in ranges: every read must fail with code.
func refused(t *testing.T, s rdsbackup.ObjectStore, key, code, what string) {
	t.Helper()
	_, err := get(s, key, 0, -1)
	wantCode(t, err, code, what+": whole")
	_, err = get(s, key, 2*encrypted.ChunkSize+5, -1)
	if what != "swapped" && rdsbackup.ErrorCode(err) != code && rdsbackup.ErrorCode(err) != rdsbackup.EINVALID {
		t.Fatalf("%s: range: %v, want %s", what, err, code)
	}
}

func TestTamperingRefused(t *testing.T) {
	const size = 3*encrypted.ChunkSize + 100
	plain := data(1, size)
	hdr := func(f *fixture, key string) int {
		// The header is everything before the chunks.
		return len(f.rawBytes(t, key)) - (size + 4*encrypted.Overhead)
	}
	t.Run("FlippedByte", func(t *testing.T) {
		for _, where := range []string{"header", "chunk0", "chunk2", "tag"} {
			f := newFixture(t)
			put(t, f.store, "k", plain)
			b := f.rawBytes(t, "k")
			h := hdr(f, "k")
			i := map[string]int{"header": h - 20, "chunk0": h + 3, "chunk2": h + 2*(encrypted.ChunkSize+16) + 7, "tag": len(b) - 1}[where]
			b[i] ^= 0x40
			f.setRaw(t, "k", b)
			code := rdsbackup.EObjectCorrupt
			if where == "header" {
				code = rdsbackup.EEncryptionKeyUnavailable // the wrapped data key no longer opens
			}
			_, err := get(f.store, "k", 0, -1)
			wantCode(t, err, code, where)
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		f := newFixture(t)
		put(t, f.store, "k", plain)
		b := f.rawBytes(t, "k")
		h := hdr(f, "k")
		for _, cut := range []int{len(b) - 1, len(b) - 116, h + 3*(encrypted.ChunkSize+16), h + encrypted.ChunkSize + 16, h + 10, h, 30} {
			f.setRaw(t, "k", b[:cut])
			refused(t, f.store, "k", rdsbackup.EObjectCorrupt, "cut at "+strconv.Itoa(cut))
			// A size no writer makes is refused by Stat already.
			if _, err := f.store.Stat(t.Context(), "k"); rdsbackup.ErrorCode(err) != rdsbackup.EObjectCorrupt && cut <= h+10 {
				t.Errorf("stat cut at %d: %v", cut, err)
			}
		}
		// Still listed (with its stored size), and deleted.
		f.setRaw(t, "k", b[:h+10])
		if infos, err := rdsbackup.CollectObjects(f.store.List(t.Context(), "")); err != nil || len(infos) != 1 || infos[0].Size != int64(h+10) {
			t.Fatalf("list of a damaged object: %+v %v", infos, err)
		}
		// Extended by a chunk's worth of garbage.
		f.setRaw(t, "k", append(b, make([]byte, encrypted.ChunkSize+16)...))
		refused(t, f.store, "k", rdsbackup.EObjectCorrupt, "extended")
	})
	t.Run("ChunksSwapped", func(t *testing.T) {
		f := newFixture(t)
		put(t, f.store, "k", plain)
		b := f.rawBytes(t, "k")
		h, c := hdr(f, "k"), encrypted.ChunkSize+16
		swapped := bytes.Clone(b)
		copy(swapped[h:h+c], b[h+c:h+2*c])
		copy(swapped[h+c:h+2*c], b[h:h+c])
		f.setRaw(t, "k", swapped)
		refused(t, f.store, "k", rdsbackup.EObjectCorrupt, "swapped")
		// A range that touches only the second slot.
		_, err := get(f.store, "k", encrypted.ChunkSize+1, 10)
		wantCode(t, err, rdsbackup.EObjectCorrupt, "swapped, range")
	})
	t.Run("ChunkFromAnotherObject", func(t *testing.T) {
		f := newFixture(t)
		put(t, f.store, "k", plain)
		put(t, f.store, "other", plain) // same plaintext, same key-encryption key
		b, o := f.rawBytes(t, "k"), f.rawBytes(t, "other")
		h, ho, c := hdr(f, "k"), hdr(f, "other"), encrypted.ChunkSize+16
		copy(b[h+c:h+2*c], o[ho+c:ho+2*c])
		f.setRaw(t, "k", b)
		_, err := get(f.store, "k", 0, -1)
		wantCode(t, err, rdsbackup.EObjectCorrupt, "foreign chunk")
		_, err = get(f.store, "k", encrypted.ChunkSize, 1)
		wantCode(t, err, rdsbackup.EObjectCorrupt, "foreign chunk, range")
		// The chunks before it still read.
		if got, err := get(f.store, "k", 0, encrypted.ChunkSize); err != nil || !bytes.Equal(got, plain[:encrypted.ChunkSize]) {
			t.Fatalf("first chunk: %v", err)
		}
	})
	t.Run("WholeObjectMoved", func(t *testing.T) {
		f := newFixture(t)
		put(t, f.store, "a", plain)
		put(t, f.store, "b", data(2, 10))
		f.setRaw(t, "b", f.rawBytes(t, "a"))
		refused(t, f.store, "b", rdsbackup.EObjectCorrupt, "moved")
	})
}

func TestRanges(t *testing.T) {
	f := newFixture(t)
	r := rand.New(rand.NewPCG(3, 3))
	for _, size := range []int{0, 1, encrypted.ChunkSize - 1, encrypted.ChunkSize, encrypted.ChunkSize + 1, 5*encrypted.ChunkSize + 777} {
		plain := data(uint64(size), size)
		put(t, f.store, "k", plain)
		if info, err := f.store.Stat(t.Context(), "k"); err != nil || info.Size != int64(size) {
			t.Fatalf("stat of %d bytes: %+v, %v", size, info, err)
		}
		for range 40 {
			off := r.Int64N(int64(size) + 1)
			n := r.Int64N(3*encrypted.ChunkSize) - 100
			want := plain[off:]
			if n >= 0 && n < int64(len(want)) {
				want = want[:n]
			}
			got, err := get(f.store, "k", off, n)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("size %d range [%d,%d]: %d bytes, %v; want %d", size, off, n, len(got), err, len(want))
			}
		}
	}
}

// Objects stored before encryption was turned on stay readable, whole and
// in ranges, next to encrypted ones.
func TestPlainObjectsStayReadable(t *testing.T) {
	f := newFixture(t)
	old := append([]byte{0x28, 0xb5, 0x2f, 0xfd}, data(4, 200_000)...)
	put(t, f.raw, "old", old)
	put(t, f.raw, "tiny", []byte{0x89})
	put(t, f.store, "new", data(5, 1000))
	for _, tc := range [][2]int64{{0, -1}, {0, 10}, {100, 50}, {199_000, -1}} {
		got, err := get(f.store, "old", tc[0], tc[1])
		want := old[tc[0]:]
		if tc[1] >= 0 {
			want = want[:tc[1]]
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("old object %v: %v", tc, err)
		}
	}
	if got, err := get(f.store, "tiny", 0, -1); err != nil || !bytes.Equal(got, []byte{0x89}) {
		t.Fatalf("tiny object: %v %v", got, err)
	}
	infos, err := rdsbackup.CollectObjects(f.store.List(t.Context(), ""))
	if err != nil || len(infos) != 3 || infos[0].Size != 1000 || infos[1].Size != int64(len(old)) || infos[2].Size != 1 {
		t.Fatalf("list: %+v, %v", infos, err)
	}
	if doc, err := f.store.ObjectEncryption(t.Context(), "old"); err != nil || doc != "{}" {
		t.Fatalf("ObjectEncryption of a plain object: %s %v", doc, err)
	}
	// Without any key, plain objects read and encrypted ones are refused
	// with the key's id.
	bare := encrypted.New(f.raw, nil, false)
	if _, err := get(bare, "old", 0, -1); err != nil {
		t.Fatal(err)
	}
	cur, _ := f.store.Keys.Current()
	_, err = get(bare, "new", 0, -1)
	wantCode(t, err, rdsbackup.EEncryptionKeyUnavailable, "no keyring")
	if !strings.Contains(rdsbackup.ErrorMessage(err), cur.ID) {
		t.Fatalf("message does not name the key: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	f := newFixture(t)
	put(t, f.store, "k", data(6, 100_000))
	cur, _ := f.store.Keys.Current()
	other := encrypted.NewKey()
	for name, keys := range map[string]*encrypted.Keyring{
		"missing":    encrypted.NewKeyring(other),
		"same id":    encrypted.NewKeyring(encrypted.Key{ID: cur.ID, Secret: other.Secret}),
		"empty ring": nil,
	} {
		s := encrypted.New(f.raw, keys, false)
		for _, off := range []int64{0, 70_000} {
			_, err := get(s, "k", off, -1)
			wantCode(t, err, rdsbackup.EEncryptionKeyUnavailable, name)
			if !strings.Contains(rdsbackup.ErrorMessage(err), cur.ID) {
				t.Fatalf("%s: message does not name the key: %v", name, err)
			}
		}
		// Sizes need no key.
		if info, err := s.Stat(t.Context(), "k"); err != nil || info.Size != 100_000 {
			t.Fatalf("%s: stat %+v %v", name, info, err)
		}
	}
	// Encrypting without a key is refused before anything is stored.
	_, err := encrypted.New(f.raw, nil, true).Create(t.Context(), "x")
	wantCode(t, err, rdsbackup.EEncryptionKeyUnavailable, "create without a key")
}

func TestRotateAndRewrap(t *testing.T) {
	f := newFixture(t)
	before := data(7, 3*encrypted.ChunkSize+9)
	put(t, f.store, "before", before)
	old, _ := f.store.Keys.Current()
	f.store.Keys.Add(encrypted.NewKey())
	cur, _ := f.store.Keys.Current()
	after := data(8, 1000)
	put(t, f.store, "after", after)
	for key, want := range map[string][]byte{"before": before, "after": after} {
		if got, err := get(f.store, key, 0, -1); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after rotation: %v", key, err)
		}
	}
	doc := func(key string) string {
		d, err := f.store.ObjectEncryption(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if !strings.Contains(doc("before"), old.ID) || !strings.Contains(doc("after"), cur.ID) {
		t.Fatalf("key ids: %s %s", doc("before"), doc("after"))
	}

	rawBefore := f.rawBytes(t, "before")
	changed, err := f.store.Rewrap(t.Context(), "before")
	if err != nil || !changed {
		t.Fatalf("rewrap: %v %v", changed, err)
	}
	rawAfter := f.rawBytes(t, "before")
	chunks := len(before) + 4*encrypted.Overhead
	if !bytes.Equal(rawBefore[len(rawBefore)-chunks:], rawAfter[len(rawAfter)-chunks:]) {
		t.Fatal("rewrap changed data bytes")
	}
	if bytes.Equal(rawBefore, rawAfter) || !strings.Contains(doc("before"), cur.ID) {
		t.Fatal("rewrap did not change the header")
	}
	if changed, err := f.store.Rewrap(t.Context(), "before"); err != nil || changed {
		t.Fatalf("second rewrap: %v %v", changed, err)
	}
	// The old key can go now.
	s := encrypted.New(f.raw, encrypted.NewKeyring(cur), true)
	if got, err := get(s, "before", 0, -1); err != nil || !bytes.Equal(got, before) {
		t.Fatalf("read with the new key only: %v", err)
	}
}

func TestDecrypt(t *testing.T) {
	f := newFixture(t)
	plain := data(9, 2*encrypted.ChunkSize)
	put(t, f.store, "backups/a/1/set.zst", plain)
	var out bytes.Buffer
	n, err := encrypted.Decrypt(&out, bytes.NewReader(f.rawBytes(t, "backups/a/1/set.zst")), f.store.Keys)
	if err != nil || n != int64(len(plain)) || !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("decrypt: %d, %v", n, err)
	}
	raw := f.rawBytes(t, "backups/a/1/set.zst")
	_, err = encrypted.Decrypt(io.Discard, bytes.NewReader(raw[:len(raw)-1]), f.store.Keys)
	wantCode(t, err, rdsbackup.EObjectCorrupt, "decrypt truncated")
	_, err = encrypted.Decrypt(io.Discard, bytes.NewReader(raw), encrypted.NewKeyring(encrypted.NewKey()))
	wantCode(t, err, rdsbackup.EEncryptionKeyUnavailable, "decrypt wrong key")
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "encryption.keys")
	k, created, err := encrypted.LoadOrCreateKeyFile(path)
	if err != nil || !created || len(k.IDs()) != 1 {
		t.Fatalf("create: %v %v", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	again, created, err := encrypted.LoadOrCreateKeyFile(path)
	if err != nil || created || again.IDs()[0] != k.IDs()[0] {
		t.Fatalf("reload: %v %v", created, err)
	}
	k.Add(encrypted.NewKey())
	if err := encrypted.WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	back, err := encrypted.LoadKeyFile(path)
	if err != nil || strings.Join(back.IDs(), ",") != strings.Join(k.IDs(), ",") {
		t.Fatalf("rotated file: %v %v", back.IDs(), err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rewrite: %v", fi.Mode())
	}
	os.Chmod(path, 0o644)
	if _, err := encrypted.LoadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("open key file: %v", err)
	}
	for _, bad := range []string{"", "# only a comment\n", "ek-1\n", "ek-1 AAAA\n", "bad/id " + strings.Repeat("A", 44) + "\n"} {
		if _, err := encrypted.ParseKeyring([]byte(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
	one, two := encrypted.NewKey(), encrypted.NewKey()
	ring, err := encrypted.ParseKeyring([]byte(keyLine(one) + "," + keyLine(two)))
	if err != nil || ring.IDs()[1] != two.ID {
		t.Fatalf("comma-separated: %v", err)
	}
	if cur, _ := ring.Current(); cur.ID != two.ID {
		t.Fatal("the last key is not current")
	}
}

func keyLine(k encrypted.Key) string {
	lines := strings.Split(string(encrypted.NewKeyring(k).Marshal()), "\n")
	return lines[len(lines)-2]
}

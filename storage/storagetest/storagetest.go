// Package storagetest is the conformance suite of rdsbackup.ObjectStore,
// and Faulty, a wrapper that makes any store fail on demand. Every store
// runs the suite from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) rdsbackup.ObjectStore {
//			return … // a fresh, empty store, cleaned up through t
//		})
//	}
//
// Beyond the interface's comments, the suite pins down what callers rely
// on: a range running past the end stops there, an offset equal to the
// size reads nothing and one beyond it is EINVALID; keys that are empty,
// absolute, have empty or dot segments, a backslash, NUL or bytes that are
// not UTF-8 are EINVALID for every operation (a prefix no key can have
// lists nothing or is EINVALID).
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

// Options adapts the suite to a store.
type Options struct {
	// Leftovers returns what writes that never committed left in the
	// store: temp files, incomplete multipart uploads. The suite checks
	// it is empty after every aborted or failed write. Nil skips the check.
	Leftovers func(t *testing.T, s rdsbackup.ObjectStore) []string
}

// Run runs the suite. open returns a fresh, empty store for each subtest
// and registers its cleanup with t.
func Run(t *testing.T, open func(t *testing.T) rdsbackup.ObjectStore) {
	RunWith(t, open, Options{})
}

// RunWith runs the suite with options.
func RunWith(t *testing.T, open func(t *testing.T) rdsbackup.ObjectStore, opts Options) {
	leftovers = opts.Leftovers
	tests := []struct {
		name string
		fn   func(*testing.T, rdsbackup.ObjectStore)
	}{
		{"RoundTrip", testRoundTrip},
		{"Uncommitted", testUncommitted},
		{"Aborted", testAborted},
		{"Replace", testReplace},
		{"ReplaceWhileReading", testReplaceWhileReading},
		{"Ranges", testRanges},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
		{"List", testList},
		{"InvalidKeys", testInvalidKeys},
		{"Large", testLarge},
		{"ConcurrentWriters", testConcurrentWriters},
		{"FaultyWrite", testFaultyWrite},
		{"FaultyCommit", testFaultyCommit},
		{"FaultyCreate", testFaultyCreate},
		{"FaultyReads", testFaultyReads},
		{"ListStreamed", testListStreamed},
		{"KeyCharacters", testKeyCharacters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// ---------------------------------------------------------------- helpers

// leftovers is Options.Leftovers of the suite being run. Suites of
// different stores run one after another, never in parallel, within a
// test binary.
var leftovers func(t *testing.T, s rdsbackup.ObjectStore) []string

// wantNoLeftovers checks that no uncommitted write left anything behind.
func wantNoLeftovers(t *testing.T, s rdsbackup.ObjectStore) {
	t.Helper()
	if leftovers == nil {
		return
	}
	if got := leftovers(t, s); len(got) != 0 {
		t.Fatalf("uncommitted writes left %v", got)
	}
}

// put writes and commits an object.
func put(t *testing.T, s rdsbackup.ObjectStore, key string, data []byte) {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		t.Fatalf("write %s: %v", key, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("commit %s: %v", key, err)
	}
}

// get reads a range of an object.
func get(t *testing.T, s rdsbackup.ObjectStore, key string, offset, length int64) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("open %s [%d,%d]: %v", key, offset, length, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s [%d,%d]: %v", key, offset, length, err)
	}
	return data
}

func wantData(t *testing.T, s rdsbackup.ObjectStore, key string, want []byte) {
	t.Helper()
	if got := get(t, s, key, 0, -1); !bytes.Equal(got, want) {
		t.Fatalf("%s holds %s, want %s", key, summary(got), summary(want))
	}
}

// wantCode checks that err carries the domain error code.
func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if got := rdsbackup.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// wantAbsent checks that key is invisible to Open, Stat and List.
func wantAbsent(t *testing.T, s rdsbackup.ObjectStore, key string) {
	t.Helper()
	ctx := t.Context()
	r, err := s.Open(ctx, key, 0, -1)
	if err == nil {
		r.Close()
	}
	wantCode(t, err, rdsbackup.ENOTFOUND, "open "+key)
	_, err = s.Stat(ctx, key)
	wantCode(t, err, rdsbackup.ENOTFOUND, "stat "+key)
	for _, info := range list(t, s, "") {
		if info.Key == key {
			t.Fatalf("list returns absent object %s", key)
		}
	}
}

func list(t *testing.T, s rdsbackup.ObjectStore, prefix string) []rdsbackup.ObjectInfo {
	t.Helper()
	infos, err := rdsbackup.CollectObjects(s.List(t.Context(), prefix))
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return infos
}

func keys(infos []rdsbackup.ObjectInfo) []string {
	out := []string{}
	for _, info := range infos {
		out = append(out, info.Key)
	}
	return out
}

// pattern returns n bytes that differ between seeds and positions, so a
// misplaced range shows.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func summary(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%d bytes %x…", len(b), b[:16])
	}
	return fmt.Sprintf("%d bytes %x", len(b), b)
}

// ---------------------------------------------------------------- tests

func testRoundTrip(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	data := pattern(1, 1000)
	// Several writes, as a stream arrives.
	w, err := s.Create(ctx, "sets/rm-a1/42/set.zst")
	if err != nil {
		t.Fatal(err)
	}
	for chunk := range slices.Chunk(data, 300) {
		if n, err := w.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	wantData(t, s, "sets/rm-a1/42/set.zst", data)

	info, err := s.Stat(ctx, "sets/rm-a1/42/set.zst")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "sets/rm-a1/42/set.zst" || info.Size != 1000 || info.ModTime.IsZero() {
		t.Fatalf("stat: %+v", info)
	}
	infos := list(t, s, "")
	if len(infos) != 1 || infos[0].Key != info.Key || infos[0].Size != info.Size || !infos[0].ModTime.Equal(info.ModTime) {
		t.Fatalf("list: %+v, want [%+v]", infos, info)
	}

	// An empty object is an object.
	put(t, s, "empty", nil)
	if got := get(t, s, "empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object reads %d bytes", len(got))
	}
	if info, err := s.Stat(ctx, "empty"); err != nil || info.Size != 0 {
		t.Fatalf("stat empty: %+v, %v", info, err)
	}
}

func testUncommitted(t *testing.T, s rdsbackup.ObjectStore) {
	w, err := s.Create(t.Context(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pattern(2, 100)); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, "a/b")
	if infos := list(t, s, ""); len(infos) != 0 {
		t.Fatalf("list shows uncommitted objects: %v", keys(infos))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	wantData(t, s, "a/b", pattern(2, 100))
}

func testAborted(t *testing.T, s rdsbackup.ObjectStore) {
	w, err := s.Create(t.Context(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pattern(3, 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, "a/b")
	if infos := list(t, s, ""); len(infos) != 0 {
		t.Fatalf("list after abort: %v", keys(infos))
	}
	wantNoLeftovers(t, s)
	// Aborting without writing anything.
	w, err = s.Create(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, "c")
	wantNoLeftovers(t, s)
}

func testReplace(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	v1, v2 := pattern(4, 5000), pattern(5, 3000)
	put(t, s, "k", v1)

	w, err := s.Create(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(v2[:1000]); err != nil {
		t.Fatal(err)
	}
	wantData(t, s, "k", v1) // the old object until the new one commits
	if _, err := w.Write(v2[1000:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	wantData(t, s, "k", v2)
	if info, err := s.Stat(ctx, "k"); err != nil || info.Size != int64(len(v2)) {
		t.Fatalf("stat after replace: %+v, %v", info, err)
	}
	if got := keys(list(t, s, "")); !slices.Equal(got, []string{"k"}) {
		t.Fatalf("list after replace: %v", got)
	}

	// An aborted replacement keeps the object.
	w, err = s.Create(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(v1); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	wantData(t, s, "k", v2)
	wantNoLeftovers(t, s)
}

// testReplaceWhileReading replaces an object over and over while readers
// read it whole: each read must be one version, never a mix or a prefix.
func testReplaceWhileReading(t *testing.T, s rdsbackup.ObjectStore) {
	versions := [][]byte{bytes.Repeat([]byte{'a'}, 64<<10), bytes.Repeat([]byte{'b'}, 48<<10)}
	put(t, s, "k", versions[0])

	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				r, err := s.Open(t.Context(), "k", 0, -1)
				if err != nil {
					t.Errorf("open during replace: %v", err)
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					t.Errorf("read during replace: %v", err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("read during replace: %s, want one whole version", summary(got))
					return
				}
			}
		})
	}
	for i := range 20 {
		put(t, s, "k", versions[(i+1)%2])
	}
	close(done)
	wg.Wait()
}

func testRanges(t *testing.T, s rdsbackup.ObjectStore) {
	data := pattern(6, 1000)
	put(t, s, "r", data)
	for _, tc := range []struct {
		offset, length int64
		want           []byte
	}{
		{0, -1, data},
		{0, 1000, data},
		{0, 0, nil},
		{10, 20, data[10:30]},
		{500, 0, nil},
		{990, -1, data[990:]},
		{990, 100, data[990:]}, // past the end: stops there
		{999, 1, data[999:]},
		{1000, -1, nil}, // at the end: nothing
		{1000, 0, nil},
		{1000, 10, nil},
	} {
		if got := get(t, s, "r", tc.offset, tc.length); !bytes.Equal(got, tc.want) {
			t.Errorf("range [%d,%d]: %s, want %s", tc.offset, tc.length, summary(got), summary(tc.want))
		}
	}
	for _, tc := range []struct{ offset, length int64 }{{1001, -1}, {1001, 0}, {5000, 10}, {-1, 10}, {-1, -1}} {
		r, err := s.Open(t.Context(), "r", tc.offset, tc.length)
		if err == nil {
			r.Close()
		}
		wantCode(t, err, rdsbackup.EINVALID, fmt.Sprintf("range [%d,%d]", tc.offset, tc.length))
	}

	put(t, s, "empty", nil)
	if got := get(t, s, "empty", 0, 0); len(got) != 0 {
		t.Errorf("empty object range [0,0]: %d bytes", len(got))
	}
	if got := get(t, s, "empty", 0, 10); len(got) != 0 {
		t.Errorf("empty object range [0,10]: %d bytes", len(got))
	}
}

func testNotFound(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	put(t, s, "dir/obj", []byte("x"))
	for _, key := range []string{"missing", "dir/missing", "dir", "dir/obj/below", "other/dir/obj"} {
		for _, rng := range [][2]int64{{0, -1}, {0, 0}, {5, 10}} {
			r, err := s.Open(ctx, key, rng[0], rng[1])
			if err == nil {
				r.Close()
			}
			wantCode(t, err, rdsbackup.ENOTFOUND, fmt.Sprintf("open %s %v", key, rng))
		}
		_, err := s.Stat(ctx, key)
		wantCode(t, err, rdsbackup.ENOTFOUND, "stat "+key)
	}
	if infos := list(t, s, "missing"); len(infos) != 0 {
		t.Fatalf("list missing: %v", keys(infos))
	}
}

func testDelete(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	put(t, s, "a/b/c", []byte("c"))
	put(t, s, "a/b/d", []byte("d"))
	put(t, s, "a/e", []byte("e"))

	if err := s.Delete(ctx, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, "a/b/c")
	wantData(t, s, "a/b/d", []byte("d"))
	if err := s.Delete(ctx, "a/b/c"); err != nil {
		t.Fatalf("delete twice: %v", err)
	}
	for _, key := range []string{"never", "a/b/never", "x/y/z", "a/b/d/below"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("delete missing %s: %v", key, err)
		}
	}
	if err := s.Delete(ctx, "a/b/d"); err != nil {
		t.Fatal(err)
	}
	if got := keys(list(t, s, "")); !slices.Equal(got, []string{"a/e"}) {
		t.Fatalf("list after deletes: %v", got)
	}
	if err := s.Delete(ctx, "a/e"); err != nil {
		t.Fatal(err)
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Fatalf("list after deleting all: %v", keys(got))
	}
	// The emptied paths take objects again.
	put(t, s, "a/b/c", []byte("again"))
	wantData(t, s, "a/b/c", []byte("again"))
}

func testList(t *testing.T, s rdsbackup.ObjectStore) {
	// Byte order is not walk order: "a-b" < "a.b" < "a/b" < "ab".
	all := []string{
		"a-b", "a.b", "a/b", "a/c/d", "ab", "b/x",
		"sets/rm-1/1/set.zst", "sets/rm-1/10/set.zst", "sets/rm-1/2/set.zst", "sets/rm-2/1/set.zst",
	}
	order := slices.Clone(all)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i, key := range order {
		put(t, s, key, pattern(uint64(i), i))
	}
	infos := list(t, s, "")
	if got := keys(infos); !slices.Equal(got, all) {
		t.Fatalf("list all: %v, want %v", got, all)
	}
	for _, info := range infos {
		if want := slices.Index(order, info.Key); info.Size != int64(want) || info.ModTime.IsZero() {
			t.Fatalf("list: %+v, want size %d", info, want)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"a", []string{"a-b", "a.b", "a/b", "a/c/d", "ab"}},
		{"a/", []string{"a/b", "a/c/d"}},
		{"a/b", []string{"a/b"}},
		{"a/c/d", []string{"a/c/d"}},
		{"a/c/", []string{"a/c/d"}},
		{"sets/rm-1/1", []string{"sets/rm-1/1/set.zst", "sets/rm-1/10/set.zst"}},
		{"sets/rm-1/1/", []string{"sets/rm-1/1/set.zst"}},
		{"sets/rm-", []string{"sets/rm-1/1/set.zst", "sets/rm-1/10/set.zst", "sets/rm-1/2/set.zst", "sets/rm-2/1/set.zst"}},
		{"sets/rm-2/1/set.zst", []string{"sets/rm-2/1/set.zst"}},
		{"sets/rm-2/1/set.zst/", []string{}},
		{"sets/rm-3", []string{}},
		{"nope/", []string{}},
		{"z", []string{}},
	} {
		if got := keys(list(t, s, tc.prefix)); !slices.Equal(got, tc.want) {
			t.Errorf("list %q: %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

// invalidKeys are refused by every store.
var invalidKeys = []string{
	"", "/", "/a", "a/", "a//b", ".", "..", "./a", "../a", "a/.", "a/..", "a/./b", "a/../b", "../../etc/passwd",
	`a\b`, `..\a`, "a\x00b", "a/\xff", "a\nb", "a\x01b", "a/\x7f", "\tb",
}

func testInvalidKeys(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	put(t, s, "a/b", []byte("x"))
	for _, key := range invalidKeys {
		w, err := s.Create(ctx, key)
		if err == nil {
			w.Abort()
		}
		wantCode(t, err, rdsbackup.EINVALID, fmt.Sprintf("create %q", key))
		r, err := s.Open(ctx, key, 0, -1)
		if err == nil {
			r.Close()
		}
		wantCode(t, err, rdsbackup.EINVALID, fmt.Sprintf("open %q", key))
		_, err = s.Stat(ctx, key)
		wantCode(t, err, rdsbackup.EINVALID, fmt.Sprintf("stat %q", key))
		wantCode(t, s.Delete(ctx, key), rdsbackup.EINVALID, fmt.Sprintf("delete %q", key))
	}
	// A prefix no key can have either fails or finds nothing.
	for _, prefix := range []string{"/", "/a", "../", "a/../", "a//"} {
		infos, err := rdsbackup.CollectObjects(s.List(ctx, prefix))
		if err != nil {
			wantCode(t, err, rdsbackup.EINVALID, fmt.Sprintf("list %q", prefix))
		} else if len(infos) != 0 {
			t.Errorf("list %q: %v", prefix, keys(infos))
		}
	}
	wantData(t, s, "a/b", []byte("x"))
}

// testLarge streams a few MiB in chunks and reads it back whole and in
// ranges across chunk boundaries.
func testLarge(t *testing.T, s rdsbackup.ObjectStore) {
	const size, chunk = 4<<20 + 3, 64 << 10
	data := pattern(8, size)
	w, err := s.Create(t.Context(), "large")
	if err != nil {
		t.Fatal(err)
	}
	for c := range slices.Chunk(data, chunk) {
		if _, err := w.Write(c); err != nil {
			w.Abort()
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Stat(t.Context(), "large"); err != nil || info.Size != size {
		t.Fatalf("stat: %+v, %v", info, err)
	}
	wantData(t, s, "large", data)
	for _, rng := range [][2]int64{{chunk - 1, 2}, {3 * chunk, 5 * chunk}, {size - chunk - 7, -1}} {
		want := data[rng[0]:]
		if rng[1] >= 0 {
			want = want[:rng[1]]
		}
		if got := get(t, s, "large", rng[0], rng[1]); !bytes.Equal(got, want) {
			t.Fatalf("range %v: %s, want %s", rng, summary(got), summary(want))
		}
	}
}

func testConcurrentWriters(t *testing.T, s rdsbackup.ObjectStore) {
	const writers, size = 8, 256 << 10
	key := func(i int) string {
		if i%2 == 0 {
			return fmt.Sprintf("w/%d/obj", i) // new directories, made concurrently
		}
		return fmt.Sprintf("w/flat-%d", i)
	}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			w, err := s.Create(t.Context(), key(i))
			if err != nil {
				t.Errorf("create %s: %v", key(i), err)
				return
			}
			for c := range slices.Chunk(pattern(uint64(100+i), size), 4<<10) {
				if _, err := w.Write(c); err != nil {
					w.Abort()
					t.Errorf("write %s: %v", key(i), err)
					return
				}
			}
			if err := w.Commit(); err != nil {
				t.Errorf("commit %s: %v", key(i), err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var want []string
	for i := range writers {
		wantData(t, s, key(i), pattern(uint64(100+i), size))
		want = append(want, key(i))
	}
	slices.Sort(want)
	if got := keys(list(t, s, "w/")); !slices.Equal(got, want) {
		t.Fatalf("list: %v, want %v", got, want)
	}
}

// testFaultyWrite breaks writes mid-stream: neither a new object nor a
// replacement may appear, whether the caller aborts or tries to commit,
// and nothing of the attempt may show in List.
func testFaultyWrite(t *testing.T, s rdsbackup.ObjectStore) {
	old := pattern(9, 1000)
	put(t, s, "f/old", old)
	f := NewFaulty(s)
	f.Inject(Fault{Op: OpWrite, After: 100_000})
	data := pattern(10, 1<<20)

	for _, key := range []string{"f/new", "f/old"} {
		for _, commit := range []bool{false, true} {
			w, err := f.Create(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			var written int64
			for c := range slices.Chunk(data, 32<<10) {
				n, err := w.Write(c)
				written += int64(n)
				if err != nil {
					if !errors.Is(err, ErrInjected) {
						t.Fatalf("write error %v, want ErrInjected", err)
					}
					break
				}
			}
			if written != 100_000 {
				t.Fatalf("%d bytes written before the fault, want 100000", written)
			}
			if _, err := w.Write([]byte("more")); err == nil {
				t.Fatal("write after a failed write succeeded")
			}
			if commit {
				if err := w.Commit(); err == nil {
					t.Fatal("commit after a failed write succeeded")
				}
			} else if err := w.Abort(); err != nil {
				t.Fatalf("abort after a failed write: %v", err)
			}
		}
	}
	wantAbsent(t, s, "f/new")
	wantData(t, s, "f/old", old)
	infos := list(t, s, "")
	if len(infos) != 1 || infos[0].Key != "f/old" || infos[0].Size != int64(len(old)) {
		t.Fatalf("list after failed writes: %+v", infos)
	}
	wantNoLeftovers(t, s)

	// Once the fault is cleared, writing works again.
	f.Clear()
	put(t, f, "f/new", data)
	wantData(t, s, "f/new", data)
}

func testFaultyCommit(t *testing.T, s rdsbackup.ObjectStore) {
	f := NewFaulty(s)
	f.Inject(Fault{Op: OpCommit, Prefix: "m/", Times: 1, Err: io.ErrUnexpectedEOF})
	w, err := f.Create(t.Context(), "m/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("commit: %v, want the injected error", err)
	}
	wantAbsent(t, s, "m/manifest.json")
	if infos := list(t, s, ""); len(infos) != 0 {
		t.Fatalf("list after failed commit: %v", keys(infos))
	}
	wantNoLeftovers(t, s)
	// The fault fired its one time.
	put(t, f, "m/manifest.json", []byte("{}"))
	wantData(t, s, "m/manifest.json", []byte("{}"))
}

func testFaultyCreate(t *testing.T, s rdsbackup.ObjectStore) {
	f := NewFaulty(s)
	f.Inject(Fault{Op: OpCreate, Prefix: "x/"})
	if w, err := f.Create(t.Context(), "x/a"); !errors.Is(err, ErrInjected) {
		if err == nil {
			w.Abort()
		}
		t.Fatalf("create x/a: %v, want ErrInjected", err)
	}
	put(t, f, "y/a", []byte("y")) // other prefixes are unaffected
	wantAbsent(t, s, "x/a")
	f.Clear()
	put(t, f, "x/a", []byte("x"))
	wantData(t, s, "x/a", []byte("x"))
}

func testFaultyReads(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	data := pattern(11, 100)
	put(t, s, "k", data)
	f := NewFaulty(s)

	f.Inject(Fault{Op: OpOpen}, Fault{Op: OpStat}, Fault{Op: OpList}, Fault{Op: OpDelete})
	if r, err := f.Open(ctx, "k", 0, -1); !errors.Is(err, ErrInjected) {
		if err == nil {
			r.Close()
		}
		t.Fatalf("open: %v, want ErrInjected", err)
	}
	if _, err := f.Stat(ctx, "k"); !errors.Is(err, ErrInjected) {
		t.Fatalf("stat: %v, want ErrInjected", err)
	}
	if _, err := rdsbackup.CollectObjects(f.List(ctx, "")); !errors.Is(err, ErrInjected) {
		t.Fatalf("list: %v, want ErrInjected", err)
	}
	if err := f.Delete(ctx, "k"); !errors.Is(err, ErrInjected) {
		t.Fatalf("delete: %v, want ErrInjected", err)
	}
	wantData(t, s, "k", data) // the failed delete left it
	f.Clear()

	// A read that breaks after 30 bytes returns them, then the error.
	f.Inject(Fault{Op: OpRead, After: 30, Times: 1})
	r, err := f.Open(ctx, "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrInjected) || !bytes.Equal(got, data[:30]) {
		t.Fatalf("broken read: %s, %v; want 30 bytes and ErrInjected", summary(got), err)
	}
	if got := get(t, f, "k", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("read after the fault fired: %s", summary(got))
	}
	if err := f.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	wantAbsent(t, s, "k")
}

// testListStreamed lists more objects than an S3 page holds (1000), and
// checks what a streamed List promises: key order across pages, a loop
// that stops early, deleting what was listed during the loop, and a
// failure after some objects.
func testListStreamed(t *testing.T, s rdsbackup.ObjectStore) {
	const n = 1100
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("many/%d/%04d", i%3, i))
	}
	order := slices.Clone(want)
	slices.Sort(want)
	var wg sync.WaitGroup
	for part := range slices.Chunk(order, n/4+1) {
		wg.Go(func() {
			for _, key := range part {
				w, err := s.Create(t.Context(), key)
				if err != nil {
					t.Errorf("create %s: %v", key, err)
					return
				}
				w.Write([]byte(key))
				if err := w.Commit(); err != nil {
					t.Errorf("commit %s: %v", key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	put(t, s, "more", []byte("x"))
	if got := keys(list(t, s, "many/")); !slices.Equal(got, want) {
		t.Fatalf("list: %d keys, want %d in key order", len(got), len(want))
	}
	var want1 []string
	for _, key := range want {
		if strings.HasPrefix(key, "many/1/") {
			want1 = append(want1, key)
		}
	}
	if got := keys(list(t, s, "many/1/")); !slices.Equal(got, want1) {
		t.Fatalf("list many/1/: %d keys, want %d", len(got), len(want1))
	}

	// Stopping early: the loop body runs no more.
	seen := 0
	for _, err := range s.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if seen++; seen == 3 {
			break
		}
	}
	if seen != 3 {
		t.Fatalf("loop ran %d times", seen)
	}

	// A fault after 1050 objects: those, then the error.
	f := NewFaulty(s)
	f.Inject(Fault{Op: OpList, After: 1050, Times: 1})
	got := 0
	var failed error
	for _, err := range f.List(t.Context(), "many/") {
		if err != nil {
			failed = err
			break
		}
		got++
	}
	if got != 1050 || !errors.Is(failed, ErrInjected) {
		t.Fatalf("faulty list: %d objects, %v; want 1050 and ErrInjected", got, failed)
	}

	// Deleting each object as it is listed deletes them all.
	deleted := 0
	for info, err := range s.List(t.Context(), "many/") {
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(t.Context(), info.Key); err != nil {
			t.Fatal(err)
		}
		deleted++
	}
	if deleted != n {
		t.Fatalf("deleted %d while listing, want %d", deleted, n)
	}
	if got := keys(list(t, s, "")); !slices.Equal(got, []string{"more"}) {
		t.Fatalf("list after deleting: %v", got)
	}
}

// testKeyCharacters stores keys with every kind of character a key may
// hold, which URL-based stores must escape and sign correctly.
func testKeyCharacters(t *testing.T, s rdsbackup.ObjectStore) {
	ctx := t.Context()
	all := []string{
		"chars/ space and  two",
		"chars/!\"#$%&'()*+,-.:;<=>?@[]^_`{|}~",
		"chars/%2F%00%zz",
		"chars/plus+sign=equals&amp?q=1#frag",
		"chars/ünïcödé/日本語/😀",
		"chars/...dots.../-",
		"chars/trailing space ",
		"chars/a\u00a0nbsp",
	}
	for i, key := range all {
		put(t, s, key, pattern(uint64(200+i), 10+i))
	}
	want := slices.Clone(all)
	slices.Sort(want)
	if got := keys(list(t, s, "chars/")); !slices.Equal(got, want) {
		t.Fatalf("list: %q, want %q", got, want)
	}
	for i, key := range all {
		wantData(t, s, key, pattern(uint64(200+i), 10+i))
		if got := get(t, s, key, 2, 3); !bytes.Equal(got, pattern(uint64(200+i), 10+i)[2:5]) {
			t.Fatalf("range of %q: %s", key, summary(got))
		}
		if info, err := s.Stat(ctx, key); err != nil || info.Key != key || info.Size != int64(10+i) {
			t.Fatalf("stat %q: %+v, %v", key, info, err)
		}
	}
	// A prefix with special characters lists exactly its keys.
	if got := keys(list(t, s, "chars/plus+")); !slices.Equal(got, []string{"chars/plus+sign=equals&amp?q=1#frag"}) {
		t.Fatalf("list chars/plus+: %q", got)
	}
	for _, key := range all {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("delete %q: %v", key, err)
		}
		wantAbsent(t, s, key)
	}
}

package localfs_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunWith(t, func(t *testing.T) rdsbackup.ObjectStore {
		return localfs.New(t.TempDir())
	}, storagetest.Options{Leftovers: func(t *testing.T, s rdsbackup.ObjectStore) []string {
		entries, err := os.ReadDir(filepath.Join(s.(*localfs.FS).Root, ".tmp"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}})
}

func put(t *testing.T, s rdsbackup.ObjectStore, key string, data []byte) {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("commit %s: %v", key, err)
	}
}

func read(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tempFiles lists the names in the temp directory.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, ".tmp"))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if got := rdsbackup.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want %q", what, err, got, code)
	}
}

func TestTempFilesNotListed(t *testing.T) {
	root := t.TempDir()
	s := localfs.New(root)
	w, err := s.Create(t.Context(), "a/b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	// What a killed process leaves, besides the open writer's file.
	if err := os.WriteFile(filepath.Join(root, ".tmp", "ABANDONED"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := tempFiles(t, root); len(got) != 2 {
		t.Fatalf("temp files %v, want 2", got)
	}
	for _, prefix := range []string{"", ".", ".t", "a"} {
		if infos, err := rdsbackup.CollectObjects(s.List(t.Context(), prefix)); err != nil || len(infos) != 0 {
			t.Fatalf("list %q: %+v, %v", prefix, infos, err)
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := tempFiles(t, root); len(got) != 1 {
		t.Fatalf("temp files after abort %v, want only the abandoned one", got)
	}
	// Abort makes no directories: nothing but .tmp is left.
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("root holds %d entries after abort, want only .tmp", len(entries))
	}
}

func TestCleanTemp(t *testing.T) {
	root := t.TempDir()
	s := localfs.New(root)
	if err := s.CleanTemp(t.Context()); err != nil { // nothing to clean yet
		t.Fatal(err)
	}
	put(t, s, "keep/me", []byte("kept"))
	w, err := s.Create(t.Context(), "lost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, ".tmp", "odd-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanTemp(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := tempFiles(t, root); len(got) != 0 {
		t.Fatalf("temp files after CleanTemp: %v", got)
	}
	// The writer whose file vanished can still be aborted, not committed.
	if err := w.Commit(); err == nil {
		t.Fatal("commit after CleanTemp succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	infos, err := rdsbackup.CollectObjects(s.List(t.Context(), ""))
	if err != nil || len(infos) != 1 || infos[0].Key != "keep/me" {
		t.Fatalf("list after CleanTemp: %+v, %v", infos, err)
	}
}

func TestModes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "made", "root")
	s := localfs.New(root)
	put(t, s, "a/b/c", []byte("secret"))
	for name, want := range map[string]os.FileMode{
		"":      0o700 | os.ModeDir,
		".tmp":  0o700 | os.ModeDir,
		"a":     0o700 | os.ModeDir,
		"a/b":   0o700 | os.ModeDir,
		"a/b/c": 0o600,
	} {
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

func TestKeyEscape(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, dir := range []string{root, outside} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := localfs.New(root)
	ctx := t.Context()

	for _, key := range []string{"../outside/secret", "a/../../outside/secret", filepath.Join(outside, "secret"), ".tmp/x", ".tmp"} {
		_, err := s.Stat(ctx, key)
		wantCode(t, err, rdsbackup.EINVALID, "stat "+key)
		w, err := s.Create(ctx, key)
		if err == nil {
			w.Abort()
		}
		wantCode(t, err, rdsbackup.EINVALID, "create "+key)
		wantCode(t, s.Delete(ctx, key), rdsbackup.EINVALID, "delete "+key)
	}
	if _, err := rdsbackup.CollectObjects(s.List(ctx, ".tmp/")); rdsbackup.ErrorCode(err) != rdsbackup.EINVALID {
		t.Fatalf("list .tmp/: %v, want EINVALID", err)
	}

	// A symbolic link inside Root does not lead out of it either.
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Open(ctx, "link/secret", 0, -1); err == nil {
		r.Close()
		t.Fatal("open through a link out of root succeeded")
	}
	if w, err := s.Create(ctx, "link/planted"); err == nil {
		w.Write([]byte("x"))
		if err := w.Commit(); err == nil {
			t.Fatal("commit through a link out of root succeeded")
		}
	}
	s.Delete(ctx, "link/secret") // fails or does nothing; either way:
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Fatalf("delete through a link reached outside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); !os.IsNotExist(err) {
		t.Fatalf("a write through a link reached outside: %v", err)
	}
}

func TestConflicts(t *testing.T) {
	s := localfs.New(t.TempDir())
	put(t, s, "a", []byte("file"))
	put(t, s, "b/c", []byte("below"))
	for _, key := range []string{"a/x", "a/x/y", "b"} {
		w, err := s.Create(t.Context(), key)
		if err == nil {
			w.Abort()
		}
		wantCode(t, err, rdsbackup.ECONFLICT, "create "+key)
	}
	// Deleting the directory-like key "b" is deleting a missing object.
	if err := s.Delete(t.Context(), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), "b/c"); err != nil {
		t.Fatal(err)
	}
}

func TestDeletePrunesDirectories(t *testing.T) {
	root := t.TempDir()
	s := localfs.New(root)
	put(t, s, "a/b/c/d", []byte("1"))
	put(t, s, "a/x", []byte("2"))
	if err := s.Delete(t.Context(), "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !os.IsNotExist(err) {
		t.Fatalf("a/b left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), "a/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("root itself pruned: %v", err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 || entries[0].Name() != ".tmp" {
		t.Fatalf("root holds %v after deleting everything", entries)
	}
}

// An open reader keeps the version it opened, as POSIX files do.
func TestReaderKeepsVersion(t *testing.T) {
	s := localfs.New(t.TempDir())
	put(t, s, "k", []byte("old version"))
	r, err := s.Open(t.Context(), "k", 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", []byte("new"))
	if got := read(t, r); string(got) != "version" {
		t.Fatalf("reader sees %q after replace, want %q", got, "version")
	}
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
}

// `defer w.Abort()` is safe: Abort after Commit keeps the object.
func TestAbortAfterCommit(t *testing.T) {
	s := localfs.New(t.TempDir())
	w, err := s.Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("second commit succeeded")
	}
	r, err := s.Open(t.Context(), "k", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, r); string(got) != "data" {
		t.Fatalf("read %q", got)
	}
}

// A cancelled context stops the write: nothing is published.
func TestCancelledWrite(t *testing.T) {
	s := localfs.New(t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	w, err := s.Create(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := w.Write([]byte("after")); err == nil {
		t.Fatal("write after cancel succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Fatal("commit after cancel succeeded")
	}
	_, err = s.Stat(t.Context(), "k")
	wantCode(t, err, rdsbackup.ENOTFOUND, "stat k")
}

// A store whose root does not exist yet reads as empty.
func TestMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "none")
	s := localfs.New(root)
	ctx := t.Context()
	_, err := s.Stat(ctx, "k")
	wantCode(t, err, rdsbackup.ENOTFOUND, "stat")
	_, err = s.Open(ctx, "k", 0, -1)
	wantCode(t, err, rdsbackup.ENOTFOUND, "open")
	if infos, err := rdsbackup.CollectObjects(s.List(ctx, "")); err != nil || len(infos) != 0 {
		t.Fatalf("list: %v, %v", infos, err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanTemp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("reads made the root: %v", err)
	}
	if _, err := rdsbackup.CollectObjects(localfs.New("").List(ctx, "")); err == nil {
		t.Fatal("empty root accepted")
	}
}

// The reader is an io.ReaderAt and io.Seeker over its range, for
// http.ServeContent.
func TestReaderSeeks(t *testing.T) {
	s := localfs.New(t.TempDir())
	put(t, s, "k", []byte("0123456789"))
	r, err := s.Open(t.Context(), "k", 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		t.Fatal("reader is not an io.ReadSeeker")
	}
	if n, err := rs.Seek(0, io.SeekEnd); err != nil || n != 5 {
		t.Fatalf("seek end: %d, %v", n, err)
	}
	rs.Seek(1, io.SeekStart)
	if got, _ := io.ReadAll(rs); !bytes.Equal(got, []byte("3456")) {
		t.Fatalf("read after seek: %q", got)
	}
}

// Failures injected by storagetest.Faulty leave no temp file behind.
func TestFaultsLeaveNoTempFiles(t *testing.T) {
	root := t.TempDir()
	f := storagetest.NewFaulty(localfs.New(root))
	f.Inject(storagetest.Fault{Op: storagetest.OpWrite, After: 10}, storagetest.Fault{Op: storagetest.OpCommit, Prefix: "c"})
	for _, key := range []string{"w", "c"} {
		w, err := f.Create(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if key == "c" {
			f.Clear()
			f.Inject(storagetest.Fault{Op: storagetest.OpCommit})
		}
		w.Write(bytes.Repeat([]byte("x"), 100))
		if err := w.Commit(); err == nil {
			t.Fatalf("commit %s succeeded", key)
		}
	}
	if got := tempFiles(t, root); len(got) != 0 {
		t.Fatalf("temp files left: %v", got)
	}
}

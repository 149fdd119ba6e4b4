// Package localfs stores backup objects as files under a local directory.
//
// The object "sets/rm-a1/42/set.zst" is the file Root/sets/rm-a1/42/set.zst.
// Create writes to a temp file in Root/.tmp; Commit syncs it, renames it onto
// the key and syncs the directory, so readers and crashes see the old object
// or the new one, never part of one. A reader that opened the old object
// keeps reading it after a replacement. Objects are created 0600 and
// directories 0700, because backups hold the databases' data.
//
// Every path is resolved through an os.Root, so neither a key nor a symbolic
// link inside Root can reach a file outside it. Because a file and a
// directory cannot share a name, the keys "a" and "a/b" cannot both exist:
// creating one while the other exists fails with ECONFLICT.
package localfs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/rdsbackup/rdsbackup"
)

const (
	// tmpDir holds objects being written. It is at the top of Root, and keys
	// may not start with it, so List and Delete never meet a temp file and
	// CleanTemp has one directory to empty.
	tmpDir = ".tmp"

	// maxKeyLen is S3's limit, so that keys stay portable between stores.
	maxKeyLen = 1024
	// maxSegmentLen is the usual file name limit (NAME_MAX).
	maxSegmentLen = 255

	fileMode = 0o600
	dirMode  = 0o700
)

// FS is an rdsbackup.ObjectStore on the local filesystem. It holds no state
// besides Root, so it needs no Open or Close and is safe for concurrent use.
type FS struct {
	// Root is the directory holding the objects. Create makes it when it is
	// missing; until then the store reads as empty.
	Root string
}

var _ rdsbackup.ObjectStore = (*FS)(nil)

// New returns a store of the objects under root.
func New(root string) *FS { return &FS{Root: root} }

// Create starts writing an object. ctx bounds the whole write: once it is
// done, Write and Commit fail and the object is not published. Abort after
// Commit is a no-op, so `defer w.Abort()` is a safe way to clean up.
func (s *FS) Create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	w, err := s.create(ctx, key)
	return w, diskFull(err)
}

// diskFull classifies err as rdsbackup.ENOSPACE when the filesystem has no
// space (or quota) left for a write.
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return rdsbackup.NoSpace("backup storage", err)
	}
	return err
}

func (s *FS) create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := s.openRoot(true)
	if err != nil {
		return nil, err
	}
	// Fail before the caller streams gigabytes into an object that cannot
	// be published.
	if err := checkConflict(root, key); err != nil {
		root.Close()
		return nil, err
	}
	if err := root.Mkdir(tmpDir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		root.Close()
		return nil, fmt.Errorf("create temp directory: %w", err)
	}
	tmp := tmpDir + "/" + rand.Text()
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("create temp file: %w", err)
	}
	return &writer{ctx: ctx, root: root, key: key, tmp: tmp, f: f}, nil
}

// checkConflict reports ECONFLICT when a parent of key is a file or key is
// a directory.
func checkConflict(root *os.Root, key string) error {
	for i := 0; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		fi, err := root.Lstat(key[:i])
		if isNotExist(err) {
			return nil
		} else if err != nil {
			return fmt.Errorf("stat %s: %w", key[:i], err)
		} else if !fi.IsDir() {
			return rdsbackup.Errorf(rdsbackup.ECONFLICT, "object key %q: %q is an object", key, key[:i])
		}
	}
	if fi, err := root.Lstat(key); err == nil && fi.IsDir() {
		return rdsbackup.Errorf(rdsbackup.ECONFLICT, "object key %q: other objects are under it", key)
	}
	return nil
}

// writer writes one object to its temp file. Like any io.Writer it is not
// safe for concurrent use.
type writer struct {
	ctx  context.Context
	root *os.Root
	key  string
	tmp  string
	f    *os.File
	err  error // sticky: after a failed Write the object cannot commit
	done bool
}

var errDone = errors.New("object writer already committed or aborted")

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errDone
	} else if w.err != nil {
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.err = fmt.Errorf("write %s: %w", w.key, err)
		return 0, w.err
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.err = diskFull(fmt.Errorf("write %s: %w", w.key, err))
	}
	return n, w.err
}

func (w *writer) Commit() error {
	if w.done {
		return errDone
	}
	err := w.commit()
	if err != nil {
		w.discard()
	}
	w.done = true
	w.root.Close()
	return diskFull(err)
}

func (w *writer) commit() error {
	if w.err != nil {
		return w.err
	}
	if err := w.ctx.Err(); err != nil {
		return fmt.Errorf("commit %s: %w", w.key, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", w.key, err)
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", w.key, err)
	}

	dir := path.Dir(w.key)
	var changed []string
	for attempt := 1; ; attempt++ {
		changed, err = mkdirs(w.root, dir)
		if err == nil {
			err = w.root.Rename(w.tmp, w.key)
		}
		// A concurrent Delete may prune a directory between mkdirs and
		// Rename; make it again.
		if err == nil || !isNotExist(err) || attempt == 3 {
			break
		}
	}
	if err != nil {
		prune(w.root, dir)
		return fmt.Errorf("publish %s: %w", w.key, err)
	}
	// The rename, and each new directory, is durable once its parent is
	// synced. A failure here is still reported although the object is
	// already visible: it may not survive a crash.
	for _, d := range append([]string{dir}, changed...) {
		if err := syncDir(w.root, d); err != nil {
			return fmt.Errorf("sync directory of %s: %w", w.key, err)
		}
	}
	return nil
}

// Abort discards the object. It returns nil after Commit or Abort.
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	err := w.discard()
	w.root.Close()
	return err
}

func (w *writer) discard() error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	// CleanTemp may have removed it already.
	if err := w.root.Remove(w.tmp); err != nil && !isNotExist(err) {
		return fmt.Errorf("remove temp file of %s: %w", w.key, err)
	}
	return nil
}

// mkdirs makes dir and its missing parents, returning the parents of the
// directories it made: those must be synced for the new entries to last.
func mkdirs(root *os.Root, dir string) (changed []string, err error) {
	if dir == "." {
		return nil, nil
	}
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		err := root.Mkdir(dir[:i], dirMode)
		if err == nil {
			changed = append(changed, path.Dir(dir[:i]))
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	slices.Reverse(changed)
	return changed, nil
}

func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open reads length bytes of the object from offset; length < 0 reads to
// the end, and a range running past the end stops there. offset may equal
// the size (an empty read); an offset beyond the end is EINVALID, as an
// unsatisfiable HTTP range is, since it means the caller's idea of the
// object is wrong. The reader also implements io.ReaderAt and io.Seeker
// within the range.
func (s *FS) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "negative offset %d", offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := s.openRoot(false)
	if isNotExist(err) {
		return nil, notFound(key)
	} else if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(key)
	if isNotExist(err) {
		return nil, notFound(key)
	} else if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", key, err)
	} else if !fi.Mode().IsRegular() {
		f.Close()
		return nil, notFound(key)
	}
	size := fi.Size()
	if offset > size {
		f.Close()
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "offset %d is beyond the end of object %q (%d bytes)", offset, key, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return &reader{SectionReader: io.NewSectionReader(f, offset, n), f: f}, nil
}

type reader struct {
	*io.SectionReader
	f *os.File
}

func (r *reader) Close() error { return r.f.Close() }

func (s *FS) Stat(ctx context.Context, key string) (rdsbackup.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return rdsbackup.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return rdsbackup.ObjectInfo{}, err
	}
	root, err := s.openRoot(false)
	if isNotExist(err) {
		return rdsbackup.ObjectInfo{}, notFound(key)
	} else if err != nil {
		return rdsbackup.ObjectInfo{}, err
	}
	defer root.Close()
	fi, err := root.Stat(key)
	if isNotExist(err) || (err == nil && !fi.Mode().IsRegular()) {
		return rdsbackup.ObjectInfo{}, notFound(key)
	} else if err != nil {
		return rdsbackup.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return rdsbackup.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object, then the directories it leaves empty, up to
// but not including Root.
func (s *FS) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	root, err := s.openRoot(false)
	if isNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	defer root.Close()
	// A directory is not an object; leave it and what is under it alone.
	if fi, err := root.Lstat(key); isNotExist(err) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err := root.Remove(key); err != nil && !isNotExist(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	prune(root, path.Dir(key))
	return nil
}

// prune removes dir and its parents while they are empty. It is best
// effort: a directory left behind costs nothing.
func prune(root *os.Root, dir string) {
	for ; dir != "."; dir = path.Dir(dir) {
		if root.Remove(dir) != nil {
			return
		}
	}
}

// List walks only the directories that can hold keys with the prefix, one
// directory at a time, so it holds the entries of the directories on the
// current path and never the whole tree. Within a directory it visits the
// entries in the order of the keys under them (a directory "a" sorts as
// "a/"), which makes the walk's order key order: "a-b" < "a.b" < "a/b" <
// "ab". A prefix that no valid key can have is EINVALID, so that a
// malformed prefix is not mistaken for an empty store.
func (s *FS) List(ctx context.Context, prefix string) iter.Seq2[rdsbackup.ObjectInfo, error] {
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	if strings.ContainsAny(prefix, "\\\x00") || (start != "." && checkKey(start) != nil) {
		return rdsbackup.ListError(rdsbackup.Errorf(rdsbackup.EINVALID, "invalid object key prefix %q", prefix))
	}
	return func(yield func(rdsbackup.ObjectInfo, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(rdsbackup.ObjectInfo{}, err)
			return
		}
		root, err := s.openRoot(false)
		if isNotExist(err) {
			return
		} else if err != nil {
			yield(rdsbackup.ObjectInfo{}, err)
			return
		}
		defer root.Close()
		l := lister{ctx: ctx, root: root, prefix: prefix, yield: yield}
		if err := l.walk(start); err != nil && err != errStopped {
			yield(rdsbackup.ObjectInfo{}, fmt.Errorf("list %q: %w", prefix, err))
		}
	}
}

// errStopped ends a walk whose loop stopped asking.
var errStopped = errors.New("list stopped")

type lister struct {
	ctx    context.Context
	root   *os.Root
	prefix string
	yield  func(rdsbackup.ObjectInfo, error) bool
}

func (l *lister) walk(dir string) error {
	entries, err := fs.ReadDir(l.root.FS(), dir)
	if isNotExist(err) {
		// Missing, a file, or deleted during the walk.
		return nil
	} else if err != nil {
		return err
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(sortKey(a), sortKey(b)) })
	for _, e := range entries {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		p := e.Name()
		if dir != "." {
			p = dir + "/" + p
		}
		if e.IsDir() {
			if p == tmpDir || (!strings.HasPrefix(p+"/", l.prefix) && !strings.HasPrefix(l.prefix, p+"/")) {
				continue
			}
			if err := l.walk(p); err != nil {
				return err
			}
			continue
		}
		// Skip what Open would refuse: links, stray files with odd names.
		if !e.Type().IsRegular() || !strings.HasPrefix(p, l.prefix) || checkKey(p) != nil {
			continue
		}
		fi, err := e.Info()
		if isNotExist(err) {
			continue
		} else if err != nil {
			return err
		}
		if !l.yield(rdsbackup.ObjectInfo{Key: p, Size: fi.Size(), ModTime: fi.ModTime()}, nil) {
			return errStopped
		}
	}
	return nil
}

// CleanTemp removes every temp file: what writers killed before Commit or
// Abort left behind. Call it when no write is in progress, such as at
// start; a write in progress would fail at Commit.
func (s *FS) CleanTemp(ctx context.Context) error {
	root, err := s.openRoot(false)
	if isNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), tmpDir)
	if isNotExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("clean temp files: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := root.RemoveAll(tmpDir + "/" + e.Name()); err != nil {
			return fmt.Errorf("clean temp files: %w", err)
		}
	}
	return nil
}

// openRoot opens Root, making it first if create is set. Callers close it.
func (s *FS) openRoot(create bool) (*os.Root, error) {
	if s.Root == "" {
		return nil, errors.New("localfs: no root directory")
	}
	if create {
		if err := os.MkdirAll(s.Root, dirMode); err != nil {
			return nil, fmt.Errorf("create root directory: %w", err)
		}
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return nil, fmt.Errorf("open root directory: %w", err)
	}
	return root, nil
}

// checkKey refuses keys that could leave Root, collide with temp files, or
// not be stored elsewhere (S3 wants UTF-8 and at most 1024 bytes).
func checkKey(key string) error {
	if why := keyProblem(key); why != "" {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "invalid object key %q: %s", key, why)
	}
	return nil
}

func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > maxKeyLen:
		return fmt.Sprintf("longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key):
		return "not UTF-8"
	case strings.ContainsAny(key, "\\\x00"):
		return "contains a backslash or NUL"
	case strings.ContainsFunc(key, isControl):
		// S3 lists keys in XML, which cannot carry most of them.
		return "contains a control character"
	case key[0] == '/':
		return "absolute"
	}
	for i, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return "empty segment"
		case seg == "." || seg == "..":
			return "dot segment"
		case len(seg) > maxSegmentLen:
			return fmt.Sprintf("segment longer than %d bytes", maxSegmentLen)
		case i == 0 && seg == tmpDir:
			return "reserved for temp files"
		}
	}
	return ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func notFound(key string) error {
	return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "object %q not found", key)
}

// isNotExist also counts ENOTDIR: "a/b" does not exist when "a" is a file.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

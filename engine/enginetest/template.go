package enginetest

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// mariadb-install-db and initdb take one to three seconds each, far longer
// than starting the server. Under Main, the first server of each kind
// initializes a template data directory once, and every server of the test
// binary starts from a copy of it (tens of milliseconds). Main removes the
// templates at the end; without Main, each server initializes its own data
// directory, so nothing is left behind.

// template is one kind's template data directory.
type template struct {
	mu   sync.Mutex
	root string // directory holding the template and its init log
	dir  string // the template data directory, once made
}

var templates struct {
	mariadb, postgres template
}

// initDataDir fills the empty data directory dst (owned by acct when set)
// with a fresh initialized one. init initializes the directory it is given;
// it runs in a directory of its own (its first argument holds logs).
func (tp *template) initDataDir(kind, dst string, acct *account, init func(root, dir string) error) error {
	if !shared.mainCalled.Load() {
		return init(filepath.Dir(dst), dst)
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.dir == "" {
		root, err := makeRoot(kind+"-template", acct)
		if err != nil {
			return err
		}
		dir := filepath.Join(root, "data")
		if err := makeDataDir(dir, acct); err != nil {
			os.RemoveAll(root)
			return err
		}
		if err := init(root, dir); err != nil {
			os.RemoveAll(root)
			return err
		}
		tp.root, tp.dir = root, dir
	}
	if err := copyTree(tp.dir, dst, acct); err != nil {
		return fmt.Errorf("copy template data directory: %w", err)
	}
	return nil
}

// remove deletes the template.
func (tp *template) remove() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.root != "" {
		os.RemoveAll(tp.root)
		tp.root, tp.dir = "", ""
	}
}

// makeDataDir creates an empty data directory, 0700, owned by acct when set.
func makeDataDir(dir string, acct *account) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if acct != nil {
		return os.Chown(dir, int(acct.uid), int(acct.gid))
	}
	return nil
}

// copyTree copies the contents of directory src into the existing directory
// dst, keeping permissions and symbolic links, owned by acct when set.
func copyTree(src, dst string, acct *account) error {
	chown := func(p string) error {
		if acct == nil {
			return nil
		}
		return os.Lchown(p, int(acct.uid), int(acct.gid))
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, pipes: not part of a stopped data directory
		}
		return chown(target)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm) // not reduced by the umask
}

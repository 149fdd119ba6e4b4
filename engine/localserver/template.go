package localserver

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Template is an initialized data directory that servers of one kind start
// from. mariadb-install-db and initdb take one to three seconds each, far
// longer than starting the server: the first server started with a Template
// initializes it (in a new directory in TempDir), and every server started
// with it later copies it (tens of milliseconds).
//
// Its zero value is ready to use, and it is safe for concurrent use. Use one
// Template per kind of server (initialization does not depend on the other
// options: passwords, settings and ports are applied to each copy), and
// Remove it when done: servers started from it do not need it any more.
type Template struct {
	mu   sync.Mutex
	kind string // "mariadb" or "postgres", once made
	root string // directory holding the template and its init log
	dir  string // the template data directory, once made
}

// Dir returns the directory holding the template, or "" before it is made
// and after Remove.
func (tp *Template) Dir() string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.root
}

// Remove deletes the template. A later start with it makes a new one.
func (tp *Template) Remove() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.root != "" {
		os.RemoveAll(tp.root)
		tp.root, tp.dir, tp.kind = "", "", ""
	}
}

// initDataDir fills the empty data directory dst (owned by acct when set)
// with a freshly initialized one: a copy of the template, made by init on
// first use, or without a template (tp nil) made by init in place. init
// initializes the directory it is given; its first argument is a directory
// for its logs.
func (tp *Template) initDataDir(ctx context.Context, prefix, kind, dst string, acct *account, init func(ctx context.Context, root, dir string) error) error {
	if tp == nil {
		return init(ctx, filepath.Dir(dst), dst)
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.dir != "" && tp.kind != kind {
		return fmt.Errorf("localserver: the template holds a %s data directory, not a %s one", tp.kind, kind)
	}
	if tp.dir == "" {
		root, err := makeRoot(prefix, kind+"-template", acct)
		if err != nil {
			return err
		}
		dir := filepath.Join(root, "data")
		if err := makeDataDir(dir, acct); err != nil {
			os.RemoveAll(root)
			return err
		}
		if err := init(ctx, root, dir); err != nil {
			os.RemoveAll(root)
			return err
		}
		tp.root, tp.dir, tp.kind = root, dir, kind
	}
	if err := copyTree(tp.dir, dst, acct); err != nil {
		return fmt.Errorf("copy template data directory: %w", err)
	}
	return nil
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

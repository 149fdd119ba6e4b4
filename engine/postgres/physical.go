package postgres

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

// RestorePhysical unpacks the tar stream of a physical backup (the
// "instance" part) into dataDir, which must be empty or not exist yet (its
// parent must). Entries may not leave dataDir: absolute names, ".."
// components, writing through a symbolic link and hard links are refused;
// file and directory modes and modification times are kept. When running
// as root, everything unpacked gets dataDir's owner, so a directory made
// for the postgres user needs no chown afterwards; dataDir gets mode 0700.
// On failure, what was unpacked is removed again.
//
// Afterwards start postgres of the same major version on dataDir (see the
// package documentation): it replays the WAL in pg_wal up to the end of the
// backup and opens.
func (e *Engine) RestorePhysical(ctx context.Context, tarStream io.Reader, dataDir string) error {
	root, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	madeRoot, err := prepareEmptyDir(root)
	if err != nil {
		return err
	}
	if err := e.unpack(ctx, tarStream, root); err != nil {
		if madeRoot {
			os.RemoveAll(root)
		} else {
			entries, _ := os.ReadDir(root)
			for _, ent := range entries {
				os.RemoveAll(filepath.Join(root, ent.Name()))
			}
		}
		return err
	}
	return nil
}

// unpack extracts the tar stream into the empty directory root.
func (e *Engine) unpack(ctx context.Context, tarStream io.Reader, root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return err
	}
	x := extractor{root: root, uid: -1, gid: -1}
	if uid, gid, ok := fileOwner(fi); ok && os.Geteuid() == 0 {
		x.uid, x.gid = uid, gid
	}
	tr := tar.NewReader(rdsbackup.ContextReader(ctx, tarStream))
	files := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("restore physical backup: %w", ctx.Err())
			}
			return fmt.Errorf("read the backup's tar stream: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("restore physical backup: %w", ctx.Err())
			}
			return err
		}
		files++
	}
	if files == 0 {
		return errors.New("the physical backup is empty")
	}
	if _, err := os.Stat(filepath.Join(root, "PG_VERSION")); err != nil {
		return errors.New("the tar stream is not a PostgreSQL data directory: it has no PG_VERSION")
	}
	if err := os.Chmod(root, 0o700); err != nil {
		return err
	}
	e.logger().Info("physical backup unpacked", "dir", root, "entries", files)
	return nil
}

// prepareEmptyDir checks that dir is an empty directory, or creates it (mode
// 0700) when it does not exist.
func prepareEmptyDir(dir string) (made bool, err error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, 0o700); err != nil {
			return false, fmt.Errorf("create the data directory: %w", err)
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return false, fmt.Errorf("the data directory %s is not empty", dir)
	}
	return false, nil
}

type extractor struct {
	root     string
	uid, gid int // owner to give entries; -1: leave
}

// safeName checks an entry's name and returns it as a relative slash path;
// "" for the root itself.
func safeName(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("unsafe entry %q in the backup", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("unsafe entry %q in the backup", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

// checkParents makes sure no directory between the root and rel is a
// symbolic link (which would let an entry write outside the root), creating
// missing ones.
func (x *extractor) checkParents(rel string) error {
	dir := x.root
	parts := strings.Split(rel, "/")
	for _, p := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, p)
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(dir, 0o700); err != nil {
				return err
			}
			if err := x.chown(dir); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("unsafe entry %q in the backup: it goes through a symbolic link", rel)
		case !fi.IsDir():
			return fmt.Errorf("unsafe entry %q in the backup: %s is not a directory", rel, p)
		}
	}
	return nil
}

func (x *extractor) chown(p string) error {
	if x.uid < 0 {
		return nil
	}
	return os.Lchown(p, x.uid, x.gid)
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := safeName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil // the root: its mode is set at the end
	}
	if err := x.checkParents(rel); err != nil {
		return err
	}
	target := filepath.Join(x.root, filepath.FromSlash(rel))
	mode := fs.FileMode(hdr.Mode).Perm()
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(target)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		case err != nil:
			return err
		case !fi.IsDir():
			return fmt.Errorf("unsafe entry %q in the backup: it exists and is not a directory", rel)
		}
		if err := os.Chmod(target, mode); err != nil {
			return err
		}
		if err := x.chown(target); err != nil {
			return err
		}
		// Directory times would change as entries are added; not kept.
	case tar.TypeReg:
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", rel, err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", rel, err)
		}
		if err := os.Chmod(target, mode); err != nil {
			return err
		}
		if err := x.chown(target); err != nil {
			return err
		}
		if !hdr.ModTime.IsZero() {
			if err := os.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
				return err
			}
		}
	case tar.TypeSymlink:
		// pg_tblspc/<oid> links to a tablespace's location: allowed, but
		// nothing is ever written through a link (checkParents).
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return fmt.Errorf("unpack %s: %w", rel, err)
		}
		if err := x.chown(target); err != nil {
			return err
		}
	case tar.TypeXGlobalHeader:
	default:
		return fmt.Errorf("unsupported entry %q (type %q) in the backup", rel, hdr.Typeflag)
	}
	return nil
}

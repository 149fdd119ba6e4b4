//go:build unix

package localserver

import (
	"os"
	"path/filepath"
	"syscall"
)

const supported = true

// traversableBy reports whether acct can reach dir, i.e. may search every
// directory from the root down to dir.
func traversableBy(dir string, acct *account) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		mode := fi.Mode().Perm()
		var x bool
		switch {
		case st.Uid == acct.uid:
			x = mode&0o100 != 0
		case st.Gid == acct.gid:
			x = mode&0o010 != 0
		default:
			x = mode&0o001 != 0
		}
		if !x {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

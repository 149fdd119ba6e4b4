//go:build !unix

package postgres

import (
	"io/fs"
	"os/exec"
)

// setProcessGroup leaves cmd as it is: without process groups, cancelling
// kills the tool alone (exec.CommandContext's default).
func setProcessGroup(cmd *exec.Cmd) {}

// fileOwner is not known here.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

//go:build !unix

package postgres

import (
	"io/fs"
	"os/exec"
)

// runAs is not possible here: the tool runs as rdsbackup.
func runAs(cmd *exec.Cmd, uid, gid int) {}

// fileOwner is not known here.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }

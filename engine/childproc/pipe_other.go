//go:build !linux

package childproc

import "syscall"

// Only Linux lets a pipe's buffer be enlarged; elsewhere the pipes keep
// their size and are not paced.
func setPipeSize(rc syscall.RawConn, size int) bool { return false }

func queued(rc syscall.RawConn) int { return 0 }

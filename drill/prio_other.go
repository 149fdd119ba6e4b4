//go:build !linux

package drill

import "syscall"

// lowerPriority sets nice 19 on pid (no I/O priority outside Linux).
func lowerPriority(pid int) error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, pid, 19)
}

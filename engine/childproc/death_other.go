//go:build unix && !linux

package childproc

import "syscall"

// setDeathSignal: only Linux has a parent-death signal; elsewhere a tool
// left by a killed rdsbackup is killed by the next start (Registry).
func setDeathSignal(attr *syscall.SysProcAttr) {}

package s3test

import "syscall"

// sysProcAttr puts the server in its own process group and kills it when
// the test binary dies, so that no server outlives a crashed test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

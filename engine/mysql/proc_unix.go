//go:build unix

package mysql

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup makes the tool the leader of a new process group and
// has a done context kill the whole group, so that nothing the tool started
// outlives it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			if err == syscall.ESRCH {
				return os.ErrProcessDone
			}
			return err
		}
		return nil
	}
}

// killProcessGroup SIGKILLs the tool's process group. It must be called
// before Wait, while the leader's pid cannot have been reused.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

//go:build unix

package childproc

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup makes the tool the leader of a new process group, has a
// done context kill the whole group, and (on Linux) has the kernel kill the
// tool when rdsbackup dies, however it dies.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
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

// killProcessGroup SIGKILLs the tool's process group.
func killProcessGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

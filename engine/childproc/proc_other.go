//go:build !unix

package childproc

import "os/exec"

// setProcessGroup: without process groups a done context kills the tool
// alone (the exec package's default).
func setProcessGroup(cmd *exec.Cmd) {}

// killProcessGroup kills the tool.
func killProcessGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}

package childproc

import "syscall"

// setDeathSignal has the kernel SIGKILL the tool when the thread that
// started it exits, which for a Go program is when the process dies: the
// runtime ends a thread only when a goroutine locked to it exits, and
// nothing here starts tools from such a goroutine. A SIGKILL of rdsbackup
// thus takes its tools with it, and their connections and transactions on
// the database server end.
func setDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }

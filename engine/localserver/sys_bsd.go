//go:build unix && !linux

package localserver

import (
	"os"
	"syscall"
	"time"
)

// procAttr puts the child in its own process group and drops to acct when it
// is set. Outside Linux there is no parent-death signal: a crashed caller
// leaves its servers running.
func procAttr(acct *account) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if acct != nil {
		a.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	return a
}

// killTree SIGKILLs the process and its process group.
func killTree(p *os.Process) []int {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = p.Kill()
	return nil
}

func waitGone(pids []int, timeout time.Duration) bool { return true }

//go:build !unix

package localserver

import (
	"os"
	"syscall"
	"time"
)

// supported is false where the servers cannot be started: StartMariaDB and
// StartPostgres return an error.
const supported = false

func procAttr(acct *account) *syscall.SysProcAttr { return nil }

func killTree(p *os.Process) []int {
	_ = p.Kill()
	return nil
}

func waitGone(pids []int, timeout time.Duration) bool { return true }

func traversableBy(dir string, acct *account) bool { return false }

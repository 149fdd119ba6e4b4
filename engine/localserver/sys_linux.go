//go:build linux

package localserver

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// procAttr puts the child in its own process group, drops to acct when it is
// set, and asks the kernel to SIGKILL the child if the process that started
// it dies.
//
// Pdeathsig fires when the thread that started the child exits, not the
// process (https://go.dev/issue/27505). The Go runtime only retires threads
// whose goroutine exited while locked to it (runtime.LockOSThread), which
// nothing here does; callers must not start servers from such a goroutine.
// The runtime sets Pdeathsig after changing credentials, which would
// otherwise clear it.
func procAttr(acct *account) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if acct != nil {
		a.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	return a
}

// killTree SIGKILLs the process, its process group and every descendant, and
// returns the descendants' pids. PostgreSQL backends call setsid, so they are
// not in the postmaster's group; the postmaster is stopped first so that it
// cannot fork while its children are collected.
func killTree(p *os.Process) []int {
	_ = syscall.Kill(p.Pid, syscall.SIGSTOP)
	kids := descendants(p.Pid)
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return kids
}

// waitGone waits until none of pids is alive (a zombie counts as gone).
func waitGone(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, pid := range pids {
			if _, state, ok := procStat(pid); ok && state != 'Z' && state != 'X' {
				alive = true
				break
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// descendants lists the pids below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// procStat returns the parent pid and state letter of pid.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// "pid (comm) S ppid ...": comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, 0, false
	}
	return ppid, f[0][0], true
}

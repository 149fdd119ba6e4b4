package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procCPU is the CPU time used by pid and its living children (the
// backends of PostgreSQL), plus what its exited children used, from
// /proc/<pid>/stat; 0 when it cannot be read.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	total := time.Duration(0)
	self, ok := readStat(pid)
	if !ok {
		return 0
	}
	total += tickDur(self[11] + self[12] + self[13] + self[14]) // utime stime cutime cstime
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || p == pid {
			continue
		}
		if f, ok := readStat(p); ok && f[1] == int64(pid) {
			total += tickDur(f[11] + f[12])
		}
	}
	return total
}

// ownCPU is the CPU time of this process alone (the load generator and,
// when archiving, the supervisor), and that of its living children named
// comm (the streaming tool).
func ownCPU(comm string) (self, child time.Duration) {
	pid := os.Getpid()
	if f, ok := readStat(pid); ok {
		self = tickDur(f[11] + f[12])
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		name, _ := os.ReadFile(filepath.Join(d, "comm"))
		if strings.TrimSpace(string(name)) != comm {
			continue
		}
		if f, ok := readStat(p); ok && f[1] == int64(pid) {
			child += tickDur(f[11] + f[12])
		}
	}
	return self, child
}

// readStat returns the numeric fields of /proc/<pid>/stat after the
// command name, from the state (index 0 is the state, as 0) on: ppid at 1,
// utime at 11, stime 12, cutime 13, cstime 14.
func readStat(pid int) ([]int64, bool) {
	buf, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(buf)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	fields := strings.Fields(s[i+1:])
	out := make([]int64, len(fields))
	for j, f := range fields[1:] {
		out[j+1], _ = strconv.ParseInt(f, 10, 64)
	}
	return out, len(out) > 14
}

// tickDur converts clock ticks (USER_HZ, 100 on Linux) to a duration.
func tickDur(t int64) time.Duration { return time.Duration(t) * 10 * time.Millisecond }

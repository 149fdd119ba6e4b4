package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// procTimes are a process's CPU times from /proc/<pid>/stat: its own
// (every thread) and those of its children it has waited for.
type procTimes struct {
	Self, Children time.Duration
	ok             bool
}

func readTimes(pid int) procTimes {
	buf, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}
	}
	i := bytes.LastIndexByte(buf, ')') // the command name may hold spaces
	if i < 0 {
		return procTimes{}
	}
	f := strings.Fields(string(buf[i+1:]))
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
	if len(f) < 15 {
		return procTimes{}
	}
	n := func(k int) time.Duration {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		return time.Duration(v) * time.Second / userHZ
	}
	return procTimes{Self: n(11) + n(12), Children: n(13) + n(14), ok: true}
}

func (a procTimes) sub(b procTimes) procTimes {
	return procTimes{Self: a.Self - b.Self, Children: a.Children - b.Children, ok: a.ok && b.ok}
}

// readMem returns VmRSS and VmHWM of pid in bytes (0 when gone).
func readMem(pid int) (rss, hwm int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			*dst = kb << 10
		}
	}
	return rss, hwm
}

// readSyscalls returns the read and write system calls pid's live threads
// have made (syscr, syscw of /proc/<pid>/task/*/io; /proc/<pid>/io would
// also count the children it has reaped, such as the dump tools).
func readSyscalls(pid int) (r, w int64, ok bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/io", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch k {
			case "syscr":
				r += n
			case "syscw":
				w += n
			}
		}
	}
	return r, w, true
}

// sampler reads a process's VmRSS, VmHWM and CPU times every interval,
// keeping the peak RSS and the last readings (the last before the process
// exits, for one that does).
type sampler struct {
	pid  int
	stop chan struct{}
	wg   sync.WaitGroup

	mu        sync.Mutex
	peakRSS   int64
	lastHWM   int64
	lastTimes procTimes
	syscr     int64
	syscw     int64
	samples   int
}

func startSampler(pid int, interval time.Duration) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{})}
	s.sample()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	rss, hwm := readMem(s.pid)
	times := readTimes(s.pid)
	sr, sw, iok := readSyscalls(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rss == 0 && hwm == 0 {
		return // gone (or a zombie): keep the last readings
	}
	s.samples++
	s.peakRSS = max(s.peakRSS, rss)
	s.lastHWM = max(s.lastHWM, hwm)
	if times.ok {
		s.lastTimes = times
	}
	if iok {
		s.syscr, s.syscw = sr, sw
	}
}

// syscalls returns the last read and write system call counts sampled.
func (s *sampler) syscalls() (r, w int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syscr, s.syscw
}

// finish stops sampling (after one last sample) and returns the peak VmRSS
// sampled, the last VmHWM and the last CPU times.
func (s *sampler) finish() (peakRSS, hwm int64, times procTimes) {
	s.sample()
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakRSS, s.lastHWM, s.lastTimes
}

// treeCPU is the CPU time used so far by process pid and all its
// descendants: for each live process of the tree, its own time and that of
// its children it has waited for (which holds the exited ones). A database
// server is a tree: PostgreSQL's backends are the postmaster's children.
func treeCPU(pid int) time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		buf, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(buf, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(buf[i+1:]))
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	in := func(p int) bool {
		for depth := 0; p > 1 && depth < 64; depth++ {
			if p == pid {
				return true
			}
			p = parent[p]
		}
		return false
	}
	var total time.Duration
	for p := range parent {
		if in(p) {
			t := readTimes(p)
			total += t.Self + t.Children
		}
	}
	return total
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

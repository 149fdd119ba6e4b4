package drill

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// lowerPriority sets nice 19 and the idle I/O class on every thread of
// pid (Linux applies both per thread; threads and processes started later
// inherit them).
func lowerPriority(pid int) error {
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "[0-9]*"))
	if len(tasks) == 0 {
		tasks = []string{strconv.Itoa(pid)}
	}
	var first error
	for _, t := range tasks {
		tid, err := strconv.Atoi(filepath.Base(t))
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19); err != nil && first == nil {
			first = os.NewSyscallError("setpriority", err)
		}
		// ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13)
		if _, _, e := syscall.Syscall(syscall.SYS_IOPRIO_SET, 1, uintptr(tid), 3<<13); e != 0 && first == nil {
			first = os.NewSyscallError("ioprio_set", e)
		}
	}
	return first
}

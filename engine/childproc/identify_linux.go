package childproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// identify reads what tells a process apart from any later one with the
// same pid: its start time after boot and the boot's id.
func identify(pid int) (process, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return process{}, err
	}
	// The command name, field 2, is in parentheses and may hold spaces
	// and parentheses itself: the fields after it follow the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return process{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return process{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return process{}, fmt.Errorf("malformed /proc/%d/stat: %v", pid, err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return process{}, err
	}
	return process{record: record{PID: pid, StartTime: start, BootID: strings.TrimSpace(string(boot))}, zombie: fields[0] == "Z"}, nil
}

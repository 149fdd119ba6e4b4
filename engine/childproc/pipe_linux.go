package childproc

import (
	"syscall"
	"unsafe"
)

// fSetPipeSz is F_SETPIPE_SZ (F_LINUX_SPECIFIC_BASE + 7, the same on every
// architecture), which package syscall does not define.
const fSetPipeSz = 1031

// setPipeSize sets the pipe's buffer to at least size bytes. It fails
// beyond /proc/sys/fs/pipe-max-size (1 MiB by default) unless privileged,
// and once the user's pipes hold more than fs/pipe-user-pages-soft.
func setPipeSize(rc syscall.RawConn, size int) bool {
	ok := false
	err := rc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(size))
		ok = errno == 0 && int(r) >= size
	})
	return err == nil && ok
}

// queued returns the bytes waiting in the pipe (FIONREAD, valid on either
// end), or 0 when they cannot be known: the caller then just writes.
func queued(rc syscall.RawConn) int {
	var n int32
	err := rc.Control(func(fd uintptr) {
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
		if errno != 0 {
			n = 0
		}
	})
	if err != nil {
		return 0
	}
	return int(n)
}

package childproc

import (
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// PipeSize is the buffer asked for the pipes between rdsbackup and a tool
// (Linux F_SETPIPE_SZ; the default is 64 KiB). The dump and client tools
// write and read 4 KiB at a time; through a 64 KiB pipe the Go side is
// woken for nearly each of those chunks (a netpoll wake-up, a futex and a
// system call each), which cost a MariaDB restore more CPU than
// decompressing. With a 1 MiB pipe it can wait for large chunks instead.
const PipeSize = 1 << 20

// paceDelay is how long a paced reader waits for its pipe to fill after a
// short read, and a paced writer for its pipe to drain. At the tools'
// rates (≤ 300 MB/s) a millisecond is well under what PipeSize holds, so
// the tool never waits for us.
const paceDelay = time.Millisecond

// maxPaceWaits bounds the waits of one paced write. A tool that has
// stopped reading, or exited leaving bytes in the pipe (which then never
// drain), must meet a plain blocking write, which the kernel fails with
// EPIPE once no reader is left (and which a killed tool thus ends), not an
// endless wait.
const maxPaceWaits = 50

// StdoutPipe is cmd.StdoutPipe with a PipeSize buffer, read in large
// chunks: after a read that found little in the pipe, the next one first
// waits paceDelay. Where the buffer cannot be enlarged (not Linux, or over
// the user's pipe limits) it is cmd.StdoutPipe. Like the latter it is
// closed by cmd.Wait, so all reads must be done before Wait is called.
func StdoutPipe(cmd *exec.Cmd) (io.ReadCloser, error) {
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f, ok := r.(*os.File)
	if !ok {
		return r, nil
	}
	rc, err := f.SyscallConn()
	if err != nil || !setPipeSize(rc, PipeSize) {
		return r, nil
	}
	return &pacedReader{f: f}, nil
}

type pacedReader struct {
	f     *os.File
	short bool // the last read got less than a quarter of what it could
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.short {
		time.Sleep(paceDelay)
	}
	n, err := p.f.Read(b)
	p.short = err == nil && n < min(len(b), PipeSize)/4
	return n, err
}

func (p *pacedReader) Close() error { return p.f.Close() }

// StdinPipe is cmd.StdinPipe with a PipeSize buffer, written in large
// chunks: a write first waits, up to maxPaceWaits times paceDelay, while
// the pipe is more than half full. Where the buffer cannot be enlarged it
// is cmd.StdinPipe. As with the latter, the caller closes it to signal
// the end of the input; cmd.Wait closes it too.
func StdinPipe(cmd *exec.Cmd) (io.WriteCloser, error) {
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	f, ok := w.(*os.File)
	if !ok {
		return w, nil
	}
	rc, err := f.SyscallConn()
	if err != nil || !setPipeSize(rc, PipeSize) {
		return w, nil
	}
	return &pacedWriter{f: f, rc: rc}, nil
}

type pacedWriter struct {
	f  *os.File
	rc syscall.RawConn
}

func (p *pacedWriter) Write(b []byte) (int, error) {
	for i := 0; i < maxPaceWaits && queued(p.rc) > PipeSize/2; i++ {
		time.Sleep(paceDelay)
	}
	return p.f.Write(b)
}

func (p *pacedWriter) Close() error { return p.f.Close() }

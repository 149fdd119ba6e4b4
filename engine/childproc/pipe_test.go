package childproc

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tool prepares the test binary as a helper tool (see helper).
func tool(ctx context.Context, t *testing.T, mode string, size int64, chunk int, pause time.Duration) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := Command(ctx, exe, "-test.run=^$", strconv.FormatInt(size, 10), strconv.Itoa(chunk), strconv.FormatInt(pause.Microseconds(), 10))
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// patternCRC is the length and CRC64 of the first size bytes of pattern.
func patternCRC(size int64) string {
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		for i := range n {
			buf[i] = pattern(off + i)
		}
		h.Write(buf[:n])
		off += n
	}
	return fmt.Sprintf("%d %d", size, h.Sum64())
}

// wantPaced checks that on Linux the pipe helpers did enlarge the pipe:
// otherwise the tests below would only test os/exec.
func wantPaced(t *testing.T, v any) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	switch v.(type) {
	case *pacedReader, *pacedWriter:
	default:
		t.Fatalf("got a %T, not a paced pipe: is F_SETPIPE_SZ refused here?", v)
	}
}

// within runs f, failing the test if it has not returned after d: the
// point of several tests is that nothing hangs.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s still blocked after %v", what, d)
	}
}

func TestStdoutPipeGetsEverythingOfSlowWriter(t *testing.T) {
	const size = 3<<20 + 12345
	for _, c := range []struct {
		name          string
		chunk, bufLen int
		pause         time.Duration
	}{
		{"4KiB writes, large reads", 4096, 256 << 10, 50 * time.Microsecond},
		{"odd writes, odd small reads", 3001, 1000, 20 * time.Microsecond},
		{"large writes, large reads", 300 << 10, 256 << 10, time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := tool(t.Context(), t, "write", size, c.chunk, c.pause)
			out, err := StdoutPipe(cmd)
			if err != nil {
				t.Fatal(err)
			}
			wantPaced(t, out)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			h := crc64.New(crc64.MakeTable(crc64.ECMA))
			n, err := io.CopyBuffer(struct{ io.Writer }{h}, out, make([]byte, c.bufLen))
			if err != nil {
				t.Errorf("read: %v", err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("wait: %v", err)
			}
			if got, want := fmt.Sprintf("%d %d", n, h.Sum64()), patternCRC(size); got != want {
				t.Errorf("read %s (length, CRC64), want %s", got, want)
			}
		})
	}
}

func TestStdoutPipeToolFailsAfterOutput(t *testing.T) {
	const size = 100 << 10
	cmd := tool(t.Context(), t, "write-fail", size, 4096, 0)
	out, err := StdoutPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	tail := NewTail(100)
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(out)
	if err != nil || len(b) != size {
		t.Errorf("read %d bytes, %v; want %d and a clean EOF", len(b), err, size)
	}
	// A further read still says EOF.
	if n, err := out.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after EOF: %d, %v", n, err)
	}
	err = cmd.Wait()
	if te := (&ToolError{Tool: "helper", Err: err, Stderr: tail.Text()}); te.ExitCode() != 3 || !strings.Contains(te.Error(), "failing after the output") {
		t.Errorf("wait: %v", te)
	}
}

func TestStdoutPipeToolKilledMidStream(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := tool(ctx, t, "write", 1<<40, 4096, 100*time.Microsecond)
	out, err := StdoutPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, out, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel()
	within(t, 5*time.Second, "reading from a killed tool", func() {
		if _, err := io.Copy(io.Discard, out); err != nil {
			t.Errorf("read after the kill: %v; want EOF", err)
		}
	})
	if err := cmd.Wait(); Status(err) != "signal: killed" {
		t.Errorf("wait: %v", err)
	}
}

func TestStdoutPipeClose(t *testing.T) {
	cmd := tool(t.Context(), t, "write", 10<<20, 4096, 0)
	out, err := StdoutPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Read(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := out.Read(make([]byte, 100)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
	// The tool, writing into a pipe with no reader, dies of SIGPIPE or
	// EPIPE; Wait must not hang on the pipe Wait closes again.
	within(t, 10*time.Second, "wait", func() {
		if err := cmd.Wait(); err == nil {
			t.Errorf("the tool wrote 10 MiB into a closed pipe without failing")
		}
	})
}

func TestPipesRefuseAfterStart(t *testing.T) {
	cmd := tool(t.Context(), t, "write", 0, 1, 0)
	cmd.Stdout, cmd.Stdin = io.Discard, strings.NewReader("")
	if _, err := StdoutPipe(cmd); err == nil {
		t.Error("StdoutPipe with Stdout set: no error")
	}
	if _, err := StdinPipe(cmd); err == nil {
		t.Error("StdinPipe with Stdin set: no error")
	}
}

func TestStdinPipeSlowReaderGetsEverything(t *testing.T) {
	const size = 3<<20 + 777
	cmd := tool(t.Context(), t, "read", 0, 4096, 30*time.Microsecond)
	in, err := StdinPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	wantPaced(t, in)
	var report strings.Builder
	cmd.Stdout = &report
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	within(t, time.Minute, "writing to a slow reader", func() {
		for off := int64(0); off < size; {
			n := min(int64(len(buf)), size-off)
			for i := range n {
				buf[i] = pattern(off + i)
			}
			if _, err := in.Write(buf[:n]); err != nil {
				t.Errorf("write at %d: %v", off, err)
				return
			}
			off += n
		}
	})
	if err := in.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("wait: %v", err)
	}
	if got, want := strings.TrimSpace(report.String()), patternCRC(size); got != want {
		t.Errorf("the tool read %s (length, CRC64), want %s", got, want)
	}
}

// writeUntilError writes to w until a write fails, and returns that error;
// the test fails if that takes longer than d.
func writeUntilError(t *testing.T, w io.Writer, d time.Duration) error {
	t.Helper()
	var err error
	within(t, d, "writing to a tool that no longer reads", func() {
		buf := make([]byte, 256<<10)
		for err == nil {
			_, err = w.Write(buf)
		}
	})
	return err
}

func TestStdinPipeToolExitsEarly(t *testing.T) {
	// The tool reads a little, waits until the pipe is more than half
	// full, and exits: the bytes left in the pipe never drain, and a write
	// must fail rather than wait for them to.
	cmd := tool(t.Context(), t, "read-some", 10, 1, 300*time.Millisecond)
	in, err := StdinPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	wantPaced(t, in)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = writeUntilError(t, in, 10*time.Second)
	if !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to an exited tool: %v, want EPIPE", err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("wait: %v", err)
	}
}

func TestStdinPipeToolStopsReadingThenCancel(t *testing.T) {
	// A tool that stops reading without exiting blocks the writer, as a
	// plain pipe would, until the context kills it.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cmd := tool(ctx, t, "read-some", 10, 1, time.Hour)
	in, err := StdinPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(500*time.Millisecond, cancel)
	err = writeUntilError(t, in, 10*time.Second)
	if !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to a killed tool: %v, want EPIPE", err)
	}
	in.Close()
	if err := cmd.Wait(); Status(err) != "signal: killed" {
		t.Errorf("wait: %v", err)
	}
}

func TestStdinPipeWriteAfterClose(t *testing.T) {
	cmd := tool(t.Context(), t, "read", 0, 4096, 0)
	in, err := StdinPipe(cmd)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write([]byte("abc")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("wait: %v", err)
	}
}

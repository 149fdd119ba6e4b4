package childproc

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"strconv"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a tool instead of running the
// tests: the pipe tests need children that read and write at a pace they
// control, the same on every system.
const helperEnv = "CHILDPROC_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "spawn" {
		os.Exit(spawn())
	}
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[len(os.Args)-3:]))
	}
	os.Exit(m.Run())
}

// pattern returns byte i of the test stream: not periodic over a pipe's
// size, so a lost or repeated chunk changes the checksum.
func pattern(i int64) byte { return byte(i*7 + i>>11 + i>>19) }

// helper runs one tool mode; args are three integers: a size, a chunk size
// and a pause in microseconds.
func helper(mode string, args []string) int {
	var v [3]int
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad helper argument", a)
			return 2
		}
		v[i] = n
	}
	size, chunk, pause := int64(v[0]), v[1], time.Duration(v[2])*time.Microsecond
	switch mode {
	case "write", "write-fail": // write size bytes of pattern, chunk at a time
		buf := make([]byte, chunk)
		for off := int64(0); off < size; {
			n := min(int64(chunk), size-off)
			for i := range n {
				buf[i] = pattern(off + i)
			}
			if _, err := os.Stdout.Write(buf[:n]); err != nil {
				return 1
			}
			off += n
			time.Sleep(pause)
		}
		if mode == "write-fail" {
			fmt.Fprintln(os.Stderr, "helper: failing after the output")
			return 3
		}
		return 0
	case "read": // read stdin chunk at a time; print its length and CRC64
		h := crc64.New(crc64.MakeTable(crc64.ECMA))
		buf := make([]byte, chunk)
		var total int64
		for {
			n, err := os.Stdin.Read(buf)
			h.Write(buf[:n])
			total += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				return 1
			}
			time.Sleep(pause)
		}
		fmt.Printf("%d %d\n", total, h.Sum64())
		return 0
	case "read-some": // read size bytes, then exit without reading on
		_, err := io.CopyN(io.Discard, bufio.NewReaderSize(os.Stdin, chunk), size)
		time.Sleep(pause)
		if err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// spawn stands in for rdsbackup running a tool: it starts a long sleep
// through Command, prints the sleep's pid and waits to be killed.
func spawn() int {
	cmd := Command(context.Background(), "/bin/sleep", "300")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	cmd.Wait()
	return 0
}

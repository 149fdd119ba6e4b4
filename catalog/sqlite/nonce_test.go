package sqlite_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/rpc/noncetest"
)

func TestMain(m *testing.M) {
	if os.Getenv("NONCE_KILL_HELPER") == "1" {
		nonceKillHelper()
	}
	os.Exit(m.Run())
}

func TestNonceConformance(t *testing.T) {
	noncetest.Run(t, noncetest.Harness{New: func(t *testing.T, window time.Duration, max int) func(*testing.T) rdsbackup.NonceStore {
		path := filepath.Join(t.TempDir(), "catalog.db")
		return func(t *testing.T) rdsbackup.NonceStore {
			db := openDB(t, path, testKey)
			t.Cleanup(func() { db.Close() })
			return db.Nonces(window, max)
		}
	}})
}

// nonceKillHelper is the child of TestNonceSurvivesKill: it records a
// nonce, says so, and waits to be killed.
func nonceKillHelper() {
	box, err := aesgcm.New(testKey)
	if err != nil {
		panic(err)
	}
	db := sqlite.NewDB(os.Getenv("NONCE_KILL_CATALOG"), box)
	if err := db.Open(); err != nil {
		println(err.Error())
		os.Exit(2)
	}
	err = db.Nonces(15*time.Minute, 1000).UseNonce(context.Background(), "ak", true, "n", noncetest.T0, noncetest.T0)
	if err != nil {
		println(err.Error())
		os.Exit(2)
	}
	os.Stdout.WriteString("used\n")
	select {}
}

// A nonce recorded by a process that is then killed (SIGKILL: no Close, no
// checkpoint) is refused after the catalog is opened again.
func TestNonceSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db0 := openDB(t, path, testKey) // migrated, so the child starts at once
	db0.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NONCE_KILL_HELPER=1", "NONCE_KILL_CATALOG="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if line != "used\n" {
		t.Fatalf("helper said %q, stderr %q", line, stderr.String())
	}
	if _, err := os.Stat(db0.NoncePath() + "-wal"); err != nil {
		t.Fatalf("the killed process left no write-ahead log (%v): the test proves nothing", err)
	}
	db := openDB(t, path, testKey)
	defer db.Close()
	s := db.Nonces(15*time.Minute, 1000)
	noncetest.WantCode(t, "replay after kill", s.UseNonce(t.Context(), "ak", true, "n", noncetest.T0, noncetest.T0.Add(time.Minute)), rdsbackup.ENonceUsed)
	noncetest.WantCode(t, "new nonce after kill", s.UseNonce(t.Context(), "ak", true, "m", noncetest.T0, noncetest.T0.Add(time.Minute)), "")
	// The file is private, as the catalog's, and the catalog's holds no
	// nonce (see DB.Nonces).
	for _, p := range []string{db.NoncePath(), db.NoncePath() + "-wal"} {
		if fi, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode())
		}
	}
	var n int
	if err := db.Raw().QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'nonce%'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("catalog.db has %d nonce tables (%v)", n, err)
	}
}

// Expired buckets leave the file, in batches, without a request waiting
// for them.
func TestNonceSweep(t *testing.T) {
	db, _ := openTemp(t)
	s := db.Nonces(15*time.Minute, 100000)
	ctx := t.Context()
	// More than one sweep batch, in one minute.
	tx, err := db.RawNonces().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	minute := rdsbackup.NonceMinute(noncetest.T0)
	for i := range 4500 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO nonces (hash, minute) VALUES (?, ?)`, rdsbackup.NonceHash("ak", fmt.Sprint(i)), minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO nonce_counts (access_key, minute, root, n) VALUES ('ak', ?, 1, 4500)`, minute); err != nil {
		t.Fatal(err)
	}
	// Expired too at the time below, but within the sweep margin (another
	// node's clock may be behind): kept.
	if _, err := tx.ExecContext(ctx, `INSERT INTO nonces (hash, minute) VALUES (?, ?)`, rdsbackup.NonceHash("ak", "margin"), minute+6); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO nonce_counts (access_key, minute, root, n) VALUES ('ak', ?, 1, 1)`, minute+6); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	later := noncetest.T0.Add(25 * time.Minute) // past the window and the sweep margin
	noncetest.WantCode(t, "use", s.UseNonce(ctx, "ak", true, "new", later, later), "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var nonces, counts int
		if err := db.RawNonces().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM nonces), (SELECT COUNT(*) FROM nonce_counts)`).Scan(&nonces, &counts); err != nil {
			t.Fatal(err)
		}
		if nonces == 2 && counts == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nonces and %d counters left, want 2 and 2 (the new one's, the one within the margin)", nonces, counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkNonces: one UseNonce per op, 4 goroutines (the DescribeBackups
// benchmark's concurrency), root key, fresh nonce each time.
func BenchmarkNonces(b *testing.B) {
	db, _ := openTemp(b)
	s := db.Nonces(15*time.Minute, 1<<21)
	var seq atomic.Int64
	now := time.Now()
	b.SetParallelism(2)
	r0, w0 := syscalls(b)
	b.Cleanup(func() {
		r1, w1 := syscalls(b)
		b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/op")
		b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/op")
	})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.UseNonce(context.Background(), "ak", true, strconv.FormatInt(seq.Add(1), 10), now, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// syscalls returns the process's read and write system calls so far.
func syscalls(tb testing.TB) (reads, writes int64) {
	buf, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Skip("no /proc/self/io")
	}
	for _, line := range strings.Split(string(buf), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

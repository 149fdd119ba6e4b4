// Command pitrperf measures log archiving for point-in-time recovery
// (issue 10, docs/pitr.md) against a real server it starts on 127.0.0.1:
//
//   - rpo: under a steady load of small transactions (-rate per second, one
//     connection, autocommit), the lag from each COMMIT's acknowledgement to
//     its row being in rdsbackup's spool and in the object store;
//   - overhead: the source's write throughput (-conns connections inserting
//     small rows as fast as they can) with archiving off and on, in
//     alternating rounds.
//
// The log supervisor runs in this process, wired as `rdsbackup serve` wires
// it (cmd/rdsbackup/pitr.go): the engine's LogStreamer, a SQLite catalog and
// a local-filesystem store. See BENCHMARKS.md for the method and figures.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
	"github.com/rdsbackup/rdsbackup/logs"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

type options struct {
	engine         string
	phases         []string
	rate           int
	rpoDuration    time.Duration
	uploadInterval time.Duration
	ovDuration     time.Duration
	ovRounds       int
	ovConns        int
	work           string
	keep           bool
	verbose        bool
	cpuProfile     string
	repo           string
	baseSize       int64
	logSize        int64
	restoreRounds  int
	pgFsync        bool
}

func main() {
	o := &options{}
	var phases string
	flag.StringVar(&o.engine, "engine", "mariadb", "mariadb or postgres")
	flag.StringVar(&phases, "phases", "rpo,overhead", "comma-separated: rpo, overhead, restore")
	flag.IntVar(&o.rate, "rate", 200, "rpo: transactions per second")
	flag.DurationVar(&o.rpoDuration, "rpo-duration", 2*time.Minute, "rpo: how long the load runs")
	flag.DurationVar(&o.uploadInterval, "upload-interval", time.Minute, "logs.uploadInterval of the supervisor")
	flag.DurationVar(&o.ovDuration, "overhead-duration", 15*time.Second, "overhead: measured time per round")
	flag.IntVar(&o.ovRounds, "overhead-rounds", 2, "overhead: rounds per arm (arms alternate off,on,on,off,…)")
	flag.IntVar(&o.ovConns, "conns", 4, "overhead: connections writing")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new one in TMPDIR, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.BoolVar(&o.verbose, "v", false, "log the supervisor and the engine to stderr")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (load generator and supervisor) over the whole run")
	flag.StringVar(&o.repo, "repo", ".", "restore: the checkout whose cmd/rdsbackup is built")
	var base, logSize int
	flag.IntVar(&base, "base-mib", 128, "restore: MiB of rows in the full set")
	flag.IntVar(&logSize, "log-mib", 128, "restore: MiB of binary log written after the set")
	flag.IntVar(&o.restoreRounds, "restore-rounds", 1, "restore: rounds (each restores with both arms, order alternating)")
	flag.BoolVar(&o.pgFsync, "pg-fsync", false, "postgres: run the server with fsync=on (localserver's default is off)")
	flag.Parse()
	o.baseSize, o.logSize = int64(base)<<20, int64(logSize)<<20
	o.phases = strings.Split(phases, ",")
	if o.engine != "mariadb" && o.engine != "postgres" {
		fmt.Fprintln(os.Stderr, "pitrperf: -engine must be mariadb or postgres")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "pitrperf:", err)
		os.Exit(1)
	}
}

// bench is one run: the source server and the pieces of the service.
type bench struct {
	o       *options
	srv     interface{ Stop() }
	pid     int
	db      *sql.DB // the source, database bench
	inst    *rdsbackup.Instance
	catalog *sqlite.DB
	store   rdsbackup.ObjectStore
	engine  rdsbackup.LogStreamer
	svcDir  string
	logger  *slog.Logger
	insert  string // one row: (mark, pad)
	// clientArgs and clientEnv run the engine's tools against the source.
	clientArgs, clientEnv []string
	pgReceive             string
	maria                 *localserver.MariaDB
}

func run(ctx context.Context, o *options) error {
	if o.work == "" {
		d, err := os.MkdirTemp("", "pitrperf-")
		if err != nil {
			return err
		}
		o.work = d
		// PostgreSQL runs as the user postgres when we are root: it must
		// be able to reach its directory in here (the others stay 0700).
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	b := &bench{o: o, svcDir: filepath.Join(o.work, "service"), logger: slog.New(slog.DiscardHandler)}
	if o.verbose {
		b.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	printMachine(o)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if err := b.startSource(ctx); err != nil {
		return err
	}
	defer b.srv.Stop()
	defer b.db.Close()
	if err := b.startService(ctx); err != nil {
		return err
	}
	defer b.catalog.Close()
	for _, p := range o.phases {
		var err error
		switch p {
		case "rpo":
			err = b.rpo(ctx)
		case "overhead":
			err = b.overhead(ctx)
		case "restore":
			err = b.restore(ctx)
		default:
			err = fmt.Errorf("unknown phase %q", p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

func printMachine(o *options) {
	model, mem := "?", "?"
	if buf, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(buf), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if buf, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(buf), "\n")
		mem = strings.Join(strings.Fields(l)[1:], " ")
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %d CPUs (%s), MemTotal %s, %s; load %s", runtime.NumCPU(), model, mem, runtime.Version(), load)
	fmt.Printf("command: pitrperf %s\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("started: %s\n\n", time.Now().UTC().Format(time.RFC3339))
}

func (b *bench) startSource(ctx context.Context) error {
	pw := "pp" + rand.Text()[:16]
	dir := filepath.Join(b.o.work, b.o.engine)
	var dsn, driver string
	switch b.o.engine {
	case "mariadb":
		m, err := localserver.StartMariaDB(ctx, localserver.MariaDBOptions{Dir: dir, ServerID: 1, LogBin: true, RootPassword: pw,
			Args: []string{"--binlog-format=ROW"}})
		if err != nil {
			return err
		}
		b.srv, b.pid, b.maria = m, m.Pid(), m
		b.clientArgs, b.clientEnv = m.ClientArgs(), m.ClientEnv()
		if err := m.CreateDatabase(ctx, "bench"); err != nil {
			return err
		}
		dsn, driver = m.DSN("bench"), "mysql"
		b.inst = &rdsbackup.Instance{ID: "rm-pitrperf", Engine: rdsbackup.EngineMariaDB, DSN: m.DSN("")}
		b.engine = &mysql.Engine{Flavor: rdsbackup.EngineMariaDB, Logger: b.logger, TempDir: b.o.work}
		b.insert = "INSERT INTO t (mark, pad) VALUES (?, ?)"
	case "postgres":
		var settings map[string]string
		if b.o.pgFsync {
			settings = map[string]string{"fsync": "on"}
		}
		p, err := localserver.StartPostgres(ctx, localserver.PostgresOptions{Dir: dir, Password: pw, Settings: settings})
		if err != nil {
			return err
		}
		b.srv, b.pid = p, p.Pid()
		b.clientArgs, b.clientEnv = p.ClientArgs(), p.ClientEnv()
		b.pgReceive = p.Bin("pg_receivewal")
		if err := p.CreateDatabase(ctx, "bench"); err != nil {
			return err
		}
		dsn, driver = p.URL("bench"), "pgx"
		b.inst = &rdsbackup.Instance{ID: "rm-pitrperf", Engine: rdsbackup.EnginePostgreSQL, DSN: p.URL("postgres")}
		pe := &postgres.Engine{Logger: b.logger, TempDir: b.o.work}
		if b.o.uploadInterval < 10*time.Second { // as cmd/rdsbackup/pitr.go wires it
			pe.WALPartialInterval = b.o.uploadInterval
		}
		b.engine = pe
		b.insert = "INSERT INTO t (mark, pad) VALUES ($1, $2)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(b.o.ovConns + 2)
	db.SetMaxIdleConns(b.o.ovConns + 2)
	b.db = db
	ddl := "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, mark CHAR(18) NOT NULL, pad VARCHAR(100) NOT NULL) ENGINE=InnoDB"
	if b.o.engine == "postgres" {
		ddl = "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, mark CHAR(18) NOT NULL, pad VARCHAR(100) NOT NULL)"
	}
	_, err = db.ExecContext(ctx, ddl)
	return err
}

func (b *bench) startService(ctx context.Context) error {
	for _, d := range []string{b.svcDir, filepath.Join(b.svcDir, "storage"), filepath.Join(b.svcDir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	box, err := aesgcm.New(bytes.Repeat([]byte{7}, aesgcm.KeySize))
	if err != nil {
		return err
	}
	b.catalog = sqlite.NewDB(filepath.Join(b.svcDir, "catalog.db"), box)
	if err := b.catalog.Open(); err != nil {
		return err
	}
	if err := b.catalog.SyncInstances(ctx, []*rdsbackup.Instance{b.inst}); err != nil {
		return err
	}
	if err := b.engine.CheckLogSource(ctx, b.inst); err != nil {
		return err
	}
	pol := rdsbackup.DefaultBackupPolicy(b.inst.ID)
	pol.EnableBackupLog = true
	if err := b.catalog.PutBackupPolicy(ctx, pol); err != nil {
		return err
	}
	b.store = localfs.New(filepath.Join(b.svcDir, "storage"))
	return nil
}

// archiving is a running supervisor.
type archiving struct {
	sup    *logs.Supervisor
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *bench) startArchiving(ctx context.Context, store rdsbackup.ObjectStore) (*archiving, error) {
	sup := logs.NewSupervisor(b.catalog, store, map[rdsbackup.Engine]rdsbackup.LogStreamer{b.inst.Engine: b.engine}, filepath.Join(b.svcDir, "logs"))
	sup.Logger = b.logger
	sup.UploadInterval = b.o.uploadInterval
	sctx, cancel := context.WithCancel(ctx)
	a := &archiving{sup: sup, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(a.done); _ = sup.Run(sctx) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, ok := sup.State(b.inst.ID); ok && st.Streaming {
			return a, nil
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, errors.New("the log stream did not start within 30 s")
		}
	}
}

func (a *archiving) stop() {
	a.cancel()
	<-a.done
}

func (b *bench) spoolDirs() []string {
	d := filepath.Join(b.svcDir, "logs", b.inst.ID)
	return []string{filepath.Join(d, "stream"), filepath.Join(d, "ready")}
}

func pad() string { return strings.Repeat("x", 64) }

// waitSeen waits until seq is in s.
func waitSeen(ctx context.Context, s *seen, seq int, limit time.Duration) error {
	for deadline := time.Now().Add(limit); s.get(seq).IsZero(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("marker %d not seen within %v", seq, limit)
		}
	}
	return nil
}

func (b *bench) rpo(ctx context.Context) error {
	o := b.o
	n := int(o.rpoDuration.Seconds()*float64(o.rate)) + 1
	spool, stored := newSeen(n+1), newSeen(n+1)
	store := &observedStore{ObjectStore: b.store, seen: stored}
	a, err := b.startArchiving(ctx, store)
	if err != nil {
		return err
	}
	defer a.stop()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w := &spoolWatcher{dirs: b.spoolDirs(), interval: 10 * time.Millisecond, seen: spool, wal: o.engine == "postgres"}
	go w.run(wctx)
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Seq 0 is a probe: the stream is caught up once it is in the spool.
	if _, err := conn.ExecContext(ctx, b.insert, marker(0), pad()); err != nil {
		return err
	}
	if err := waitSeen(ctx, spool, 0, time.Minute); err != nil {
		return err
	}
	fmt.Printf("## RPO: %s, %d tx/s for %v, uploadInterval %v\n\n", o.engine, o.rate, o.rpoDuration, o.uploadInterval)
	acked := make([]time.Time, n+1)
	stmt, err := conn.PrepareContext(ctx, b.insert)
	if err != nil {
		return err
	}
	defer stmt.Close()
	p := pad()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	sent := 0
	var slow time.Duration
	for seq := 1; seq <= n && ctx.Err() == nil; seq++ {
		<-tick.C
		t0 := time.Now()
		if _, err := stmt.ExecContext(ctx, marker(seq), p); err != nil {
			return err
		}
		acked[seq] = time.Now()
		slow = max(slow, acked[seq].Sub(t0))
		sent = seq
	}
	tick.Stop()
	loadTime := time.Since(start)
	fmt.Printf("load: %d transactions in %.1f s (%.1f/s), slowest COMMIT %v\n", sent, loadTime.Seconds(), float64(sent)/loadTime.Seconds(), slow.Round(time.Millisecond))
	// Everything reaches the store within an upload interval or so.
	limit := o.uploadInterval + 20*time.Second
	if err := waitSeen(ctx, stored, sent, limit); err != nil {
		fmt.Printf("warning: %v\n", err)
	}
	_ = waitSeen(ctx, spool, sent, time.Second)
	fmt.Println()
	fmt.Println("| where | seen | p50 | p90 | p99 | max | negative |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, row := range []struct {
		name string
		s    *seen
	}{{"spool (spool file, readable)", spool}, {"object store (object committed)", stored}} {
		var lags []time.Duration
		neg := 0
		for seq := 1; seq <= sent; seq++ {
			t := row.s.get(seq)
			if t.IsZero() {
				continue
			}
			d := t.Sub(acked[seq])
			if d < 0 {
				neg++
			}
			lags = append(lags, d)
		}
		slices.Sort(lags)
		fmt.Printf("| %s | %d of %d | %s | %s | %s | %s | %d |\n", row.name, len(lags), sent,
			pct(lags, 0.50), pct(lags, 0.90), pct(lags, 0.99), pct(lags, 1), neg)
	}
	fmt.Println()
	return nil
}

func pct(d []time.Duration, p float64) string {
	if len(d) == 0 {
		return "-"
	}
	i := min(int(p*float64(len(d))), len(d)-1)
	v := d[i]
	if v.Abs() < time.Second {
		return fmt.Sprintf("%.1f ms", float64(v)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", v.Seconds())
}

// overhead measures the source's write throughput, archiving off and on.
func (b *bench) overhead(ctx context.Context) error {
	o := b.o
	fmt.Printf("## Source overhead: %s, %d connections, %v per round, %d rounds per arm\n\n", o.engine, o.ovConns, o.ovDuration, o.ovRounds)
	tool := "mariadb-binlog"
	if o.engine == "postgres" {
		tool = "pg_receivewal"
	}
	fmt.Printf("| round | archiving | tx/s | source CPU µs/tx | this process CPU µs/tx | %s CPU µs/tx |\n", tool)
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	sums := map[string][]float64{}
	// Arms rotate, then run backwards, so that drift (the binary log
	// growing, the machine's load) is spread over all three.
	arms := []string{"off", "rdsbackup", "tool"}
	var order []string
	for r := 0; r < o.ovRounds; r++ {
		if r%2 == 0 {
			order = append(order, arms...)
		} else {
			order = append(order, arms[2], arms[1], arms[0])
		}
	}
	for r, arm := range order {
		// A new binary log file per round: the stream starts on it (after
		// the files stored), so no round spends its time catching up.
		if o.engine == "mariadb" {
			if _, err := b.db.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
				return err
			}
		}
		stop := func() {}
		switch arm {
		case "rdsbackup":
			a, err := b.startArchiving(ctx, b.store)
			if err != nil {
				return err
			}
			stop = a.stop
		case "tool":
			var err error
			if stop, err = b.startTool(ctx, tool); err != nil {
				return err
			}
		}
		// Warm-up: a restarted stream catches up with the file first.
		if _, err := b.write(ctx, 3*time.Second); err != nil {
			stop()
			return err
		}
		cpu0 := procCPU(b.pid)
		self0, child0 := ownCPU(tool)
		n, err := b.write(ctx, o.ovDuration)
		cpu := procCPU(b.pid) - cpu0
		self1, child1 := ownCPU(tool)
		stop()
		if err != nil {
			return err
		}
		rate := float64(n) / o.ovDuration.Seconds()
		sums[arm] = append(sums[arm], rate)
		perTx := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
		fmt.Printf("| %d | %s | %.0f | %.0f | %.0f | %.0f |\n", r+1, arm, rate, perTx(cpu), perTx(self1-self0), perTx(child1-child0))
	}
	off := mean(sums["off"])
	fmt.Printf("\nmean tx/s: off %.0f, rdsbackup %.0f (%.3f of off), %s by hand %.0f (%.3f of off)\n\n",
		off, mean(sums["rdsbackup"]), mean(sums["rdsbackup"])/off, tool, mean(sums["tool"]), mean(sums["tool"])/off)
	return nil
}

// startTool runs the streaming tool by hand, as an operator archiving
// without rdsbackup would, into a directory of its own; stop kills it and
// removes what it wrote.
func (b *bench) startTool(ctx context.Context, tool string) (stop func(), err error) {
	dir, err := os.MkdirTemp(b.o.work, "bytool-")
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	if tool == "mariadb-binlog" {
		var file string
		var pos int64
		row := b.db.QueryRowContext(ctx, "SHOW MASTER STATUS")
		cols := []any{&file, &pos, new(any), new(any)}
		if err := row.Scan(cols...); err != nil {
			return nil, fmt.Errorf("SHOW MASTER STATUS: %w", err)
		}
		var client []string
		for _, a := range b.clientArgs {
			if !strings.HasPrefix(a, "--default-character-set=") { // mariadb-binlog has none
				client = append(client, a)
			}
		}
		args := append(client, "--read-from-remote-server", "--raw", "--stop-never",
			"--stop-never-slave-server-id=4000000000", "--result-file="+dir+"/", file)
		cmd = exec.Command(tool, args...)
	} else {
		args := append(append([]string{}, b.clientArgs...), "--directory="+dir, "--no-loop", "--no-password", "--status-interval=1")
		cmd = exec.Command(b.pgReceive, args...)
	}
	cmd.Env = b.clientEnv
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}, nil
}

// write runs o.ovConns writers for d and returns how many rows they
// committed.
func (b *bench) write(ctx context.Context, d time.Duration) (int, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type res struct {
		n   int
		err error
	}
	out := make(chan res, b.o.ovConns)
	for range b.o.ovConns {
		go func() {
			n := 0
			p := pad()
			for wctx.Err() == nil {
				if _, err := b.db.ExecContext(wctx, b.insert, "overhead", p); err != nil {
					if wctx.Err() != nil {
						break
					}
					out <- res{n, err}
					return
				}
				n++
			}
			out <- res{n, nil}
		}()
	}
	total := 0
	var err error
	for range b.o.ovConns {
		r := <-out
		total += r.n
		if r.err != nil {
			err = r.err
		}
	}
	return total, err
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

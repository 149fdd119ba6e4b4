package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// armResult is one measurement of one arm.
type armResult struct {
	Arm   string `json:"arm"`
	Run   int    `json:"run"`
	Order int    `json:"order"` // position within its pair (0 first, 1 second)

	Wall time.Duration `json:"wallNs"`
	// RdsCPU is the CPU time of the rdsbackup process (service or restore
	// command) itself; ToolCPU that of the engine tools (mariadb-dump,
	// pg_dump, mariadb, pg_restore, psql); ServerCPU that of the database
	// server's process tree.
	RdsCPU    time.Duration `json:"rdsCpuNs"`
	ToolCPU   time.Duration `json:"toolCpuNs"`
	ServerCPU time.Duration `json:"serverCpuNs"`
	// PeakRSS is the highest VmRSS sampled every 100 ms, HWM the kernel's
	// VmHWM at the end, of the rdsbackup process.
	PeakRSS int64 `json:"peakRssBytes,omitempty"`
	HWM     int64 `json:"hwmBytes,omitempty"`
	Bytes   int64 `json:"bytes,omitempty"` // dump bytes (bare) or set object bytes (backup)
	// APIDuration is BackupEndTime-BackupStartTime (whole seconds).
	APIDuration time.Duration `json:"apiDurationNs,omitempty"`
	// SysR and SysW are the read and write system calls of the rdsbackup
	// process during the arm (/proc/<pid>/io).
	SysR int64 `json:"syscallsRead,omitempty"`
	SysW int64 `json:"syscallsWrite,omitempty"`
	// Download is the restore command's own report of its download.
	Download   time.Duration `json:"downloadNs,omitempty"`
	LoadBefore string        `json:"loadBefore"`
	LoadAfter  string        `json:"loadAfter"`
}

// Arm names. The rdsbackup arms carry the label of the binary when it is
// not the one built from -repo (see -alt).
const (
	armZstdCLI    = "dump | zstd -1 > file"
	armBareDump   = "bare dump → /dev/null"
	armRdsBackup  = "rdsbackup backup"
	armDirectPipe = "direct pipe → client"
	armRdsRestore = "rdsbackup restore"
	armRdsVerify  = "rdsbackup verify (drill)"
	armRdsVerifyN = "rdsbackup verify --low-priority=false"
)

func backupArm(label string) string {
	if label == "" {
		return armRdsBackup
	}
	return armRdsBackup + " [" + label + "]"
}

func restoreArm(label string) string {
	if label == "" {
		return armRdsRestore
	}
	return armRdsRestore + " [" + label + "]"
}

// toolEnv is the environment of the engine tools the benchmark runs
// itself: ours without client settings, plus extra.
func toolEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "MYSQL") || strings.HasPrefix(name, "MARIADB") ||
			strings.HasPrefix(name, "RDSBACKUP") || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// tools of one engine, resolved once.
type tools struct {
	dump, client            string // MariaDB
	pgDump, pgDumpall, psql string // PostgreSQL
	pgRestore               string
	home                    string // private HOME (no ~/.my.cnf, ~/.pgpass)
	optFile                 string // MariaDB option file of the current source/target
	pgEnv                   []string
	databases               []string // the databases rdsbackup dumps
}

func resolveTools(engine, home string) (*tools, error) {
	t := &tools{home: home}
	var err error
	if engine == engMariaDB {
		if t.dump, err = lookPath("mariadb-dump", "mysqldump"); err != nil {
			return nil, err
		}
		if t.client, err = lookPath("mariadb", "mysql"); err != nil {
			return nil, err
		}
		return t, nil
	}
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	t.pgDump, t.pgDumpall = filepath.Join(bin, "pg_dump"), filepath.Join(bin, "pg_dumpall")
	t.psql, t.pgRestore = filepath.Join(bin, "psql"), filepath.Join(bin, "pg_restore")
	return t, nil
}

// mariadbOptFile writes the option file the tools connect to srv with, as
// rdsbackup writes it (every value quoted).
func mariadbOptFile(path string, srv *dbServer) error {
	s := fmt.Sprintf("[client]\nuser=\"root\"\npassword=%q\nloose-protocol=\"TCP\"\nhost=\"127.0.0.1\"\nport=\"%d\"\n"+
		"[mysqldump]\nmax-allowed-packet=\"1G\"\n[mysql]\nmax-allowed-packet=\"1G\"\n", srv.password, srv.port)
	return os.WriteFile(path, []byte(s), 0o600)
}

func pgEnv(srv *dbServer) []string {
	return []string{"PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", srv.port), "PGUSER=postgres",
		"PGPASSWORD=" + srv.password, "PGSSLMODE=disable"}
}

// listDatabases returns the databases rdsbackup's logical backup dumps:
// user databases (MariaDB), connectable non-template ones (PostgreSQL).
func listDatabases(ctx context.Context, srv *dbServer) ([]string, error) {
	db, err := srv.open("")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	q := `SELECT datname::text FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname`
	if srv.engine == engMariaDB {
		q = `SELECT SCHEMA_NAME FROM information_schema.SCHEMATA
			WHERE LOWER(SCHEMA_NAME) NOT IN ('information_schema', 'performance_schema', 'mysql', 'sys') ORDER BY SCHEMA_NAME`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// runTool runs one tool with stdin/stdout files (nil: /dev/null) and
// returns its CPU time (its own and its children's).
func runTool(ctx context.Context, env []string, dir string, stdin, stdout *os.File, name string, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return cpu, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return cpu, nil
}

// bareDump runs the dump tools with rdsbackup's arguments against src.
// With outDir empty every output goes to /dev/null; otherwise each part is
// written to a file there (MariaDB: <db>.sql; PostgreSQL: globals.sql,
// <db>.custom) for the direct-pipe arm.
func bareDump(ctx context.Context, t *tools, src *dbServer, outDir string) (*armResult, error) {
	res := &armResult{Arm: armBareDump, LoadBefore: loadAvg()}
	open := func(name string) (*os.File, error) {
		if outDir == "" {
			return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		}
		return os.Create(filepath.Join(outDir, name))
	}
	env := dumpEnv(t, src)
	srv0 := treeCPU(src.pid())
	start := time.Now()
	for _, d := range dumpCommands(t, src) {
		f, err := open(d.file)
		if err != nil {
			return nil, err
		}
		cpu, err := runTool(ctx, env, t.home, nil, f, d.argv[0], d.argv[1:]...)
		f.Close()
		res.ToolCPU += cpu
		if err != nil {
			return nil, err
		}
	}
	res.Wall = time.Since(start)
	res.LoadAfter = loadAvg()
	time.Sleep(300 * time.Millisecond) // let the postmaster reap the backends
	res.ServerCPU = treeCPU(src.pid()) - srv0
	if outDir != "" {
		ents, _ := os.ReadDir(outDir)
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				res.Bytes += fi.Size()
			}
		}
	}
	return res, nil
}

// zstdCLIArm marks the zstd command's arm in a run's rotation.
var zstdCLIArm = &service{label: "zstd-cli"}

// dumpCmd is one dump tool run of a logical backup.
type dumpCmd struct {
	part string   // the part of the set it makes
	file string   // the file the bare dump keeps it in
	argv []string // program and arguments
}

// dumpCommands are the dump tool runs of a logical backup with the
// arguments the engines give them: engine/mysql dumpArgs (mariadb-dump per
// database), engine/postgres backupLogical (pg_dumpall --globals-only, then
// pg_dump -Fc --compress=0 per database).
func dumpCommands(t *tools, src *dbServer) []dumpCmd {
	var cmds []dumpCmd
	if src.engine == engMariaDB {
		for _, db := range t.databases {
			cmds = append(cmds, dumpCmd{db, db + ".sql", []string{t.dump,
				"--defaults-extra-file=" + t.optFile, "--single-transaction", "--quick", "--routines", "--triggers", "--events",
				"--hex-blob", "--default-character-set=utf8mb4", "--skip-dump-date", "--no-tablespaces", "--", db}})
		}
		return cmds
	}
	cmds = append(cmds, dumpCmd{"globals", "globals.sql", []string{t.pgDumpall, "--globals-only", "--no-password", "--database=postgres"}})
	for _, db := range t.databases {
		cmds = append(cmds, dumpCmd{db, db + ".custom", []string{t.pgDump,
			"--format=custom", "--compress=0", "--no-sync", "--no-password", "--dbname=" + conninfoDB(db)}})
	}
	return cmds
}

// dumpEnv is the environment of the dump tools against src.
func dumpEnv(t *tools, src *dbServer) []string {
	if src.engine == engPostgres {
		return toolEnv(append([]string{"HOME=" + t.home}, t.pgEnv...)...)
	}
	return toolEnv("HOME=" + t.home)
}

// zstdPipeline is the shell pipeline `tool | zstd -1 -T1 >> file` for each
// part (one zstd frame per part, as in a set), then fsync: the reference
// for what compressing and storing the dump costs outside rdsbackup.
func zstdPipeline(ctx context.Context, t *tools, src *dbServer, path string) (*armResult, error) {
	res := &armResult{Arm: armZstdCLI, LoadBefore: loadAvg()}
	zstdPath, err := lookPath("zstd")
	if err != nil {
		return nil, err
	}
	env := dumpEnv(t, src)
	srv0 := treeCPU(src.pid())
	start := time.Now()
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	defer out.Close()
	for _, d := range dumpCommands(t, src) {
		argv := d.argv
		dump := exec.CommandContext(ctx, argv[0], argv[1:]...)
		dump.Env, dump.Dir = env, t.home
		var stderr bytes.Buffer
		dump.Stderr = &stderr
		comp := exec.CommandContext(ctx, zstdPath, "-1", "-T1", "-q", "-c")
		comp.Stdout, comp.Stderr = out, &stderr
		pipe, err := dump.StdoutPipe()
		if err != nil {
			return nil, err
		}
		comp.Stdin = pipe
		if err := dump.Start(); err != nil {
			return nil, err
		}
		if err := comp.Start(); err != nil {
			return nil, err
		}
		derr, cerr := dump.Wait(), comp.Wait()
		for _, c := range []*exec.Cmd{dump, comp} {
			if c.ProcessState != nil {
				res.ToolCPU += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
			}
		}
		if err := errors.Join(derr, cerr); err != nil {
			return nil, fmt.Errorf("%s | zstd: %v: %s", filepath.Base(argv[0]), err, tail(stderr.String(), 2000))
		}
	}
	if err := out.Sync(); err != nil {
		return nil, err
	}
	res.Wall = time.Since(start)
	if fi, err := out.Stat(); err == nil {
		res.Bytes = fi.Size()
	}
	res.LoadAfter = loadAvg()
	time.Sleep(300 * time.Millisecond)
	res.ServerCPU = treeCPU(src.pid()) - srv0
	return res, nil
}

func conninfoDB(name string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name) + "'"
}

// clearRefs resets the kernel's peak-RSS counter (VmHWM) of pid.
func clearRefs(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// rdsBackup takes a backup through the service's API and samples the
// service's memory meanwhile.
func rdsBackup(ctx context.Context, svc *service, src *dbServer, poll time.Duration) (*armResult, *backupOutcome, error) {
	res := &armResult{Arm: backupArm(svc.label), LoadBefore: loadAvg()}
	clearRefs(svc.pid())
	t0 := readTimes(svc.pid())
	r0, w0, _ := readSyscalls(svc.pid())
	srv0 := treeCPU(src.pid())
	samp := startSampler(svc.pid(), 100*time.Millisecond)
	out, err := svc.backup(ctx, poll)
	peak, hwm, _ := samp.finish()
	if err != nil {
		return nil, nil, err
	}
	res.LoadAfter = loadAvg()
	t1 := readTimes(svc.pid())
	r1, w1, _ := readSyscalls(svc.pid())
	res.SysR, res.SysW = r1-r0, w1-w0
	time.Sleep(300 * time.Millisecond)
	res.ServerCPU = treeCPU(src.pid()) - srv0
	d := t1.sub(t0)
	res.Wall, res.RdsCPU, res.ToolCPU = out.Wall, d.Self, d.Children
	res.PeakRSS, res.HWM, res.Bytes, res.APIDuration = peak, hwm, out.Size, out.APIDuration
	return res, out, nil
}

var downloadedRE = regexp.MustCompile(`downloaded (\d+) bytes in ([0-9.]+[µmn]?s)`)

// rdsRestore runs `rdsbackup restore --url` into target.
func rdsRestore(ctx context.Context, label, bin, workDir, url string, target *dbServer) (*armResult, error) {
	res := &armResult{Arm: restoreArm(label), LoadBefore: loadAvg()}
	cmd := exec.CommandContext(ctx, bin, "restore", "--url", url, "--work-dir", workDir)
	cmd.Env = toolEnv("HOME="+workDir, "RDSBACKUP_TARGET_DSN="+target.targetDSN())
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	srv0 := treeCPU(target.pid())
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	samp := startSampler(cmd.Process.Pid, 100*time.Millisecond)
	err := cmd.Wait()
	res.Wall = time.Since(start)
	peak, hwm, last := samp.finish()
	res.LoadAfter = loadAvg()
	if err != nil {
		return nil, fmt.Errorf("rdsbackup restore: %v: %s", err, tail(stderr.String(), 3000))
	}
	total := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime() // with its waited-for children
	res.RdsCPU = last.Self
	res.ToolCPU = total - last.Self
	res.PeakRSS, res.HWM = peak, hwm
	res.SysR, res.SysW = samp.syscalls()
	if m := downloadedRE.FindStringSubmatch(stderr.String()); m != nil {
		res.Download, _ = time.ParseDuration(m[2])
	}
	time.Sleep(300 * time.Millisecond)
	res.ServerCPU = treeCPU(target.pid()) - srv0
	return res, nil
}

// drillArm and drillNormalArm mark the drill's arms (-drill) in a run's
// restore rotation: as scheduled (nice 19, idle I/O) and at normal priority.
var (
	drillArm       = &service{label: "drill"}
	drillNormalArm = &service{label: "drill-normal"}
)

var drillPassedRE = regexp.MustCompile(`drill passed in`)

// rdsVerify runs `rdsbackup verify --backup-id` of the main service's set:
// a restore drill, which starts its own empty server (counted), restores
// the set into it, checks it and removes it.
func rdsVerify(ctx context.Context, svc *service, backupID string, low bool) (*armResult, error) {
	res := &armResult{Arm: armRdsVerify, LoadBefore: loadAvg()}
	if !low {
		res.Arm = armRdsVerifyN
	}
	cmd := exec.CommandContext(ctx, svc.bin, "verify", "--backup-id", backupID, "--config", filepath.Join(svc.dir, "rdsbackup.yaml"),
		fmt.Sprintf("--low-priority=%v", low))
	cmd.Env = svc.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	samp := startSampler(cmd.Process.Pid, 100*time.Millisecond)
	err := cmd.Wait()
	res.Wall = time.Since(start)
	peak, hwm, last := samp.finish()
	res.LoadAfter = loadAvg()
	if err != nil || !drillPassedRE.Match(out.Bytes()) {
		return nil, fmt.Errorf("rdsbackup verify: %v: %s", err, tail(out.String(), 3000))
	}
	log.Printf("drill: %s", tail(out.String(), 600))
	total := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	res.RdsCPU = last.Self
	res.ToolCPU = total - last.Self
	res.PeakRSS, res.HWM = peak, hwm
	return res, nil
}

// directPipe restores the bare tool's files straight into the client.
func directPipe(ctx context.Context, t *tools, dumpDir string, target *dbServer) (*armResult, error) {
	res := &armResult{Arm: armDirectPipe, LoadBefore: loadAvg()}
	srv0 := treeCPU(target.pid())
	start := time.Now()
	admin, err := target.open("")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if target.engine == engMariaDB {
		env := toolEnv("HOME=" + t.home)
		optFile := filepath.Join(t.home, "target.cnf")
		if err := mariadbOptFile(optFile, target); err != nil {
			return nil, err
		}
		for _, db := range t.databases {
			if _, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+db+"`"); err != nil {
				return nil, err
			}
			f, err := os.Open(filepath.Join(dumpDir, db+".sql"))
			if err != nil {
				return nil, err
			}
			cpu, err := runTool(ctx, env, t.home, f, nil, t.client,
				"--defaults-extra-file="+optFile, "--default-character-set=utf8mb4", "--", db)
			f.Close()
			res.ToolCPU += cpu
			if err != nil {
				return nil, err
			}
		}
	} else {
		env := toolEnv(append([]string{"HOME=" + t.home}, pgEnv(target)...)...)
		f, err := os.Open(filepath.Join(dumpDir, "globals.sql"))
		if err != nil {
			return nil, err
		}
		cpu, err := runTool(ctx, env, t.home, f, nil, t.psql, "--no-psqlrc", "--quiet", "--no-password",
			"--set=ON_ERROR_STOP=0", "--file=-", "--dbname=postgres")
		f.Close()
		res.ToolCPU += cpu
		if err != nil {
			return nil, err
		}
		for _, db := range t.databases {
			var exists bool
			if err := admin.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
				return nil, err
			}
			if !exists {
				if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+db+`" TEMPLATE template0`); err != nil {
					return nil, err
				}
			}
			f, err := os.Open(filepath.Join(dumpDir, db+".custom"))
			if err != nil {
				return nil, err
			}
			cpu, err := runTool(ctx, env, t.home, f, nil, t.pgRestore,
				"--format=custom", "--exit-on-error", "--no-password", "--dbname="+conninfoDB(db))
			f.Close()
			res.ToolCPU += cpu
			if err != nil {
				return nil, err
			}
		}
	}
	res.Wall = time.Since(start)
	res.LoadAfter = loadAvg()
	time.Sleep(300 * time.Millisecond)
	res.ServerCPU = treeCPU(target.pid()) - srv0
	return res, nil
}

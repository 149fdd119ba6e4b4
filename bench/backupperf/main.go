// Command backupperf measures what rdsbackup costs over the engines' own
// tools, for logical backups and restores of MariaDB and PostgreSQL.
//
// From one command it starts throwaway servers from the installed binaries
// (each in its own directory under -dir, on a free 127.0.0.1 port),
// generates a source database of at least -size per engine (kept in -dir and
// reused by later runs with the same parameters), builds rdsbackup, and for
// each engine and run measures, in alternating order (A B, then B A, …):
//
//   - backup: (a) the bare dump — the dump tools with exactly the arguments
//     rdsbackup gives them (mariadb-dump per database; pg_dumpall
//     --globals-only and pg_dump -Fc --compress=0 per database) writing to
//     /dev/null — against (b) a Logical backup through `rdsbackup serve`
//     (CreateBackup, then DescribeBackupTasks every 100 ms until Finished),
//     sampling the service's VmRSS every 100 ms and its VmHWM;
//   - restore: (d) the dump files of the bare tools piped straight into the
//     client (mariadb; psql for the globals and pg_restore per database)
//     against (c) `rdsbackup restore --url <BackupDownloadURL>`, each into a
//     fresh empty server, with the restore process's peak RSS.
//
// It prints machine information and Markdown tables (median and minimum of
// the runs, ratios, peak RSS, and a per-run table with CPU times and the
// rdsbackup process's system calls), and writes the raw results as JSON
// into -dir.
//
//	go run ./bench/backupperf -size 1GiB -engines mariadb,postgres -runs 3
//
// -alt LABEL=DIR adds the rdsbackup built from another checkout (a change
// to try) as further backup and restore arms of every run; -zstd-cli adds
// the reference arm `dump | zstd -1 > file` (the C zstd command, fsynced).
// With more than two arms the order rotates from run to run.
//
// -profile DIR instead runs backups and restores in this process, through
// backup.Runner and the engines, with CPU and allocation profiles, and
// variants that separate the costs (see profile.go).
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	size       int64
	engines    []string
	drill      bool
	runs       int
	dir        string
	repo       string
	regenerate bool
	poll       time.Duration
	skipBackup bool
	zstdCLI    bool
	encCompare bool
	skipRestor bool
	profile    string
	profLevel  string
	alts       []binary
	s3         bool
}

// binary is one rdsbackup build measured: the one of -repo (label "") and
// those of -alt.
type binary struct {
	label, repo, path string
	config            string // YAML added to its service's config
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("backupperf: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) == 3 && os.Args[1] == "-consume" {
		if err := consume(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "backupperf:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backupperf:", err)
		os.Exit(2)
	}
	if o.profile != "" {
		err = runProfile(ctx, o)
	} else {
		err = run(ctx, o)
	}
	if err != nil {
		log.Printf("error: %v", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags() (*options, error) {
	o := &options{}
	size := flag.String("size", "1GiB", "minimum on-disk size of the generated database per engine (MariaDB data+index length, PostgreSQL pg_database_size); KiB, MiB, GiB suffixes")
	engines := flag.String("engines", "mariadb,postgres", "comma-separated engines: mariadb, postgres")
	flag.IntVar(&o.runs, "runs", 3, "measured runs per engine; each run measures every arm once, the order alternating between runs")
	flag.StringVar(&o.dir, "dir", "/tmp/rdsbackup-backupperf", "working directory: cached source databases, servers, dumps, results (must be reachable by the postgres user when run as root)")
	flag.StringVar(&o.repo, "repo", "", "rdsbackup module directory to build from (default: the module of the current directory)")
	flag.BoolVar(&o.regenerate, "regenerate", false, "generate the source databases again even if cached")
	flag.DurationVar(&o.poll, "poll", 100*time.Millisecond, "DescribeBackupTasks polling interval")
	flag.BoolVar(&o.skipBackup, "skip-backup-compare", false, "take the rdsbackup backup (needed for the restore) but do not run the bare dump arm")
	flag.BoolVar(&o.skipRestor, "skip-restore", false, "measure backups only")
	flag.BoolVar(&o.drill, "drill", false, "add a restore arm: `rdsbackup verify --backup-id` of the main arm's set (a drill: its own new server, the restore, the checks, the cleanup)")
	flag.BoolVar(&o.zstdCLI, "zstd-cli", false, "add a backup arm for reference: the dump tools piped into `zstd -1` (the C command) writing one file, fsynced: what a shell script would do")
	flag.StringVar(&o.profile, "profile", "", "profiling mode: drive backup.Runner in-process and write CPU/heap profiles into this directory")
	flag.Func("alt", "also measure the rdsbackup built from another checkout, as `LABEL=DIR` (repeatable): its backup and restore arms join each run's rotation, e.g. to try a change", func(v string) error {
		label, dir, ok := strings.Cut(v, "=")
		if !ok || label == "" || dir == "" {
			return errors.New("want LABEL=DIR")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		o.alts = append(o.alts, binary{label: label, repo: abs})
		return nil
	})
	flag.BoolVar(&o.encCompare, "encryption-compare", false, "run the main arm with encryption at rest on (encryption.enabled: true) and add an arm \"plain\": the same binary with it off")
	flag.BoolVar(&o.s3, "s3", false, "also back up (and restore through the proxied link) with storage on S3: starts a MinIO server (the binary scripts/test.sh builds, or $RDSBACKUP_MINIO) on loopback and adds the arms of the -repo build with that storage, at the default part size")
	flag.StringVar(&o.profLevel, "profile-levels", "fastest", "profiling mode: comma-separated zstd levels to compare (fastest, default, none = no compression, discard = engine only, no storage)")
	flag.Parse()
	n, err := parseSize(*size)
	if err != nil {
		return nil, fmt.Errorf("-size: %w", err)
	}
	o.size = n
	for _, e := range strings.Split(*engines, ",") {
		switch e = strings.TrimSpace(strings.ToLower(e)); e {
		case "mariadb", "mysql":
			o.engines = append(o.engines, engMariaDB)
		case "postgres", "postgresql", "pg":
			o.engines = append(o.engines, engPostgres)
		case "":
		default:
			return nil, fmt.Errorf("-engines: unknown engine %q", e)
		}
	}
	if len(o.engines) == 0 || o.runs < 1 {
		return nil, errors.New("need at least one engine and one run")
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return nil, err
	}
	if o.repo == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		mod := strings.TrimSpace(string(out))
		if err != nil || mod == "" || mod == os.DevNull {
			return nil, errors.New("run from inside the rdsbackup module, or give -repo")
		}
		o.repo = filepath.Dir(mod)
	}
	return o, nil
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// engineResult is everything measured for one engine.
type engineResult struct {
	Engine   string       `json:"engine"`
	Source   *sourceInfo  `json:"source"`
	DumpSize int64        `json:"dumpBytes"`
	SetSize  int64        `json:"setBytes"`
	Arms     []*armResult `json:"arms"`
}

// mkdirs makes dir and its parents with mode 0755 (the postgres user must
// be able to reach server directories under it).
func mkdirs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

func run(ctx context.Context, o *options) error {
	if err := mkdirs(o.dir); err != nil {
		return err
	}
	work := filepath.Join(o.dir, "work")
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := mkdirs(work); err != nil {
		return err
	}
	machine := machineInfo(o.engines)
	bins := append([]binary{{repo: o.repo}}, o.alts...)
	if o.encCompare {
		bins[0].config = "encryption:\n  enabled: true\n"
		bins = append(bins, binary{label: "plain", repo: o.repo, config: "encryption:\n  enabled: false\n"})
	}
	for i := range bins {
		log.Printf("building rdsbackup from %s", bins[i].repo)
		dir := filepath.Join(o.dir, "bin")
		if bins[i].label != "" {
			dir = filepath.Join(o.dir, "bin-"+bins[i].label)
		}
		var err error
		if bins[i].path, err = buildRdsbackup(ctx, bins[i].repo, dir); err != nil {
			return err
		}
		if bins[i].label != "" {
			machine.Alts = append(machine.Alts, bins[i].label+" = "+describeCheckout(bins[i].repo))
		}
	}
	machine.Repo = describeCheckout(o.repo)
	if o.s3 {
		stop, yaml, err := startMinIO(ctx, filepath.Join(work, "minio"))
		if err != nil {
			return err
		}
		defer stop()
		bins = append(bins, binary{label: "s3", repo: o.repo, path: bins[0].path, config: yaml})
		machine.Alts = append(machine.Alts, "s3 = the -repo build with storage on a MinIO server on loopback")
	}
	started := time.Now()
	var results []*engineResult
	for _, engine := range o.engines {
		r, err := runEngine(ctx, o, engine, bins, work)
		if err != nil {
			return fmt.Errorf("%s: %w", engine, err)
		}
		results = append(results, r)
		writeJSON(o, machine, results)
	}
	machine.LoadEnd = loadAvg()
	machine.Duration = time.Since(started).Round(time.Second).String()
	path := writeJSON(o, machine, results)
	report(os.Stdout, o, machine, results)
	log.Printf("raw results: %s", path)
	// The dumps and the services' data are several GiB; the generated
	// sources and the template stay for the next run.
	return os.RemoveAll(work)
}

func writeJSON(o *options, m *machine, results []*engineResult) string {
	path := filepath.Join(o.dir, "results-"+m.Started+".json")
	b, _ := json.MarshalIndent(struct {
		Machine *machine        `json:"machine"`
		Size    int64           `json:"targetBytes"`
		Runs    int             `json:"runs"`
		Results []*engineResult `json:"results"`
	}{m, o.size, o.runs, results}, "", "  ")
	_ = os.WriteFile(path, b, 0o644)
	return path
}

// describeCheckout names the commit of a checkout and whether it has
// changes.
func describeCheckout(dir string) string {
	out, err := exec.Command("git", "-C", dir, "log", "-1", "--format=%h %s").Output()
	if err != nil {
		return dir
	}
	desc := dir + " at " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		desc += " (with uncommitted changes)"
	}
	return desc
}

func runEngine(ctx context.Context, o *options, engine string, bins []binary, work string) (*engineResult, error) {
	src, info, err := ensureSource(ctx, o.dir, engine, o.size, o.regenerate)
	if err != nil {
		return nil, err
	}
	defer src.stop()
	res := &engineResult{Engine: engine, Source: info}

	home := filepath.Join(work, engine+"-home")
	if err := mkdirs(home); err != nil {
		return nil, err
	}
	t, err := resolveTools(engine, home)
	if err != nil {
		return nil, err
	}
	if t.databases, err = listDatabases(ctx, src); err != nil {
		return nil, err
	}
	if engine == engMariaDB {
		t.optFile = filepath.Join(home, "source.cnf")
		if err := mariadbOptFile(t.optFile, src); err != nil {
			return nil, err
		}
	} else {
		t.pgEnv = pgEnv(src)
	}
	template := filepath.Join(o.dir, "template", engine)
	if err := ensureTemplate(ctx, template, engine); err != nil {
		return nil, err
	}

	// Warm-up, unmeasured: the bare dump into files, which the direct-pipe
	// arm restores. It also brings the data into the page cache and the
	// buffer pool for every measured run alike.
	dumpDir := filepath.Join(work, engine+"-dump")
	if err := mkdirs(dumpDir); err != nil {
		return nil, err
	}
	log.Printf("%s: warm-up: bare dump of %v into %s", engine, t.databases, dumpDir)
	warm, err := bareDump(ctx, t, src, dumpDir)
	if err != nil {
		return nil, err
	}
	res.DumpSize = warm.Bytes
	log.Printf("%s: dump is %s, took %v", engine, fmtBytes(warm.Bytes), warm.Wall.Round(time.Millisecond))

	for run := 0; run < o.runs; run++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var svcs []*service
		stopAll := func() {
			for _, s := range svcs {
				s.stop()
			}
		}
		for i, b := range bins {
			svcDir := filepath.Join(work, fmt.Sprintf("%s-service-%d-%d", engine, run, i))
			svc, err := startService(ctx, b.label, b.path, svcDir, src, b.config)
			if err != nil {
				stopAll()
				return nil, err
			}
			svcs = append(svcs, svc)
		}
		arms, err := measureRun(ctx, o, run, t, src, svcs, work, template, dumpDir, info, res)
		stopAll()
		if err != nil {
			for _, s := range svcs {
				log.Printf("%s: service log: %s", engine, filepath.Join(s.dir, "serve.log"))
			}
			return nil, err
		}
		for _, s := range svcs {
			os.RemoveAll(s.dir)
		}
		res.Arms = append(res.Arms, arms...)
	}
	return res, nil
}

// ensureTemplate initializes an empty data directory once; restore targets
// start on copies of it.
func ensureTemplate(ctx context.Context, dir, engine string) error {
	if fileExists(filepath.Join(dir, "ok")) {
		return nil
	}
	os.RemoveAll(dir)
	if err := mkdirs(dir); err != nil {
		return err
	}
	if err := initDataDir(ctx, engine, dir); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ok"), nil, 0o644)
}

// freshTarget starts an empty server on a copy of the template, with the
// source's password (PostgreSQL's globals set the password of postgres to
// the source's).
func freshTarget(ctx context.Context, template, dir, engine, password string) (*dbServer, error) {
	if err := copyDataDir(ctx, template, dir); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(dir, "ok"))
	return startServer(ctx, engine, dir, password)
}

// runOrder is the order of the arms in run number run (from 0): with two
// arms A B, then B A, and so on; with more, rotated by one each run and
// reversed every other cycle, so that each arm takes each position.
func runOrder[T any](arms []T, run int) []T {
	n := len(arms)
	out := make([]T, n)
	if n == 2 {
		copy(out, arms)
		if run%2 == 1 {
			out[0], out[1] = out[1], out[0]
		}
		return out
	}
	for i := range arms {
		out[i] = arms[(i+run)%n]
	}
	if (run/n)%2 == 1 {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

func logArm(engine string, r *armResult) {
	log.Printf("%s run %d: %-34s %8.2fs  rdsbackup CPU %6.2fs  tools CPU %6.2fs  server CPU %6.2fs  peak RSS %s  load %s",
		engine, r.Run, r.Arm, r.Wall.Seconds(), r.RdsCPU.Seconds(), r.ToolCPU.Seconds(), r.ServerCPU.Seconds(), fmtBytes(max(r.PeakRSS, r.HWM)), r.LoadBefore)
}

func measureRun(ctx context.Context, o *options, run int, t *tools, src *dbServer, svcs []*service, work, template, dumpDir string,
	info *sourceInfo, res *engineResult) ([]*armResult, error) {
	engine := src.engine
	var out []*armResult
	// nil stands for the bare arm, zstdCLIArm for the zstd command's; a
	// service for its rdsbackup arm.
	backupArms := []*service{nil}
	if o.skipBackup {
		backupArms = nil
	}
	if o.zstdCLI {
		backupArms = append(backupArms, zstdCLIArm)
	}
	backupArms = append(backupArms, svcs...)
	backups := map[*service]*backupOutcome{}
	for i, svc := range runOrder(backupArms, run) {
		var r *armResult
		var err error
		if svc == nil {
			r, err = bareDump(ctx, t, src, "")
		} else if svc == zstdCLIArm {
			r, err = zstdPipeline(ctx, t, src, filepath.Join(work, "zstd-cli.zst"))
		} else {
			var b *backupOutcome
			r, b, err = rdsBackup(ctx, svc, src, o.poll)
			if err == nil {
				backups[svc] = b
				if svc.label == "" {
					res.SetSize = b.Size
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("run %d, backup: %w", run+1, err)
		}
		r.Run, r.Order = run+1, i
		logArm(engine, r)
		out = append(out, r)
	}
	if o.skipRestor {
		return out, nil
	}
	restoreArms := append([]*service{nil}, svcs...)
	if o.drill {
		restoreArms = append(restoreArms, drillArm, drillNormalArm)
	}
	var restoreWall, drillWall, drillNormalWall time.Duration
	for i, svc := range runOrder(restoreArms, run) {
		if svc == drillArm || svc == drillNormalArm {
			r, err := rdsVerify(ctx, svcs[0], backups[svcs[0]].JobID, svc == drillArm)
			if err != nil {
				return nil, fmt.Errorf("run %d, drill: %w", run+1, err)
			}
			r.Run, r.Order = run+1, i
			logArm(engine, r)
			out = append(out, r)
			if svc == drillArm {
				drillWall = r.Wall
			} else {
				drillNormalWall = r.Wall
			}
			continue
		}
		dir := filepath.Join(work, fmt.Sprintf("%s-target-%d-%d", engine, run, i))
		target, err := freshTarget(ctx, template, dir, engine, src.password)
		if err != nil {
			return nil, err
		}
		var r *armResult
		if svc == nil {
			r, err = directPipe(ctx, t, dumpDir, target)
		} else {
			tmp := filepath.Join(work, "restore-tmp")
			if err = mkdirs(tmp); err == nil {
				r, err = rdsRestore(ctx, svc.label, svc.bin, tmp, backups[svc].DownloadURL, target)
			}
		}
		if err == nil {
			err = checkRestored(ctx, target, info)
		}
		target.remove()
		if err != nil {
			return nil, fmt.Errorf("run %d, restore: %w", run+1, err)
		}
		r.Run, r.Order = run+1, i
		logArm(engine, r)
		out = append(out, r)
		if svc == svcs[0] {
			restoreWall = r.Wall
		}
	}
	if o.drill && restoreWall > 0 {
		log.Printf("%s run %d: drill ÷ rdsbackup restore = %.3f (low priority), %.3f (normal priority)", engine, run+1,
			drillWall.Seconds()/restoreWall.Seconds(), drillNormalWall.Seconds()/restoreWall.Seconds())
	}
	return out, nil
}

// randomPassword is a password of letters and digits only, so that it
// needs no quoting in any DSN.
func randomPassword() string { return "bp" + rand.Text()[:20] }

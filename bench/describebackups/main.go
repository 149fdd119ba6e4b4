// Command describebackups benchmarks DescribeBackups over loopback.
//
// From one command it builds the rdsbackup binary, seeds (or reuses) a data
// directory whose catalog holds -sets backup sets over -instances instances,
// starts the service and a trivial net/http baseline as child processes,
// drives both with V2-signed requests from -concurrency keep-alive clients,
// and prints a Markdown report: requests/s, p50/p99/max latency, errors,
// server CPU per request, the ratio to the baseline, and the service's peak
// RSS (VmHWM).
//
//	go run ./bench/describebackups -sets 1000000 -instances 10000 -duration 10s -concurrency 4,8
//
// The seeded data directory is cached under -cache-dir (default the system
// temp dir) as rdsbackup-bench-<sets>-sets-<instances>-instances-v<N>. Each
// run copies its catalog and starts the service on the copy, which the
// service migrates to its own schema, so the cache stays as it was seeded.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve-trivial" {
		os.Exit(serveTrivial(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "describebackups:", err)
		stop()
		os.Exit(1)
	}
}

type options struct {
	sets, instances int
	duration        time.Duration
	warmup          time.Duration
	concurrency     []int
	rounds          int
	cacheDir        string
	reseed          bool
	only            map[string]bool
	perfDir         string
	repo            string
	serviceEnv      []string
	configExtra     string
	catalogs        []string
	nonceStores     []string // auth.nonceStore of the services; "" leaves the default
}

func parseFlags() (*options, error) {
	o := &options{}
	conc := flag.String("concurrency", "4,8", "comma-separated numbers of concurrent keep-alive clients; each level runs every scenario")
	only := flag.String("scenarios", "", "comma-separated scenario names to run (default all): nofilter,status,mode,type,id,range,page3,page100,trivial")
	flag.IntVar(&o.sets, "sets", 1000000, "backup sets in the catalog")
	flag.IntVar(&o.instances, "instances", 10000, "instances the sets are spread over")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario and round")
	flag.DurationVar(&o.warmup, "warmup", 1*time.Second, "unmeasured warm-up before each scenario's window")
	flag.IntVar(&o.rounds, "rounds", 1, "repeat the scenario list this many times, interleaved, merging the measurements (spreads machine noise evenly)")
	flag.StringVar(&o.cacheDir, "cache-dir", os.TempDir(), "where seeded data directories are kept between runs")
	flag.BoolVar(&o.reseed, "reseed", false, "seed again even if a cached data directory exists")
	flag.StringVar(&o.perfDir, "perf", "", "if set, record `perf record -g` of the service during each measured window into this directory")
	flag.StringVar(&o.repo, "repo", "", "rdsbackup module directory to build the service from (default: the module of the current directory)")
	flag.StringVar(&o.configExtra, "config-extra", "backups:\n  schedule: false\n",
		"YAML appended to the service's config; the default turns off automated backups and the expiry sweep, so that nothing runs beside the requests and the seeded sets stay (use \"\" for a service older than the backups section)")
	flag.Func("service-env", "extra `NAME=value` in the service's environment, e.g. GOGC=200 (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want NAME=value")
		}
		o.serviceEnv = append(o.serviceEnv, v)
		return nil
	})
	catalogs := flag.String("catalog", "sqlite", "the service's catalog: sqlite, postgres (a throwaway PostgreSQL server holding a copy of the seeded catalog), or both (two services, measured in the same rounds by the same client)")
	nonces := flag.String("nonce-store", "", "the services' auth.nonceStore: memory, catalog, or both (a service of each per catalog, measured in the same rounds); default: the service's default")
	flag.Parse()
	switch *nonces {
	case "":
		o.nonceStores = []string{""}
	case "memory", "catalog":
		o.nonceStores = []string{*nonces}
	case "both":
		o.nonceStores = []string{"memory", "catalog"}
	default:
		return nil, fmt.Errorf("-nonce-store: want memory, catalog or both")
	}
	switch *catalogs {
	case "sqlite", "postgres":
		o.catalogs = []string{*catalogs}
	case "both":
		o.catalogs = []string{"sqlite", "postgres"}
	default:
		return nil, fmt.Errorf("-catalog: want sqlite, postgres or both")
	}
	if flag.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	for f := range strings.SplitSeq(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-concurrency: bad value %q", f)
		}
		o.concurrency = append(o.concurrency, n)
	}
	if o.instances < 1 || o.sets < o.instances {
		return nil, fmt.Errorf("need -instances >= 1 and -sets >= -instances")
	}
	if o.rounds < 1 || o.duration <= 0 || o.warmup < 0 {
		return nil, fmt.Errorf("need -rounds >= 1, -duration > 0, -warmup >= 0")
	}
	if *only != "" {
		o.only = map[string]bool{}
		for f := range strings.SplitSeq(*only, ",") {
			o.only[strings.TrimSpace(f)] = true
		}
	}
	return o, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// child is a started service process.
type child struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startChild(logPath string, env []string, name string, args ...string) (*child, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	// Dies with us if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { c.done <- cmd.Wait(); lf.Close() }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitHealthy polls url until it answers 200 or the child exits.
func (c *child) waitHealthy(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-c.done:
			c.done <- err
			tail, _ := os.ReadFile(c.log)
			return fmt.Errorf("exited before it was ready (%v); log %s:\n%s", err, c.log, lastLines(string(tail), 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s; log %s", timeout, c.log)
		}
	}
}

// stop sends SIGTERM and waits, killing after 15 s.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func run(ctx context.Context) error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	l := layout{Sets: o.sets, Instances: o.instances}
	command := "go run ./bench/describebackups " + strings.Join(os.Args[1:], " ")

	repo := o.repo
	if repo == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
			return fmt.Errorf("run from inside the rdsbackup module, or set -repo (go env GOMOD: %v)", err)
		}
		repo = filepath.Dir(strings.TrimSpace(string(out)))
	}
	tmp, err := os.MkdirTemp("", "rdsbackup-bench-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// 1. Build the service and seed (or reuse) its data directory.
	bin := filepath.Join(tmp, "rdsbackup")
	logf("building %s/cmd/rdsbackup", repo)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rdsbackup")
	build.Dir, build.Stdout, build.Stderr = repo, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	loadBefore := loadAvg()
	source := repo
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
		source += " at git " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", repo, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
			source += fmt.Sprintf(" + %d uncommitted changes", strings.Count(string(st), "\n"))
		}
	}
	goVersion := "unknown go"
	if out, err := exec.Command("go", "version").Output(); err == nil {
		goVersion = strings.TrimSpace(string(out))
	}
	cacheDir := seedDir(o.cacheDir, l)
	cached, err := ensureSeeded(ctx, cacheDir, l, o.reseed, logf)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	// Seeding ran in this process; start the client's peak RSS afresh.
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var seed seedInfo
	if buf, err := os.ReadFile(filepath.Join(cacheDir, seedMarker)); err == nil {
		json.Unmarshal(buf, &seed)
	}
	seededSize, seededFiles := catalogSize(cacheDir), catalogFiles(ctx, cacheDir)
	seededSchema, err := migrations(ctx, cacheDir)
	if err != nil {
		return fmt.Errorf("read the seeded catalog's migrations: %w", err)
	}
	// The service runs on a copy: its first start migrates the catalog and
	// stores instances and policies, and the cache must stay as seeded.
	dataDir := filepath.Join(tmp, "data")
	began := time.Now()
	if err := copyCatalog(cacheDir, dataDir); err != nil {
		return fmt.Errorf("copy the seeded catalog: %w", err)
	}
	logf("copied the seeded catalog (%.0f MiB) to %s in %s", float64(seededSize)/(1<<20), dataDir, time.Since(began).Round(100*time.Millisecond))
	var pg *pgCatalog
	if slices.Contains(o.catalogs, "postgres") {
		if pg, err = startPostgresCatalog(ctx, filepath.Join(dataDir, "catalog.db"), logf); err != nil {
			return err
		}
		defer pg.srv.Remove()
	}

	// 2. Start the services, one per catalog.
	env := append(os.Environ(),
		"RDSBACKUP_MASTER_KEY="+benchMasterKey,
		"RDSBACKUP_ACCESS_KEY_ID="+benchKeyID,
		"RDSBACKUP_ACCESS_KEY_SECRET="+benchKeySecret)
	env = append(env, o.serviceEnv...)
	var targets []*target
	var startup time.Duration
	idleMem := map[string]memStatus{}
	type arm struct{ cat, nonces string }
	var arms []arm
	for _, cat := range o.catalogs {
		for _, n := range o.nonceStores {
			arms = append(arms, arm{cat, n})
		}
	}
	for i, a := range arms {
		cat := a.cat
		label := cat
		if len(o.nonceStores) > 1 {
			label = cat + "/nonces=" + a.nonces
		}
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		dir, extra, svcEnv, p99 := dataDir, o.configExtra, env, 5*time.Millisecond
		if a.nonces != "" {
			extra += "auth:\n  nonceStore: " + a.nonces + "\n"
		}
		if cat == "sqlite" && i > 0 {
			// Another SQLite arm: a copy of its own, so that the services
			// share no file.
			dir = filepath.Join(tmp, fmt.Sprintf("data-%d", i))
			if err := copyCatalog(cacheDir, dir); err != nil {
				return fmt.Errorf("copy the seeded catalog: %w", err)
			}
		}
		if cat == "postgres" {
			// Its own data directory (for the master key check nothing
			// else is in it); the catalog is the database, which the
			// PostgreSQL arms share as nodes do.
			dir, p99 = filepath.Join(tmp, fmt.Sprintf("data-postgres-%d", i)), 10*time.Millisecond
			extra += "catalog:\n  type: postgres\n  dsn: ${CATALOG_DSN}\n"
			svcEnv = append(slices.Clone(env), "CATALOG_DSN="+pg.dsn)
		}
		cfgPath := filepath.Join(tmp, fmt.Sprintf("rdsbackup-%s-%d.yaml", cat, i))
		if err := writeConfig(cfgPath, dir, addr, l, extra); err != nil {
			return err
		}
		startedAt := time.Now()
		svc, err := startChild(filepath.Join(tmp, fmt.Sprintf("service-%s-%d.log", cat, i)), svcEnv, bin, "serve", "--config", cfgPath)
		if err != nil {
			return fmt.Errorf("start service: %w", err)
		}
		defer svc.stop()
		if err := svc.waitHealthy(ctx, "http://"+addr+"/healthz", 5*time.Minute); err != nil {
			return fmt.Errorf("service on %s: %w", label, err)
		}
		if i == 0 && cat == "sqlite" {
			startup = time.Since(startedAt)
		}
		idleMem[label] = readMem(strconv.Itoa(svc.pid()))
		logf("service on %s: pid %d on %s, healthy after %s, RSS %s", label, svc.pid(), addr, time.Since(startedAt).Round(time.Millisecond), mib(idleMem[label].RSS))
		targets = append(targets, &target{catalog: label, svc: svc, base: "http://" + addr, p99: p99})
	}
	var migrated []string
	if schema, err := migrations(ctx, dataDir); err == nil {
		migrated = schema[min(len(seededSchema), len(schema)):]
	}
	// 3. Validate every scenario once; the no-filter page becomes the
	// trivial server's body.
	// Each scenario is sent to every service; with one, names and
	// descriptions are as they always were.
	var all []*scenario
	for _, sc := range scenarios() {
		if sc.trivial {
			all = append(all, sc)
			continue
		}
		for _, t := range targets {
			c := *sc
			c.target = t
			if len(targets) > 1 {
				c.name, c.desc = sc.name+"@"+t.catalog, t.catalog+": "+sc.desc
			}
			all = append(all, &c)
		}
	}
	var scs []*scenario
	for _, sc := range all {
		base, _, _ := strings.Cut(sc.name, "@")
		if o.only == nil || o.only[base] || sc.trivial && o.only["trivial"] {
			scs = append(scs, sc)
		}
	}
	probe := newClient(1)
	check := map[string]string{}
	bodySize := map[string]int{}
	var trivialBody []byte
	for _, sc := range all {
		if sc.trivial {
			continue
		}
		req := probe.newRequest(sc.target.base, sc, l)
		body, err := probe.fetch(req)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		summary, err := validate(sc, req, body)
		if err != nil {
			return fmt.Errorf("scenario %s: %w (body %.300s)", sc.name, err, body)
		}
		check[sc.name], bodySize[sc.name] = summary, len(body)
		if strings.HasPrefix(sc.name, "nofilter") && sc.target == targets[0] {
			trivialBody = body
		}
	}
	bodyPath := filepath.Join(tmp, "trivial-body.json")
	if err := os.WriteFile(bodyPath, trivialBody, 0o600); err != nil {
		return err
	}
	check["trivial"], bodySize["trivial"] = "fixed body", len(trivialBody)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	taddr, err := freeAddr()
	if err != nil {
		return err
	}
	triv, err := startChild(filepath.Join(tmp, "trivial.log"), os.Environ(), self, "-serve-trivial", taddr, bodyPath)
	if err != nil {
		return fmt.Errorf("start trivial server: %w", err)
	}
	defer triv.stop()
	if err := triv.waitHealthy(ctx, "http://"+taddr+"/healthz", time.Minute); err != nil {
		return fmt.Errorf("trivial server: %w", err)
	}
	trivBase := "http://" + taddr

	if o.perfDir != "" {
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return err
		}
	}

	// 4. Load.
	type levelResult struct {
		conc    int
		results map[string]*result
	}
	var levels []levelResult
	var svcRequests uint64
	for _, conc := range o.concurrency {
		clients := make([]*client, conc)
		for i := range clients {
			clients[i] = newClient(uint64(1000*conc + i + 2))
		}
		res := map[string]*result{}
		for _, sc := range scs {
			res[sc.name] = &result{}
		}
		for round := 1; round <= o.rounds; round++ {
			for _, sc := range scs {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var base string
				var pid int
				if sc.trivial {
					base, pid = trivBase, triv.pid()
				} else {
					base, pid = sc.target.base, sc.target.svc.pid()
				}
				var perf *exec.Cmd
				if o.perfDir != "" && !sc.trivial {
					out := filepath.Join(o.perfDir, fmt.Sprintf("perf-c%d-%s-r%d.data", conc, sc.name, round))
					perf = exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out, "--", "sleep", strconv.FormatFloat((o.warmup+o.duration).Seconds(), 'f', 1, 64))
					perf.Stdout, perf.Stderr = nil, nil
					if err := perf.Start(); err != nil {
						return fmt.Errorf("perf: %w", err)
					}
				}
				logf("c=%d round %d/%d: %s", conc, round, o.rounds, sc.desc)
				before := res[sc.name].hist.n
				runWindow(ctx, clients, base, sc, l, o.warmup, o.duration, pid, res[sc.name])
				if perf != nil {
					perf.Wait()
				}
				if !sc.trivial {
					svcRequests += res[sc.name].hist.n - before
				}
			}
		}
		levels = append(levels, levelResult{conc, res})
		for _, c := range clients {
			c.http.CloseIdleConnections()
		}
	}
	afterMem := map[string]memStatus{}
	for _, t := range targets {
		afterMem[t.catalog] = readMem(strconv.Itoa(t.svc.pid()))
	}
	trivMem := readMem(strconv.Itoa(triv.pid()))
	selfMem := readMem("self")

	// 5. Report.
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s`\n\n", command)
	fmt.Fprintf(&b, "Service built from %s", source)
	if len(o.serviceEnv) > 0 {
		fmt.Fprintf(&b, ", extra environment %q", o.serviceEnv)
	}
	if o.configExtra != "" {
		fmt.Fprintf(&b, ", config extra %q", o.configExtra)
	}
	b.WriteString(".\n\n")
	b.WriteString("Machine (client, service and baseline share these cores):\n\n")
	fmt.Fprintf(&b, "- load average (1, 5, 15 min) at the start of the run: %s\n", loadBefore)
	for _, line := range machine(goVersion) {
		fmt.Fprintf(&b, "- %s\n", line)
	}
	fmt.Fprintf(&b, "\nCatalog: %d sets over %d instances (%d per instance), 2 artifacts each. As seeded (migrations up to %s): %s. After the run: %s. ",
		l.Sets, l.Instances, l.perInstance(), lastOr(seededSchema, "none"), seededFiles, catalogFiles(ctx, dataDir))
	if seed.Took != "" {
		fmt.Fprintf(&b, "Seeding (ImportBackupSets, %d sets per transaction) took %s", seedBatch, seed.Took)
		if cached {
			b.WriteString(" (cached from an earlier run)")
		}
		b.WriteString(". ")
	}
	if pg != nil {
		fmt.Fprintf(&b, "The PostgreSQL catalog is a copy of it (rdsbackup.CopyCatalog, then VACUUM ANALYZE; %s) on PostgreSQL %s with %v (fsync off), %s. ",
			pg.took.Round(time.Second), pg.version, pgSettings, pg.size(ctx))
	}
	fmt.Fprintf(&b, "The service runs on a copy of it. Service start to healthy: %s", startup.Round(time.Millisecond))
	if len(migrated) > 0 {
		fmt.Fprintf(&b, " (including the migrations %s)", strings.Join(migrated, ", "))
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "Each scenario: %s warm-up, then %s measured, × %d round(s); latency = send to last body byte, per request. "+
		"Server CPU/req and reads/req come from /proc/<pid>/stat and /proc/<pid>/io over the measured windows; "+
		"reads are read(2)/pread(2) calls, mostly SQLite page-cache misses (plus about one socket read per request).\n\n",
		o.warmup, o.duration, o.rounds)

	yes := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	// Targets per concurrency level and catalog, over the page-of-30
	// scenarios (PageSize=100 is shown for information).
	var goals []string
	for _, lv := range levels {
		triv := lv.results["trivial"]
		fmt.Fprintf(&b, "Concurrency %d:\n\n", lv.conc)
		b.WriteString("| scenario | result check | body B | req/s | p50 | p99 | max | errors | server CPU/req | server reads/req | client CPU/req | vs trivial |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		type goal struct {
			p99Met, ratioMet bool
			errs             uint64
			worstP99         time.Duration
			worstRatio       float64
		}
		byCatalog := map[*target]*goal{}
		for _, t := range targets {
			byCatalog[t] = &goal{p99Met: true, ratioMet: triv != nil, worstRatio: math.Inf(1)}
		}
		for _, sc := range scs {
			r := lv.results[sc.name]
			g := byCatalog[sc.target]
			if g == nil {
				g = &goal{}
			}
			g.errs += r.errors
			ratio := "—"
			if triv != nil && triv.rps() > 0 && !sc.trivial {
				q := r.rps() / triv.rps()
				ratio = fmt.Sprintf("%.1f%%", 100*q)
				if sc.page30 {
					g.worstRatio = min(g.worstRatio, q)
					g.ratioMet = g.ratioMet && q >= 0.5
				}
			}
			if sc.page30 && sc.target != nil {
				p99 := r.hist.quantile(0.99)
				g.worstP99 = max(g.worstP99, p99)
				g.p99Met = g.p99Met && p99 <= sc.target.p99
			}
			perReq := func(d time.Duration) string {
				if r.hist.n == 0 {
					return "—"
				}
				return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(r.hist.n))
			}
			reads := "—"
			if r.hist.n > 0 {
				reads = fmt.Sprintf("%.1f", float64(r.srvReads)/float64(r.hist.n))
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %s | %s | %s | %d | %s | %s | %s | %s |\n",
				sc.desc, check[sc.name], bodySize[sc.name], r.rps(), ms(r.hist.quantile(0.5)), ms(r.hist.quantile(0.99)), ms(r.hist.max),
				r.errors, perReq(r.srvCPU), reads, perReq(r.cliCPU), ratio)
			if r.firstErr != "" {
				fmt.Fprintf(&b, "\n(first error of %s: %s)\n\n", sc.name, r.firstErr)
			}
		}
		b.WriteString("\n")
		for _, t := range targets {
			g := byCatalog[t]
			s := fmt.Sprintf("concurrency %d, %s catalog: p99 ≤ %s %s (worst %s)", lv.conc, t.catalog, ms(t.p99), yes(g.p99Met && g.errs == 0), ms(g.worstP99))
			if triv != nil {
				s += fmt.Sprintf(", throughput ≥ 50%% of trivial %s (worst %.1f%%)", yes(g.ratioMet && g.errs == 0), 100*g.worstRatio)
			}
			if g.errs > 0 {
				s += fmt.Sprintf(", %d ERRORS", g.errs)
			}
			goals = append(goals, s)
		}
	}
	for _, t := range targets {
		fmt.Fprintf(&b, "Service on %s: VmHWM (peak RSS) %s, VmRSS %s after the run (VmRSS %s when idle after start). ",
			t.catalog, mib(afterMem[t.catalog].HWM), mib(afterMem[t.catalog].RSS), mib(idleMem[t.catalog].RSS))
	}
	fmt.Fprintf(&b, "Trivial baseline VmHWM %s; this client VmHWM %s (reset after seeding). Signed requests sent to the services: %d.\n\n",
		mib(trivMem.HWM), mib(selfMem.HWM), svcRequests)
	b.WriteString("Targets (pages of 30):\n\n")
	for _, g := range goals {
		fmt.Fprintf(&b, "- %s\n", g)
	}
	for _, t := range targets {
		fmt.Fprintf(&b, "- service on %s: RSS < 200 MiB %s (VmHWM %s)\n", t.catalog, yes(afterMem[t.catalog].HWM < 200*1024), mib(afterMem[t.catalog].HWM))
	}
	fmt.Print(b.String())

	if err := ctx.Err(); err != nil {
		return err
	}
	for _, t := range targets {
		select {
		case err := <-t.svc.done:
			t.svc.done <- err
			return fmt.Errorf("the service on %s exited during the run: %v", t.catalog, err)
		default:
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func lastOr(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return list[len(list)-1]
}

// catalogSize is the size of the catalog in data directory dir, with its
// write-ahead log.
func catalogSize(dir string) int64 {
	var n int64
	for _, f := range []string{"catalog.db", "catalog.db-wal"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// catalogFiles describes the catalog files of data directory dir: the
// database, how much of it is free pages (left by dropped tables and indexes
// until a VACUUM), and the write-ahead log.
func catalogFiles(ctx context.Context, dir string) string {
	size := func(name string) float64 {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		return float64(st.Size()) / (1 << 20)
	}
	s := fmt.Sprintf("catalog.db %.0f MiB", size("catalog.db"))
	if free, err := freeBytes(ctx, dir); err == nil {
		s += fmt.Sprintf(" (%.0f MiB of it free pages)", float64(free)/(1<<20))
	}
	return s + fmt.Sprintf(", WAL %.0f MiB", size("catalog.db-wal"))
}

// describeBackupsPage is the part of a response the checks read.
type describeBackupsPage struct {
	PageNumber       string
	PageRecordCount  string
	TotalRecordCount string
	PageSize         int
	Items            struct {
		Backup []struct {
			BackupId, DBInstanceId, BackupStatus, BackupMode, BackupType, BackupStartTime string
		}
	}
}

// validate checks that a scenario's answer is what its parameters ask for,
// so that a fast but wrong answer (an empty page, a filter ignored) cannot
// pass for a result. It returns a short summary for the report.
func validate(sc *scenario, req *http.Request, body []byte) (string, error) {
	var p describeBackupsPage
	if err := json.Unmarshal(body, &p); err != nil {
		return "", err
	}
	q := req.URL.Query()
	items := p.Items.Backup
	if strconv.Itoa(len(items)) != p.PageRecordCount {
		return "", fmt.Errorf("PageRecordCount %s but %d items", p.PageRecordCount, len(items))
	}
	want, page := 30, "1"
	if v := q.Get("PageSize"); v != "" {
		want, _ = strconv.Atoi(v)
	}
	if v := q.Get("PageNumber"); v != "" {
		page = v
	}
	if p.PageSize != want || p.PageNumber != page {
		return "", fmt.Errorf("answered page %s of size %d, not page %s of size %d", p.PageNumber, p.PageSize, page, want)
	}
	for _, it := range items {
		if it.DBInstanceId != q.Get("DBInstanceId") {
			return "", fmt.Errorf("item of instance %s", it.DBInstanceId)
		}
		for _, f := range [][2]string{{"BackupStatus", it.BackupStatus}, {"BackupMode", it.BackupMode}, {"BackupType", it.BackupType}, {"BackupId", it.BackupId}} {
			if v := q.Get(f[0]); v != "" && v != f[1] {
				return "", fmt.Errorf("%s=%s answered %s", f[0], v, f[1])
			}
		}
		if q.Get("StartTime") != "" {
			from, _ := time.Parse("2006-01-02T15:04Z", q.Get("StartTime"))
			to, _ := time.Parse("2006-01-02T15:04Z", q.Get("EndTime"))
			st, err := time.Parse(time.RFC3339, it.BackupStartTime)
			if err != nil || st.Before(from) || st.After(to) {
				return "", fmt.Errorf("set started %s, outside %s..%s", it.BackupStartTime, from, to)
			}
		}
	}
	base, _, _ := strings.Cut(sc.name, "@")
	switch {
	case base == "id":
		if len(items) != 1 {
			return "", fmt.Errorf("BackupId answered %d items", len(items))
		}
	case base == "range":
		if len(items) == 0 {
			return "", errors.New("no set in a month")
		}
	case len(items) != want:
		return "", fmt.Errorf("want a full page of %d, got %d", want, len(items))
	}
	return fmt.Sprintf("%d of %s", len(items), p.TotalRecordCount), nil
}

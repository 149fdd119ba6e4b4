package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// The restore phase (MariaDB): a Logical set of -base-size taken through
// the API of a real `rdsbackup serve` with log backup on, then -log-size of
// binary log written, a target time T, one more batch after T; then, with
// the service stopped, on fresh target servers with the same settings:
//
//   - rdsbackup: `rdsbackup restore --time T` (reads the catalog and the
//     store, decompresses and checks the objects, replays);
//   - by hand: `mariadb < dump.sql` of a plain mariadb-dump taken right
//     after the set (no write in between), then `mariadb-binlog
//     --start-position=POS --stop-datetime=T+1s FILES | mariadb
//     --binary-mode` over the source's own binary log files.
//
// Both must give the row counts the source had at T.

const timeLayout = "2006-01-02T15:04:05Z"

// targetArgs are the mariadbd options of both restore targets: a buffer
// pool and redo log sized for the restore, as a real target would have.
var targetArgs = []string{"--innodb-buffer-pool-size=1G", "--innodb-log-file-size=256M"}

func (b *bench) restore(ctx context.Context) error {
	o := b.o
	if o.engine != "mariadb" {
		return errors.New("the restore phase is implemented for MariaDB only")
	}
	fmt.Printf("## Restore to a time: mariadb, base %s, logs %s\n\n", fmtMiB(o.baseSize), fmtMiB(o.logSize))
	bin := filepath.Join(o.work, "rdsbackup")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rdsbackup")
	build.Dir = o.repo
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/rdsbackup: %v\n%s", err, out)
	}
	db := b.db
	if _, err := db.ExecContext(ctx, "SET GLOBAL max_binlog_size = 67108864"); err != nil {
		return err
	}
	for _, q := range []string{"CREATE DATABASE shop",
		"CREATE TABLE shop.base (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(255) NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE shop.log (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(255) NOT NULL) ENGINE=InnoDB"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	t0 := time.Now()
	// ~200 bytes a row, in dump and in row events alike.
	const batch = 20000
	ins := func(table string) error {
		_, err := db.ExecContext(ctx, "INSERT INTO shop."+table+" (v) SELECT CONCAT(MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())) FROM seq_1_to_"+strconv.Itoa(batch))
		return err
	}
	for n := int64(0); n < o.baseSize; n += batch * 200 {
		if err := ins("base"); err != nil {
			return err
		}
	}
	if _, err := db.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		return err
	}
	fmt.Printf("base generated in %.1f s\n", time.Since(t0).Seconds())

	svc, err := b.startServe(ctx, bin)
	if err != nil {
		return err
	}
	defer svc.stop()
	// The stream is on once a first file is stored.
	if _, err := db.ExecContext(ctx, "INSERT INTO shop.log (v) VALUES ('warm-up')"); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "FLUSH BINARY LOGS"); err != nil {
		return err
	}
	if err := svc.waitBinlogFiles(ctx, 2*time.Minute); err != nil {
		return err
	}
	t0 = time.Now()
	setID, err := svc.backup(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("Logical set %s taken through the API in %.1f s\n", setID, time.Since(t0).Seconds())

	// The by-hand arm's dump, right after the set: nothing is written in
	// between, so both start from the same data.
	hand := filepath.Join(o.work, "hand")
	if err := os.MkdirAll(hand, 0o700); err != nil {
		return err
	}
	dumpPath := filepath.Join(hand, "shop.sql")
	if err := b.runClient(ctx, "", dumpPath, "mariadb-dump", "--single-transaction", "--master-data=2", "--databases", "shop"); err != nil {
		return err
	}
	startFile, startPos, err := dumpPosition(dumpPath)
	if err != nil {
		return err
	}

	binlogBytes := func() (int64, error) {
		rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		var total int64
		for rows.Next() {
			var name string
			var size int64
			cols, _ := rows.Columns()
			vals := []any{&name, &size}
			for len(vals) < len(cols) {
				vals = append(vals, new(any))
			}
			if err := rows.Scan(vals...); err != nil {
				return 0, err
			}
			if name >= startFile {
				total += size
			}
		}
		return total - startPos, rows.Err()
	}
	t0 = time.Now()
	for {
		n, err := binlogBytes()
		if err != nil {
			return err
		}
		if n >= o.logSize {
			fmt.Printf("binary log after the set: %s, written in %.1f s\n", fmtMiB(n), time.Since(t0).Seconds())
			break
		}
		if err := ins("log"); err != nil {
			return err
		}
	}
	time.Sleep(1100 * time.Millisecond)
	target := time.Now().UTC().Truncate(time.Second)
	time.Sleep(1100 * time.Millisecond)
	var wantBase, wantLog int64
	if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM shop.base), (SELECT COUNT(*) FROM shop.log)").Scan(&wantBase, &wantLog); err != nil {
		return err
	}
	if err := ins("log"); err != nil { // after T: restored by neither
		return err
	}
	t0 = time.Now()
	if err := svc.waitWindow(ctx, target, o.uploadInterval+2*time.Minute); err != nil {
		return err
	}
	fmt.Printf("target time %s reached the recovery window %.1f s after the last write\n", target.Format(timeLayout), time.Since(t0).Seconds())
	var files []string
	entries, _ := os.ReadDir(b.maria.DataDir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), "mariadb-bin.") && en.Name() >= startFile && en.Name() != "mariadb-bin.index" {
			files = append(files, filepath.Join(b.maria.DataDir, en.Name()))
		}
	}
	slices.Sort(files)
	svc.stop()

	fmt.Println()
	fmt.Println("| round | arm | wall | detail | rows at T |")
	fmt.Println("|---:|---|---:|---|---|")
	sums := map[string][]time.Duration{}
	for r := 0; r < o.restoreRounds; r++ {
		arms := []string{"rdsbackup", "by hand"}
		if r%2 == 1 {
			arms = []string{"by hand", "rdsbackup"}
		}
		for _, arm := range arms {
			tgt, err := localserver.StartMariaDB(ctx, localserver.MariaDBOptions{Dir: filepath.Join(o.work, fmt.Sprintf("target-%d-%s", r, strings.ReplaceAll(arm, " ", ""))),
				RootPassword: "tp" + rand.Text()[:16], Args: targetArgs})
			if err != nil {
				return err
			}
			var d, load time.Duration
			detail := "see its output below"
			if arm == "rdsbackup" {
				d, err = svc.restoreCLI(ctx, target, tgt.DSN(""), filepath.Join(o.work, fmt.Sprintf("restore-work-%d", r)))
			} else {
				d, load, err = handRestore(ctx, tgt, dumpPath, startPos, target, files)
				detail = fmt.Sprintf("dump %.1f s, then replay %.1f s", load.Seconds(), (d - load).Seconds())
			}
			if err != nil {
				tgt.Stop()
				return fmt.Errorf("%s: %w", arm, err)
			}
			check := "ok"
			if gotBase, gotLog, err := countShop(ctx, tgt); err != nil {
				check = err.Error()
			} else if gotBase != wantBase || gotLog != wantLog {
				check = fmt.Sprintf("WRONG: %d+%d rows, want %d+%d", gotBase, gotLog, wantBase, wantLog)
			}
			tgt.Stop()
			tgt.Remove()
			sums[arm] = append(sums[arm], d)
			fmt.Printf("| %d | %s | %.1f s | %s | %s |\n", r+1, arm, d.Seconds(), detail, check)
		}
	}
	for i, p := range svc.progress {
		fmt.Printf("rdsbackup restore --time, round %d, its output:\n\n```\n%s```\n\n", i+1, p)
	}
	mr, mh := meanDur(sums["rdsbackup"]), meanDur(sums["by hand"])
	fmt.Printf("\nmean: rdsbackup %.1f s, by hand %.1f s, ratio %.3f\n\n", mr.Seconds(), mh.Seconds(), mr.Seconds()/mh.Seconds())
	return nil
}

func meanDur(v []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range v {
		s += d
	}
	return s / time.Duration(max(len(v), 1))
}

func fmtMiB(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func countShop(ctx context.Context, m *localserver.MariaDB) (int64, int64, error) {
	db, err := m.Open(ctx, "")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	var a, c int64
	err = db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM shop.base), (SELECT COUNT(*) FROM shop.log)").Scan(&a, &c)
	return a, c, err
}

// runClient runs a MariaDB client tool against the source, stdout to a
// file when out is set.
func (b *bench) runClient(ctx context.Context, in, out, tool string, args ...string) error {
	cmd := exec.CommandContext(ctx, tool, append(append([]string{}, b.clientArgs...), args...)...)
	cmd.Env = b.clientEnv
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if out != "" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", tool, err, stderr.String())
	}
	return nil
}

var changeMasterRE = regexp.MustCompile(`CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)`)

// dumpPosition reads the binary log position a --master-data=2 dump
// records in its header.
func dumpPosition(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for i := 0; sc.Scan() && i < 100; i++ {
		if m := changeMasterRE.FindStringSubmatch(sc.Text()); m != nil {
			pos, _ := strconv.ParseInt(m[2], 10, 64)
			return m[1], pos, nil
		}
	}
	return "", 0, fmt.Errorf("%s: no CHANGE MASTER TO line", path)
}

// handRestore is what an operator does: the dump into mariadb, then the
// binary log from the dump's position to T into mariadb.
func handRestore(ctx context.Context, tgt *localserver.MariaDB, dump string, pos int64, target time.Time, files []string) (total, load time.Duration, err error) {
	start := time.Now()
	in, err := os.Open(dump)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	loader := exec.CommandContext(ctx, "mariadb", tgt.ClientArgs()...)
	loader.Env, loader.Stdin = tgt.ClientEnv(), in
	if out, err := loader.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("mariadb < dump: %v: %s", err, out)
	}
	load = time.Since(start)
	args := append([]string{"--start-position=" + strconv.FormatInt(pos, 10),
		"--stop-datetime=" + target.Add(time.Second).Format("2006-01-02 15:04:05")}, files...)
	shell := "mariadb-binlog \"$@\" | mariadb " + strings.Join(quoteAll(tgt.ClientArgs()), " ") + " --binary-mode"
	replay := exec.CommandContext(ctx, "bash", append([]string{"-c", "set -o pipefail; " + shell, "bash"}, args...)...)
	replay.Env = append(tgt.ClientEnv(), "TZ=UTC")
	if out, err := replay.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("mariadb-binlog | mariadb: %v: %s", err, out)
	}
	return time.Since(start), load, nil
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}

// serveProc is a running `rdsbackup serve` archiving the source's logs.
type serveProc struct {
	bin, cfg, dataDir string
	addr              string
	ak, secret        string
	env               []string
	cmd               *exec.Cmd
	done              chan struct{}
	http              *http.Client
	progress          []string // of each restoreCLI, stamped
}

const instanceID = "rm-src"

func (b *bench) startServe(ctx context.Context, bin string) (*serveProc, error) {
	dir := filepath.Join(b.o.work, "serve")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &serveProc{bin: bin, cfg: filepath.Join(dir, "rdsbackup.yaml"), dataDir: filepath.Join(dir, "data"), addr: addr,
		ak: "LTAIpitr" + rand.Text()[:12], secret: rand.Text(), http: &http.Client{Timeout: time.Minute}}
	cfg := fmt.Sprintf(`listen: %s
dataDir: %s
accountId: "1234567890"
instances:
  - id: %s
    engine: MariaDB
    dsn: "${PITRPERF_DSN}"
    backupPolicy:
      enableBackupLog: true
logs:
  uploadInterval: %s
backups:
  schedule: false
`, addr, s.dataDir, instanceID, b.o.uploadInterval)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	s.env = append(os.Environ(), "PITRPERF_DSN="+b.maria.DSN(""), "RDSBACKUP_ACCESS_KEY_ID="+s.ak, "RDSBACKUP_ACCESS_KEY_SECRET="+s.secret)
	logf, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--config", s.cfg)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	for deadline := time.Now().Add(time.Minute); ; {
		if resp, err := s.http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, errors.New("rdsbackup serve exited at start; see " + filepath.Join(dir, "serve.log"))
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("rdsbackup serve did not answer /healthz within a minute")
		}
	}
}

func (s *serveProc) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// call makes a V2-signed RPC call as the aliyun SDK does and decodes the
// JSON answer into out.
func (s *serveProc) call(ctx context.Context, action string, params map[string]string, out any) error {
	p := url.Values{
		"Action": {action}, "Format": {"JSON"}, "Version": {"2014-08-15"}, "AccessKeyId": {s.ak},
		"SignatureMethod": {"HMAC-SHA1"}, "SignatureVersion": {"1.0"}, "SignatureNonce": {rand.Text()},
		"Timestamp": {time.Now().UTC().Format(timeLayout)},
	}
	for k, v := range params {
		p.Set(k, v)
	}
	p.Set("Signature", rpc.SignV2(s.secret, rpc.StringToSignV2(http.MethodPost, p)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/", strings.NewReader(p.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", action, resp.Status, body)
	}
	return json.Unmarshal(body, out)
}

func (s *serveProc) waitBinlogFiles(ctx context.Context, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; time.Sleep(500 * time.Millisecond) {
		var r struct{ TotalRecordCount int }
		now := time.Now().UTC()
		err := s.call(ctx, "DescribeBinlogFiles", map[string]string{"DBInstanceId": instanceID,
			"StartTime": now.Add(-time.Hour).Format(timeLayout), "EndTime": now.Add(time.Hour).Format(timeLayout)}, &r)
		if err != nil {
			return err
		}
		if r.TotalRecordCount > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no binary log file stored within %v", limit)
		}
	}
}

// backup takes a Logical set through the API and returns its BackupId.
func (s *serveProc) backup(ctx context.Context) (string, error) {
	var created struct{ BackupJobId string }
	if err := s.call(ctx, "CreateBackup", map[string]string{"DBInstanceId": instanceID, "BackupMethod": "Logical"}, &created); err != nil {
		return "", err
	}
	for {
		var tasks struct {
			Items struct {
				BackupJob []struct{ BackupJobId, BackupId, BackupStatus, FailureReason string }
			}
		}
		if err := s.call(ctx, "DescribeBackupTasks", map[string]string{"DBInstanceId": instanceID, "BackupJobId": created.BackupJobId}, &tasks); err != nil {
			return "", err
		}
		if len(tasks.Items.BackupJob) == 1 {
			switch j := tasks.Items.BackupJob[0]; j.BackupStatus {
			case "Finished":
				return created.BackupJobId, nil
			case "Failed":
				return "", fmt.Errorf("backup failed: %s", j.FailureReason)
			}
		}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// waitWindow waits until the recovery window reaches t.
func (s *serveProc) waitWindow(ctx context.Context, t time.Time, limit time.Duration) error {
	for deadline := time.Now().Add(limit); ; time.Sleep(500 * time.Millisecond) {
		var r struct{ RecoveryBeginTime, RecoveryEndTime string }
		if err := s.call(ctx, "DescribeLocalAvailableRecoveryTime", map[string]string{"DBInstanceId": instanceID}, &r); err != nil {
			return err
		}
		if end, err := time.Parse(timeLayout, r.RecoveryEndTime); err == nil && !end.Before(t) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the recovery window did not reach %s within %v (now %s to %s)", t.Format(timeLayout), limit, r.RecoveryBeginTime, r.RecoveryEndTime)
		}
	}
}

// restoreCLI runs `rdsbackup restore --time` into the target.
func (s *serveProc) restoreCLI(ctx context.Context, t time.Time, dsn, workDir string) (time.Duration, error) {
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return 0, err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, s.bin, "restore", "--config", s.cfg, "--instance", instanceID, "--time", t.Format(timeLayout), "--work-dir", workDir)
	cmd.Env = append(append([]string{}, s.env...), "RDSBACKUP_TARGET_DSN="+dsn)
	// Its progress lines, stamped with the time since the start, show
	// where the time goes (fetching the logs, the dump, the replay).
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out strings.Builder
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintf(&out, "  %6.1f s  %s\n", time.Since(start).Seconds(), sc.Text())
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-copied
	if err != nil {
		return 0, fmt.Errorf("rdsbackup restore --time: %v: %s", err, out.String())
	}
	s.progress = append(s.progress, out.String())
	return time.Since(start), nil
}

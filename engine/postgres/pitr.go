package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// PITROptions say what RecoverToTime replays.
type PITROptions struct {
	// Target is the time to recover to: every transaction committed at or
	// before it is there, none after. Zero: replay every file given (the
	// latest time they reach).
	Target time.Time
	// Files are the WAL files to replay, in WAL order, from the segment
	// holding the base backup's start on (earlier ones are skipped). The
	// last may be the segment being written when it was uploaded (its
	// tail zeroes). Name is needed; HasCommits and EndTime, when known,
	// let a Target at or after the last commit replay to the end of the
	// files (PostgreSQL stops at a target time only on seeing a later
	// commit).
	Files []WALFile
	// Until, when set, is a time up to which Files are known to hold every
	// transaction committed (say, when the newest was received); without
	// it they reach the last commit in them. A Target after that is
	// refused: the WAL held does not reach it.
	Until time.Time
	// BaseConsistentTime, when set, is the time the base backup is
	// consistent at (its end); a Target before it is refused, since the
	// restored instance could not be older than that.
	BaseConsistentTime time.Time
	// Open returns the bytes of one of Files (from the object store).
	Open func(ctx context.Context, f WALFile) (io.ReadCloser, error)
	// StartTimeout bounds the recovery; 0 means no bound but ctx's.
	StartTimeout time.Duration
	// Progress, when set, is told how many of the files were copied.
	Progress func(done, total int)
}

// RecoveryError is a time restore that did not reach its target.
type RecoveryError struct {
	// Reason is "wal-ends-before-target" (the WAL given ends before the
	// target time: "recovery ended before configured recovery target was
	// reached"), "target-before-backup" (the target is before the end of
	// the base backup) or "failed" (the server stopped for another
	// reason).
	Reason string
	// LastTransaction is the commit time of the last transaction replayed,
	// when the server said.
	LastTransaction time.Time
	Log             string // the server's messages that tell why
	msg             string
}

func (e *RecoveryError) Error() string { return e.msg }

// RecoveredServer is the server RecoverToTime left running on the restored
// data directory, reachable only through a socket in a private directory
// (no TCP), where every local connection is trusted (the data directory's
// own pg_hba.conf is not used while it runs).
type RecoveredServer struct {
	DataDir   string
	SocketDir string
	Port      int
	// StoppedAt is PostgreSQL's account of where recovery stopped, e.g.
	// "recovery stopping before commit of transaction 750, time
	// 2026-12-03 08:10:01.5+00", or "" when every file was replayed.
	StoppedAt string
	// LastTransaction is the commit time of the last transaction replayed
	// ("last completed transaction was at log time …"); zero when the
	// server did not say.
	LastTransaction time.Time
	// Log is the server's output during recovery.
	Log string

	cmd     *exec.Cmd
	exited  chan struct{}
	workDir string
	once    sync.Once
}

// URL returns a URL for database db as user on the recovered server's
// socket.
func (r *RecoveredServer) URL(user, db string) string {
	q := url.Values{"host": {r.SocketDir}, "port": {fmt.Sprint(r.Port)}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(user), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// Stop shuts the server down cleanly (fast shutdown; SIGKILL after a
// minute) and removes the private directory of the recovery. The data
// directory stays: a promoted cluster with its own configuration, ready to
// be started like any other.
func (r *RecoveredServer) Stop() {
	r.once.Do(func() {
		_ = r.cmd.Process.Signal(os.Interrupt) // fast shutdown
		select {
		case <-r.exited:
		case <-time.After(time.Minute):
			childproc.Kill(r.cmd)
			<-r.exited
		}
		os.RemoveAll(r.workDir)
	})
}

var (
	backupLabelStartRE = regexp.MustCompile(`(?m)^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)`)
	stoppingRE         = regexp.MustCompile(`recovery stopping (?:before|after) [^\n]*`)
	lastTxRE           = regexp.MustCompile(`last completed transaction was at log time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d(?::?\d\d)?)?`)
	restoredRE         = regexp.MustCompile(`restored log file "([0-9A-F]{24})" from archive`)
)

// RecoverToTime restores a physical backup (the tar of the "instance"
// part, as RestorePhysical) into dataDir and replays WAL on it up to
// o.Target, with the postgres server of the backup's major version (as the
// owner of dataDir when running as root). The WAL files are copied first
// into a private directory next to dataDir, which restore_command copies
// from ("cp", no secret in it); recovery_target_time is o.Target in UTC and
// recovery_target_action is promote, so the server opens read-write once
// there. Success means the server said it reached the target ("recovery
// stopping before …") or, when replaying to the end, that it restored the
// last file given; a *RecoveryError says why not.
//
// The server is left running for the caller to read from (for instance to
// copy databases into another instance); Stop it when done. On error
// nothing is left running, and dataDir holds what was restored so far.
func (e *Engine) RecoverToTime(ctx context.Context, base io.Reader, dataDir string, o PITROptions) (*RecoveredServer, error) {
	if o.Open == nil {
		return nil, errors.New("RecoverToTime needs an Open function for the WAL files")
	}
	if !o.Target.IsZero() && o.Target.Before(o.BaseConsistentTime) {
		return nil, &RecoveryError{Reason: "target-before-backup",
			msg: fmt.Sprintf("the target time %s is before the end of the base backup (%s): restore from an older backup",
				o.Target.UTC().Format(time.RFC3339Nano), o.BaseConsistentTime.UTC().Format(time.RFC3339))}
	}
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if err := e.RestorePhysical(ctx, base, dataDir); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, err
	}
	uid, gid, owned := fileOwner(fi)
	asOwner := owned && os.Geteuid() == 0
	chown := func(p string) error {
		if !asOwner {
			return nil
		}
		return os.Lchown(p, uid, gid)
	}

	verText, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return nil, err
	}
	ver, err := parseToolVersion("(PostgreSQL) " + strings.TrimSpace(string(verText)))
	if err != nil {
		return nil, fmt.Errorf("read PG_VERSION of the backup: %w", err)
	}
	server, err := e.findExactTool(ctx, "postgres", ver)
	if err != nil {
		return nil, err
	}
	// postgres finds its share directory from its real path, and the
	// server's user may not be able to reach a linked BinDir.
	if server, err = filepath.EvalSymlinks(server); err != nil {
		return nil, err
	}
	label, err := os.ReadFile(filepath.Join(dataDir, "backup_label"))
	if err != nil {
		return nil, fmt.Errorf("the physical backup has no backup_label, so it cannot be rolled forward: %w", err)
	}
	m := backupLabelStartRE.FindSubmatch(label)
	if m == nil {
		return nil, errors.New("the backup_label of the physical backup has no START WAL LOCATION")
	}
	startSeg := string(m[1])

	work, err := os.MkdirTemp(filepath.Dir(dataDir), ".rdsbackup-pitr-")
	if err != nil {
		return nil, fmt.Errorf("create the recovery's private directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(work)
		}
	}()
	if strings.ContainsAny(work, `'"%\ `) || len(work) > 90 {
		return nil, fmt.Errorf("the directory of the data directory, %s, must be a short path without quotes, spaces, backslashes or %%", filepath.Dir(dataDir))
	}
	walDir := filepath.Join(work, "wal")
	if err := os.Mkdir(walDir, 0o700); err != nil {
		return nil, err
	}
	for _, p := range []string{work, walDir} {
		if err := chown(p); err != nil {
			return nil, err
		}
	}

	// The files, and the decision to stop at the target or at the end.
	var lastCommit time.Time
	var lastSeg string
	var todo []WALFile
	for _, f := range o.Files {
		isSeg := segmentNameRE.MatchString(f.Name)
		if !isSeg && !historyNameRE.MatchString(f.Name) {
			return nil, fmt.Errorf("%q is not a WAL file name", f.Name)
		}
		if isSeg && f.Name[8:] < startSeg[8:] {
			continue // before the base backup
		}
		todo = append(todo, f)
		if isSeg {
			lastSeg = f.Name
			if f.HasCommits && f.EndTime.After(lastCommit) {
				lastCommit = f.EndTime
			}
		}
	}
	n := len(todo)
	// Fetched a few at a time: the store's latency and the decompression
	// overlap.
	if err := copyWALFiles(ctx, o.Open, todo, walDir, chown, o.Progress); err != nil {
		return nil, err
	}
	if lastSeg == "" || lastSeg[8:] < startSeg[8:] {
		return nil, &RecoveryError{Reason: "wal-ends-before-target",
			msg: fmt.Sprintf("no WAL from the base backup's start (segment %s) on was given: the backup cannot be rolled forward", startSeg)}
	}
	reach := lastCommit
	if o.Until.After(reach) {
		reach = o.Until
	}
	if !o.Target.IsZero() && o.Target.After(reach) {
		re := &RecoveryError{Reason: "wal-ends-before-target", LastTransaction: lastCommit,
			msg: fmt.Sprintf("the WAL held ends before the target time %s", o.Target.UTC().Format(time.RFC3339Nano))}
		if !reach.IsZero() {
			re.msg += ": it reaches " + reach.UTC().Format(time.RFC3339Nano)
		}
		return nil, re
	}
	// PostgreSQL stops at a target time on the first commit after it; with
	// none after it in the files, replaying them all is the same restore.
	toEnd := o.Target.IsZero() || (!lastCommit.IsZero() && !o.Target.Before(lastCommit))

	hba := filepath.Join(work, "pg_hba.conf")
	ident := filepath.Join(work, "pg_ident.conf")
	for p, body := range map[string]string{hba: "local all all trust\n", ident: ""} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return nil, err
		}
		if err := chown(p); err != nil {
			return nil, err
		}
	}
	signal := filepath.Join(dataDir, "recovery.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return nil, err
	}
	if err := chown(signal); err != nil {
		return nil, err
	}
	const port = 5432 // only names the socket, in a directory of its own
	args := []string{"-D", dataDir, "-p", fmt.Sprint(port),
		"-c", "listen_addresses=", "-c", "unix_socket_directories=" + work,
		"-c", "hba_file=" + hba, "-c", "ident_file=" + ident,
		"-c", "logging_collector=off", "-c", "log_destination=stderr", "-c", "lc_messages=C",
		// The source's archive_command must not archive the restored
		// instance's WAL into the source's archive.
		"-c", "archive_mode=off",
		"-c", "restore_command=cp \"" + walDir + "/%f\" \"%p\"",
		"-c", "recovery_target_action=promote",
		"-c", "recovery_target_timeline=current",
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgresql.conf")); err != nil {
		// Debian keeps it in /etc: the backup has none.
		conf := filepath.Join(work, "postgresql.conf")
		if err := os.WriteFile(conf, nil, 0o600); err != nil {
			return nil, err
		}
		if err := chown(conf); err != nil {
			return nil, err
		}
		args = append(args, "-c", "config_file="+conf)
	}
	targetArgs := args
	if !toEnd {
		targetArgs = append(slices.Clone(args), "-c", "recovery_target_time="+o.Target.UTC().Format("2006-01-02 15:04:05.999999")+"+00")
	}
	log := e.logger().With("dir", dataDir)
	log.Info("recovering to a time", "target", o.Target, "to_end", toEnd, "wal_files", n, "from", startSeg, "to", lastSeg)
	waitCtx := ctx
	if o.StartTimeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, o.StartTimeout)
		defer cancel()
	}
	launch := func(args []string, logName string) (*RecoveredServer, string, error) {
		logPath := filepath.Join(work, logName)
		logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", err
		}
		defer logFile.Close()
		cmd := childproc.Command(context.Background(), server, args...)
		cmd.Dir = dataDir
		cmd.Env = childproc.Env("LC_MESSAGES=C")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if asOwner {
			runAs(cmd, uid, gid)
		}
		if err := cmd.Start(); err != nil {
			return nil, "", fmt.Errorf("start postgres on the restored data directory: %w", err)
		}
		r := &RecoveredServer{DataDir: dataDir, SocketDir: work, Port: port, cmd: cmd, exited: make(chan struct{}), workDir: work}
		go func() { cmd.Wait(); close(r.exited) }()
		for {
			b, _ := os.ReadFile(logPath)
			out := string(b)
			if strings.Contains(out, "database system is ready to accept connections") {
				return r, out, nil
			}
			select {
			case <-r.exited:
				b, _ := os.ReadFile(logPath)
				return nil, string(b), recoveryFailure(string(b), o.Target)
			case <-waitCtx.Done():
				r.Stop()
				return nil, out, fmt.Errorf("recovery of %s did not finish: %w\n%s", dataDir, waitCtx.Err(), lastLines(out, 20))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	r, out, err := launch(targetArgs, "postgres.log")
	var re *RecoveryError
	if errors.As(err, &re) && re.Reason == "wal-ends-before-target" && !o.Until.IsZero() && !o.Target.After(o.Until) && lastRestored(out) == lastSeg {
		// Every file was replayed and none has a commit after the target,
		// which the caller says the files reach: the same restore as
		// replaying them all. The server stopped in recovery and goes on
		// from its last restart point.
		log.Info("no commit after the target in the WAL given; replaying all of it", "last_transaction", re.LastTransaction)
		toEnd = true
		r, out, err = launch(args, "postgres-to-end.log")
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*RecoveredServer, error) {
		r.Stop()
		return nil, err
	}
	r.Log = out
	r.LastTransaction = lastTransaction(out)
	if toEnd {
		if got := lastRestored(out); got != lastSeg {
			if got == "" {
				got = "none"
			}
			return fail(&RecoveryError{Reason: "failed", Log: lastLines(out, 20), LastTransaction: r.LastTransaction,
				msg: fmt.Sprintf("recovery ended at WAL file %s, before the last one given (%s): the WAL has a gap or is damaged", got, lastSeg)})
		}
		if !o.Target.IsZero() && r.LastTransaction.After(o.Target) {
			return fail(&RecoveryError{Reason: "failed", Log: lastLines(out, 20), LastTransaction: r.LastTransaction,
				msg: fmt.Sprintf("recovery replayed a transaction of %s, after the target %s: the WAL files' time spans are wrong", r.LastTransaction.UTC().Format(time.RFC3339Nano), o.Target.UTC().Format(time.RFC3339Nano))})
		}
	} else {
		r.StoppedAt = stoppingRE.FindString(out)
		if r.StoppedAt == "" {
			return fail(&RecoveryError{Reason: "failed", Log: lastLines(out, 20), LastTransaction: r.LastTransaction,
				msg: "the server opened without saying that recovery stopped at the target time"})
		}
	}
	log.Info("recovered", "stopped", r.StoppedAt, "last_transaction", r.LastTransaction)
	ok = true
	return r, nil
}

// recoveryFailure explains a server that exited during recovery.
func recoveryFailure(out string, target time.Time) error {
	re := &RecoveryError{Reason: "failed", Log: fatalLines(out), LastTransaction: lastTransaction(out)}
	switch {
	case strings.Contains(out, "recovery ended before configured recovery target was reached"):
		re.Reason = "wal-ends-before-target"
		re.msg = fmt.Sprintf("the WAL held ends before the target time %s", target.UTC().Format(time.RFC3339Nano))
		if !re.LastTransaction.IsZero() {
			re.msg += "; the last transaction in it committed at " + re.LastTransaction.UTC().Format(time.RFC3339Nano)
		}
	case strings.Contains(out, "before consistent recovery point"):
		re.Reason = "target-before-backup"
		re.msg = fmt.Sprintf("the target time %s is before the end of the base backup: restore from an older backup", target.UTC().Format(time.RFC3339Nano))
	default:
		re.msg = "postgres stopped during recovery: " + re.Log
	}
	return re
}

// lastRestored is the last segment the server says it restored.
func lastRestored(out string) string {
	all := restoredRE.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1][1]
}

func lastTransaction(out string) time.Time {
	all := lastTxRE.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return time.Time{}
	}
	m := all[len(all)-1]
	zone := m[2]
	if zone == "" {
		zone = "+00"
	}
	if len(zone) == 3 {
		zone += ":00"
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999-07:00", m[1]+zone)
	if err != nil {
		return time.Time{}
	}
	return t
}

func fatalLines(out string) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "FATAL:") || strings.Contains(l, "PANIC:") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) == 0 {
		return lastLines(out, 10)
	}
	return strings.Join(lines, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fetchers is how many WAL files are fetched at once.
const fetchers = 4

// copyWALFiles copies files into dir, fetchers at a time.
func copyWALFiles(ctx context.Context, open func(context.Context, WALFile) (io.ReadCloser, error), files []WALFile, dir string, chown func(string) error, progress func(done, total int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		done  int
		wg    sync.WaitGroup
	)
	next := make(chan WALFile)
	for range min(fetchers, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range next {
				err := copyWALFile(ctx, open, f, filepath.Join(dir, f.Name), chown)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				done++
				if err == nil && progress != nil {
					progress(done, len(files))
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case next <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// copyWALFile copies one WAL file into the recovery's directory.
func copyWALFile(ctx context.Context, open func(context.Context, WALFile) (io.ReadCloser, error), f WALFile, dst string, chown func(string) error) error {
	rc, err := open(ctx, f)
	if err != nil {
		return fmt.Errorf("fetch WAL file %s: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, rdsbackup.ContextReader(ctx, rc))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && segmentNameRE.MatchString(f.Name) {
		err = padSegment(dst)
	}
	if err == nil {
		err = chown(dst)
	}
	if err != nil {
		return fmt.Errorf("copy WAL file %s: %w", f.Name, err)
	}
	return nil
}

// padSegment extends a segment stored before it was complete to the
// segment size its first page gives (xlp_seg_size of the long page
// header), with zeroes, which PostgreSQL reads as the end of the WAL: it
// refuses archived segments of another size.
func padSegment(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [40]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("read the first page header: %w", err)
	}
	if binary.LittleEndian.Uint16(hdr[2:4])&0x0002 == 0 { // XLP_LONG_HEADER
		return errors.New("the segment does not start with a long page header")
	}
	size := int64(binary.LittleEndian.Uint32(hdr[32:36]))
	if size < 1<<20 || size > 1<<30 || size&(size-1) != 0 {
		return fmt.Errorf("the segment's page header gives an invalid segment size %d", size)
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case fi.Size() == size:
		return nil
	case fi.Size() > size:
		return fmt.Errorf("the segment has %d bytes, more than the segment size %d", fi.Size(), size)
	}
	return f.Truncate(size)
}

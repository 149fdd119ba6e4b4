package mysql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// restorePhysicalToTime restores a Physical set (mariadb-backup) and rolls
// it forward to req.Time:
//
//  1. mbstream -x and mariadb-backup --prepare into req.DataDir, or into a
//     scratch data directory under req.WorkDir for a target instance
//     (RestorePhysical);
//  2. a temporary mariadbd on it, reachable through a socket only, with
//     its binary log and event scheduler off;
//  3. mariadb-binlog --start-position=POS --stop-datetime=T+1s FILE… |
//     mariadb --binary-mode into it, from the set's "instance" position,
//     every database (the whole instance was copied at that position);
//  4. for a data directory: a clean shutdown, leaving it ready to start;
//     for a target instance: each database chosen copied into it
//     (mariadb-dump | mariadb, as a Logical backup and restore would),
//     under its new name, after checking that no name exists there.
func (e *Engine) restorePhysicalToTime(ctx context.Context, req rdsbackup.PointInTimeRequest, progress func(int)) error {
	var part *rdsbackup.Artifact
	for i, a := range req.Set.Artifacts {
		if a.Kind == rdsbackup.PartPhysical {
			part = &req.Set.Artifacts[i]
		}
	}
	if part == nil {
		return fmt.Errorf("backup set %d has no physical part", req.Set.ID)
	}
	if req.Target == nil && req.DataDir == "" {
		return errors.New("a restore to a time needs a target instance or a data directory")
	}
	if req.Target == nil && len(req.Databases) > 0 {
		return rdsbackup.Errorf(rdsbackup.EInvalidCombination, "A restore into a data directory restores the whole instance: databases cannot be chosen.")
	}
	if req.WorkDir == "" {
		return errors.New("a restore of a physical set to a time needs a WorkDir")
	}
	replay := !req.Time.IsZero() || len(req.Logs) > 0
	pos := req.Positions["instance"]
	if replay && pos.File == "" {
		return rdsbackup.Errorf(rdsbackup.EPITRNotCovered,
			"The backup set %d has no binary log position (it was taken while the binary log was off): it cannot be rolled forward.", req.Set.ID)
	}
	binlog, err := e.lookTool(roleBinlog)
	if err != nil {
		return err
	}
	client, err := e.lookTool(roleClient)
	if err != nil {
		return err
	}
	server, err := e.lookServer()
	if err != nil {
		return err
	}

	// Into an instance: the names are checked before anything is written.
	if req.Target != nil {
		names := req.Databases
		if len(names) == 0 {
			names = map[string]string{}
			for _, d := range req.Set.DBNames {
				names[d] = d
			}
		}
		if err := e.checkNewNames(ctx, req.Target, names); err != nil {
			return err
		}
	}

	var paths map[string]string
	var files []string
	if replay {
		if paths, err = fetchLogs(ctx, req); err != nil {
			return err
		}
		if files = logsFrom(req.Logs, paths, pos.File); len(files) == 0 {
			return fmt.Errorf("restore to a time: no log file holds the set's position %s:%d", pos.File, pos.Offset)
		}
	}
	progress(10)

	dataDir := req.DataDir
	if req.Target != nil {
		dataDir = filepath.Join(req.WorkDir, "data")
	}
	rc, err := req.OpenPart(ctx, *part)
	if err != nil {
		return fmt.Errorf("read the physical backup: %w", err)
	}
	err = e.RestorePhysical(ctx, rc, dataDir)
	rc.Close()
	if err != nil {
		return err
	}
	progress(40)
	if !replay && req.Target == nil {
		progress(100)
		return nil
	}

	srv, err := e.startScratch(ctx, server, dataDir)
	if err != nil {
		return err
	}
	defer srv.kill()
	if replay {
		group, err := clientOptions(srv.cfg)
		if err != nil {
			return err
		}
		ws, err := e.newWorkspace(group, optionGroup{name: "mysql", options: [][2]string{{"max-allowed-packet", "1G"}}})
		if err != nil {
			return err
		}
		defer ws.remove()
		args := []string{"--no-defaults", "--start-position=" + strconv.FormatInt(pos.Offset, 10)}
		var stop string
		if !req.Time.IsZero() {
			stop = req.Time.UTC().Add(time.Second).Format("2006-01-02 15:04:05")
			args = append(args, "--stop-datetime="+stop)
		}
		args = append(args, "--")
		args = append(args, files...)
		e.logger().Info("replaying binary log into the restored instance", "from", pos.File, "position", pos.Offset, "files", len(files), "until", stop)
		if err := e.pipeReplay(ctx, binlog, client, ws, srv.cfg.Passwd, args); err != nil {
			return fmt.Errorf("replay the binary log into the restored instance: %w", err)
		}
	}
	progress(75)

	if req.Target == nil {
		if err := e.dropScratchAccount(ctx, srv); err != nil {
			return err
		}
		if err := srv.shutdown(); err != nil {
			return err
		}
		progress(100)
		return nil
	}

	recovered := &rdsbackup.Instance{ID: req.Source.ID + " (recovered)", Engine: req.Source.Engine, DSN: srv.cfg.FormatDSN()}
	names := req.Databases
	if len(names) == 0 {
		c, err := e.open(ctx, recovered.ID, recovered.DSN)
		if err != nil {
			return err
		}
		all, err := listDatabases(ctx, c)
		c.Close()
		if err != nil {
			return fmt.Errorf("list the databases of the restored instance: %w", err)
		}
		names = map[string]string{}
		for _, d := range all {
			names[d] = d
		}
		// Databases created after the backup are copied too.
		if err := e.checkNewNames(ctx, req.Target, names); err != nil {
			return err
		}
	}
	srcs := make([]string, 0, len(names))
	for s := range names {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	for i, s := range srcs {
		dst := names[s]
		if dst == "" {
			dst = s
		}
		e.logger().Info("copying restored database", "database", s, "as", dst, "target", req.Target.ID)
		sink := &restoreSink{e: e, dsn: req.Target.DSN, database: dst}
		if _, err := e.backupLogical(ctx, recovered, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical, Databases: []string{s}}, sink); err != nil {
			if rdsbackup.ErrorCode(err) == rdsbackup.EDBNameNotFound {
				return rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The database %s is not in the instance at the restore time.", rdsbackup.QuoteValue(s))
			}
			return fmt.Errorf("copy database %s into %s: %w", s, req.Target.ID, err)
		}
		progress(75 + 25*(i+1)/len(srcs))
	}
	return nil
}

// checkNewNames refuses target names that exist on the target.
func (e *Engine) checkNewNames(ctx context.Context, target *rdsbackup.Instance, names map[string]string) error {
	c, err := e.open(ctx, target.ID, target.DSN)
	if err != nil {
		return err
	}
	defer c.Close()
	for src, dst := range names {
		if dst == "" {
			dst = src
		}
		exists, _, err := databaseObjects(ctx, c.db, dst)
		if err != nil {
			return fmt.Errorf("check database %s on %s: %w", dst, target.ID, redact(err, c.cfg.Passwd))
		}
		if exists {
			return rdsbackup.Errorf(rdsbackup.ECONFLICT,
				"The database %s already exists on %s; a restore never overwrites a database: choose new names (DbNames).", rdsbackup.QuoteValue(dst), target.ID)
		}
	}
	return nil
}

// restoreSink restores each dumped part into database on dsn.
type restoreSink struct {
	e        *Engine
	dsn      string
	database string
}

func (s *restoreSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	return s.e.RestoreLogical(ctx, s.dsn, s.database, r)
}

// lookServer finds the server binary, which Debian installs in /usr/sbin
// (often not in a service's PATH).
func (e *Engine) lookServer() (tool, error) {
	names := []string{"mysqld"}
	if e.mariadb() {
		names = []string{"mariadbd", "mysqld"}
	}
	for _, n := range names {
		for _, p := range []string{n, "/usr/sbin/" + n, "/usr/libexec/" + n} {
			if path, err := exec.LookPath(p); err == nil {
				return tool{name: n, path: path}, nil
			}
		}
	}
	return tool{}, fmt.Errorf("%s is %w (a restore of a physical set to a time runs one on the restored data directory; Debian package mariadb-server)", names[0], errNoTool)
}

// scratchServer is a server run on a restored data directory, for the
// replay: no TCP port, its own socket in a private directory, and an
// account made for the replay (the restored instance's own accounts and
// passwords are the source's).
type scratchServer struct {
	cmd     *exec.Cmd
	done    chan struct{}
	release func()
	dir     string // private: socket, init file, log, temporary files
	log     string
	cfg     *mysql.Config
}

// scratchUser is the account the replay connects as, created by the
// server's init file and dropped before a data directory is handed over.
const scratchUser = "rdsbackup_restore"

// startScratch starts the server on dataDir and waits until it accepts
// the replay's account. Grant tables stay on (statements such as CREATE
// USER in the log must replay); the account comes from --init-file, which
// the server runs with every privilege before it accepts connections.
func (e *Engine) startScratch(ctx context.Context, server tool, dataDir string) (*scratchServer, error) {
	// The socket's path must fit in sun_path (108 bytes): a directory of
	// its own in the temporary directory, not under the work directory.
	dir, err := os.MkdirTemp(e.TempDir, "rdsbackup-mysqld-") // 0700
	if err == nil && len(dir) > 90 {
		os.Remove(dir)
		dir, err = os.MkdirTemp("", "rdsbackup-mysqld-")
	}
	if err != nil {
		return nil, fmt.Errorf("start a server on the restored data directory: %w", err)
	}
	s := &scratchServer{dir: dir, log: filepath.Join(dir, "mysqld.log"), done: make(chan struct{}), release: func() {}}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	password := hex.EncodeToString(b)
	init := filepath.Join(dir, "init.sql")
	stmts := "CREATE OR REPLACE USER '" + scratchUser + "'@'localhost' IDENTIFIED BY '" + password + "';\n" +
		"GRANT ALL PRIVILEGES ON *.* TO '" + scratchUser + "'@'localhost' WITH GRANT OPTION;\n"
	if err := os.WriteFile(init, []byte(stmts), 0o600); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "sock")
	// backup-my.cnf holds the InnoDB settings the files were made with
	// (page size, undo tablespaces); nothing else is read.
	args := []string{"--no-defaults"}
	if cnf := filepath.Join(dataDir, "backup-my.cnf"); fileExists(cnf) {
		args = []string{"--defaults-file=" + cnf}
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	args = append(args, "--datadir="+dataDir, "--socket="+sock, "--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--tmpdir="+dir, "--log-error="+s.log, "--init-file="+init,
		"--skip-networking", "--skip-log-bin", "--skip-slave-start", "--event-scheduler=OFF", "--skip-name-resolve")
	cmd := childproc.Command(ctx, server.path, args...)
	cmd.Env = childproc.Env("HOME=" + dir)
	cmd.Dir = dir
	out, err := os.OpenFile(filepath.Join(dir, "mysqld.out"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	e.logger().Info("starting a server on the restored data directory", "tool", server.name, "dataDir", dataDir)
	release, err := e.Children.Start(cmd)
	out.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s on the restored data directory: %w", server.name, err)
	}
	s.cmd, s.release = cmd, release
	go func() { cmd.Wait(); close(s.done) }()

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = scratchUser, password, "unix", sock
	cfg.Timeout = 2 * time.Second
	s.cfg = cfg
	wait, cancel := context.WithTimeout(ctx, 10*time.Minute) // crash recovery of a large instance
	defer cancel()
	for {
		if fileExists(sock) {
			c, err := e.open(wait, "the restored instance", cfg.FormatDSN())
			if err == nil {
				c.Close()
				break
			}
		}
		select {
		case <-s.done:
			s.release()
			return nil, fmt.Errorf("%s stopped on the restored data directory: %s", server.name, s.tail())
		case <-wait.Done():
			s.kill()
			return nil, fmt.Errorf("%s on the restored data directory did not accept connections: %w: %s", server.name, wait.Err(), s.tail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	ok = true
	return s, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tail is the end of the server's error log.
func (s *scratchServer) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// dropScratchAccount removes the replay's account from the restored
// instance.
func (e *Engine) dropScratchAccount(ctx context.Context, s *scratchServer) error {
	c, err := e.open(ctx, "the restored instance", s.cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.db.ExecContext(ctx, "DROP USER '"+scratchUser+"'@'localhost'"); err != nil {
		return fmt.Errorf("drop the restore's account from the restored instance: %w", err)
	}
	return nil
}

// shutdown stops the server cleanly, so that the data directory needs no
// crash recovery, and removes its private directory.
func (s *scratchServer) shutdown() error {
	defer os.RemoveAll(s.dir)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Minute):
		s.kill()
		return errors.New("the server on the restored data directory did not shut down")
	}
	s.release()
	if st := s.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("the server on the restored data directory stopped with %s: %s", st, s.tail())
	}
	return nil
}

// kill stops the server at once (a failed or finished restore into an
// instance: its data directory is scratch) and removes its directory.
func (s *scratchServer) kill() {
	select {
	case <-s.done:
	default:
		childproc.Kill(s.cmd)
		<-s.done
		s.release()
	}
	os.RemoveAll(s.dir)
}

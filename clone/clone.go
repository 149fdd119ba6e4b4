// Package clone runs the clones of CloneDBInstance (docs/clones.md): each a
// MariaDB or PostgreSQL server started from the installed binaries
// (engine/localserver) in a directory of its own under Manager.Dir, on a
// port of a configured range, with the data of a backup set restored into
// it in the background.
//
// The records live in Dir/clones.json (0600), beside the servers they
// describe: clones are processes on this host. A clone that was Running
// when rdsbackup stopped is started again by Load; one that was still
// being made is marked Failed and its files removed, and directories no
// record names are removed too.
package clone

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// Restorer restores a clone's data: into its running server (target: the
// clone's DSN as the engine's superuser), or, for a physical set, into the
// empty data directory its server then starts on.
type Restorer interface {
	RestoreClone(ctx context.Context, c *rdsbackup.Clone, source, target *rdsbackup.Instance, progress func(int)) error
	RestorePhysicalClone(ctx context.Context, c *rdsbackup.Clone, dataDir string) error
}

// Manager runs the clones; it implements rdsbackup.CloneService. Set the
// fields, then call Load before anything else.
type Manager struct {
	Dir string
	// Bind is the address the servers listen on; Host is what clients are
	// told to connect to (ConnectionString).
	Bind, Host string
	// FirstPort..LastPort is the range the servers' ports come from.
	FirstPort, LastPort int
	Max                 int
	// Password is the clones' superuser password (root on MariaDB,
	// postgres on PostgreSQL). It goes to the servers through SQL only.
	Password string
	Restorer Restorer
	Logger   *slog.Logger
	Now      func() time.Time

	mu     sync.Mutex
	clones map[string]*entry
	wg     sync.WaitGroup
	base   context.Context
	stop   context.CancelFunc
}

// entry is one clone and what runs it.
type entry struct {
	c      rdsbackup.Clone
	source *rdsbackup.Instance // for the restore; nil after Load
	srv    server              // nil until started, and after it is gone
	cancel context.CancelFunc  // cancels the making of the clone
	done   chan struct{}       // closed when the making has ended
}

// server is a running MariaDB or PostgreSQL.
type server interface {
	Remove()
	Stop()
	Running() bool
}

const stateFile = "clones.json"

// dirPrefix names the clones' directories; Load removes others' leftovers
// by it.
const dirPrefix = "clone-"

func (m *Manager) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// Load reads the records, starts again the clones that were Running, fails
// the ones that were being made and removes leftover directories.
func (m *Manager) Load(ctx context.Context) error {
	m.base, m.stop = context.WithCancel(context.WithoutCancel(ctx))
	m.clones = map[string]*entry{}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("clones: %w", err)
	}
	buf, err := os.ReadFile(filepath.Join(m.Dir, stateFile))
	var recs []rdsbackup.Clone
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("clones: %w", err)
	default:
		if err := json.Unmarshal(buf, &recs); err != nil {
			return fmt.Errorf("clones: %s is damaged: %w", filepath.Join(m.Dir, stateFile), err)
		}
	}
	for _, c := range recs {
		e := &entry{c: c, done: make(chan struct{})}
		close(e.done)
		m.clones[c.ID] = e
		switch c.Status {
		case rdsbackup.CloneRunning:
			srv, err := m.startServer(ctx, &e.c, true)
			if err != nil {
				m.failed(e, "the clone's server did not start again after rdsbackup restarted: "+err.Error())
				continue
			}
			e.srv = srv
			m.logger().Info("clone started again", "clone", c.ID, "port", c.Port)
		case rdsbackup.CloneCreating, rdsbackup.CloneRestoring:
			m.failed(e, "rdsbackup stopped while the clone was being made")
		}
	}
	// Directories no record names: a process killed between making one and
	// recording it.
	entries, err := os.ReadDir(m.Dir)
	if err != nil {
		return fmt.Errorf("clones: %w", err)
	}
	for _, d := range entries {
		if d.IsDir() && strings.HasPrefix(d.Name(), dirPrefix) && m.clones[d.Name()] == nil {
			m.logger().Warn("removing a clone directory no record names", "dir", d.Name())
			os.RemoveAll(filepath.Join(m.Dir, d.Name()))
		}
	}
	return m.save()
}

// Close stops the clones' servers (they start again with the next Load)
// and cancels the ones being made.
func (m *Manager) Close() {
	if m.stop == nil {
		return
	}
	m.stop()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.clones {
		if e.srv != nil {
			e.srv.Stop()
		}
	}
}

// failed records why a clone failed and removes its server and files.
// Called with e not shared, or with m.mu held.
func (m *Manager) failed(e *entry, reason string) {
	if len(reason) > 2000 {
		reason = reason[:2000]
	}
	e.c.Status, e.c.Reason, e.c.DiskUsed = rdsbackup.CloneFailed, reason, 0
	if e.srv != nil {
		e.srv.Remove()
		e.srv = nil
	}
	os.RemoveAll(m.dir(e.c.ID))
	m.logger().Error("clone failed", "clone", e.c.ID, "source", e.c.SourceID, "reason", reason)
}

func (m *Manager) dir(id string) string { return filepath.Join(m.Dir, id) }

// save writes the records (the caller holds m.mu, or nothing else runs).
func (m *Manager) save() error {
	recs := make([]rdsbackup.Clone, 0, len(m.clones))
	for _, id := range slices.Sorted(maps.Keys(m.clones)) {
		recs = append(recs, m.clones[id].c)
	}
	buf, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(m.Dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return fmt.Errorf("clones: record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(m.Dir, stateFile)); err != nil {
		return fmt.Errorf("clones: record: %w", err)
	}
	return nil
}

// CreateClone starts a clone (see rdsbackup.CloneService).
func (m *Manager) CreateClone(ctx context.Context, req rdsbackup.CloneRequest) (*rdsbackup.Clone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := 0
	used := map[int]bool{}
	for _, e := range m.clones {
		if e.c.Status != rdsbackup.CloneFailed {
			live++
			used[e.c.Port] = true
		}
	}
	if live >= m.Max {
		return nil, rdsbackup.Errorf(rdsbackup.EQuotaClones, "This service already runs %d clones (clones.maxClones is %d): delete one (DeleteDBInstance) first. Nothing was started.", live, m.Max)
	}
	port := m.freePort(used)
	if port == 0 {
		return nil, rdsbackup.Errorf(rdsbackup.EQuotaClones, "No port of clones.ports (%d-%d) is free on %s. Nothing was started.", m.FirstPort, m.LastPort, m.Bind)
	}
	id, err := m.newID(req.Source.Engine)
	if err != nil {
		return nil, err
	}
	e := &entry{
		c: rdsbackup.Clone{
			ID: id, SourceID: req.Source.ID, Engine: req.Source.Engine, Description: req.Description,
			BackupID: req.BackupID, RestoreTime: req.RestoreTime, Databases: req.Databases, Physical: req.Physical,
			Status: rdsbackup.CloneCreating, Host: m.Host, Bind: m.Bind, Port: port, CreatedAt: m.now().UTC().Truncate(time.Second),
		},
		source: req.Source,
		done:   make(chan struct{}),
	}
	if e.c.Description == "" {
		e.c.Description = "clone of " + req.Source.ID
	}
	m.clones[id] = e
	if err := m.save(); err != nil {
		delete(m.clones, id)
		return nil, err
	}
	var runCtx context.Context
	runCtx, e.cancel = context.WithCancel(m.base)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(e.done)
		m.make(runCtx, e)
	}()
	c := e.c
	return &c, nil
}

// freePort is a port of the range no clone uses that can be bound now
// (0: none). Another process may take it before the server binds it; the
// start then fails with a bind error and the clone is Failed.
func (m *Manager) freePort(used map[int]bool) int {
	for p := m.FirstPort; p <= m.LastPort; p++ {
		if used[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(m.Bind, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	return 0
}

// newID makes a clone's id: the cloud's prefix for the engine's instances
// and random letters, e.g. clone-rm-4kq9x2a7bw3m.
func (m *Manager) newID(engine rdsbackup.Engine) (string, error) {
	prefix := dirPrefix + "rm-"
	if engine == rdsbackup.EnginePostgreSQL {
		prefix = dirPrefix + "pgm-"
	}
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	for {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		for i := range b {
			b[i] = letters[int(b[i])%len(letters)]
		}
		id := prefix + string(b)
		if m.clones[id] == nil {
			return id, nil
		}
	}
}

// make starts the clone's server and restores into it.
func (m *Manager) make(ctx context.Context, e *entry) {
	log := m.logger().With("clone", e.c.ID, "source", e.c.SourceID)
	log.Info("clone started", "backupId", e.c.BackupID, "restoreTime", e.c.RestoreTime, "port", e.c.Port)
	var srv server
	var err error
	if e.c.Physical {
		srv, err = m.makePhysical(ctx, e)
	} else {
		var target *rdsbackup.Instance
		srv, target, err = m.start(ctx, e)
		if err == nil {
			m.set(e, func() { e.srv, e.c.Status = srv, rdsbackup.CloneRestoring })
			err = m.Restorer.RestoreClone(ctx, &e.c, e.source, target, func(int) {})
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.srv == nil && srv != nil {
		e.srv = srv
	}
	if m.clones[e.c.ID] != e {
		return // deleted meanwhile; DeleteClone removes the rest
	}
	switch {
	case err != nil && ctx.Err() != nil && m.base.Err() != nil:
		// rdsbackup is stopping: the next Load fails the clone.
		if e.srv != nil {
			e.srv.Remove()
			e.srv = nil
		}
		return
	case err != nil:
		reason := rdsbackup.ErrorMessage(err)
		if rdsbackup.ErrorCode(err) == rdsbackup.EINTERNAL {
			reason = err.Error()
		}
		m.failed(e, "the clone failed: "+reason)
	default:
		e.c.Status = rdsbackup.CloneRunning
		e.c.DiskUsed = dirSize(m.dir(e.c.ID))
		log.Info("clone running", "port", e.c.Port, "diskUsed", e.c.DiskUsed)
	}
	if err := m.save(); err != nil {
		log.Error("record the clone's state", "err", err)
	}
}

// set changes e under the lock and records it.
func (m *Manager) set(e *entry, change func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	change()
	if err := m.save(); err != nil {
		m.logger().Error("record the clone's state", "clone", e.c.ID, "err", err)
	}
}

// makePhysical restores a physical set into the clone's new data
// directory, then starts the server on it; on error nothing of it is left.
func (m *Manager) makePhysical(ctx context.Context, e *entry) (server, error) {
	if e.c.Engine != rdsbackup.EnginePostgreSQL {
		return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "Clones of %s instances are made from Logical sets.", e.c.Engine)
	}
	data, err := localserver.MakePostgresDataDir(m.dir(e.c.ID))
	if err != nil {
		return nil, fmt.Errorf("make the clone's data directory: %w", err)
	}
	m.set(e, func() { e.c.Status = rdsbackup.CloneRestoring })
	if err := m.Restorer.RestorePhysicalClone(ctx, &e.c, data); err != nil {
		os.RemoveAll(m.dir(e.c.ID))
		return nil, err
	}
	srv, err := m.startServer(ctx, &e.c, true)
	if err != nil {
		os.RemoveAll(m.dir(e.c.ID))
		return nil, fmt.Errorf("start the clone's server on the restored data: %w", err)
	}
	return srv, nil
}

// start starts the new clone's server; on error nothing of it is left.
func (m *Manager) start(ctx context.Context, e *entry) (server, *rdsbackup.Instance, error) {
	srv, err := m.startServer(ctx, &e.c, false)
	if err != nil {
		os.RemoveAll(m.dir(e.c.ID))
		return nil, nil, fmt.Errorf("start the clone's %s server: %w", e.c.Engine, err)
	}
	return srv, &rdsbackup.Instance{ID: e.c.ID, Engine: e.c.Engine, DSN: m.dsn(srv)}, nil
}

// startServer starts a clone's server: a new one, or again on its data
// (existing).
func (m *Manager) startServer(ctx context.Context, c *rdsbackup.Clone, existing bool) (server, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	dir := m.dir(c.ID)
	switch c.Engine {
	case rdsbackup.EngineMariaDB, rdsbackup.EngineMySQL:
		return localserver.StartMariaDB(ctx, localserver.MariaDBOptions{
			Dir: dir, Port: c.Port, ExactPort: true, Bind: m.Bind, RootPassword: m.Password, Existing: existing,
		})
	case rdsbackup.EnginePostgreSQL:
		// A clone never archives its WAL: a physical set may carry the
		// source's archive settings.
		return localserver.StartPostgres(ctx, localserver.PostgresOptions{
			Dir: dir, Port: c.Port, ExactPort: true, Bind: m.Bind, Password: m.Password, Existing: existing,
			Settings: map[string]string{"archive_mode": "off"},
		})
	}
	return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedEngine, "Clones of %s instances are not supported.", c.Engine)
}

// dsn is how rdsbackup's engines reach a clone's server as its superuser.
func (m *Manager) dsn(srv server) string {
	switch s := srv.(type) {
	case *localserver.MariaDB:
		return s.DSN("")
	case *localserver.Postgres:
		return s.URL("postgres")
	}
	return ""
}

// DeleteClone stops and removes a clone (see rdsbackup.CloneService).
func (m *Manager) DeleteClone(ctx context.Context, id string) error {
	m.mu.Lock()
	e := m.clones[id]
	if e == nil {
		m.mu.Unlock()
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no clone %s", id)
	}
	delete(m.clones, id)
	err := m.save()
	if e.cancel != nil {
		e.cancel()
	}
	m.mu.Unlock()
	<-e.done
	m.mu.Lock()
	srv := e.srv
	e.srv = nil
	m.mu.Unlock()
	if srv != nil {
		srv.Remove()
	}
	if rerr := os.RemoveAll(m.dir(id)); rerr != nil && err == nil {
		err = rerr
	}
	m.logger().Info("clone deleted", "clone", id)
	return err
}

// FindClone returns a clone (see rdsbackup.CloneService).
func (m *Manager) FindClone(ctx context.Context, id string) (*rdsbackup.Clone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.clones[id]
	if e == nil {
		return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no clone %s", id)
	}
	return m.view(e), nil
}

// FindClones returns every clone (see rdsbackup.CloneService).
func (m *Manager) FindClones(ctx context.Context) ([]*rdsbackup.Clone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*rdsbackup.Clone, 0, len(m.clones))
	for _, id := range slices.Sorted(maps.Keys(m.clones)) {
		out = append(out, m.view(m.clones[id]))
	}
	return out, nil
}

// view copies a clone for a caller, with its disk use measured now.
func (m *Manager) view(e *entry) *rdsbackup.Clone {
	c := e.c
	if c.Status != rdsbackup.CloneFailed {
		c.DiskUsed = dirSize(m.dir(c.ID))
	}
	return &c
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/api"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/engine/childproc"
	"github.com/rdsbackup/rdsbackup/metrics"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// newNonceStore returns the replay memory auth.nonceStore names.
func newNonceStore(ac AuthConfig, cat rdsbackup.Catalog, logger *slog.Logger) rdsbackup.NonceStore {
	local := rpc.NewNonceCache(rpc.DefaultMaxSkew, ac.MaxNonces)
	if ac.NonceStore == NonceStoreMemory {
		return local
	}
	return &rpc.LayeredNonces{Local: local, Shared: cat.Nonces(rpc.DefaultMaxSkew, ac.MaxNonces), Logger: logger}
}

// Environment variables read by serve.
const (
	envAccessKeyID     = "RDSBACKUP_ACCESS_KEY_ID"
	envAccessKeySecret = "RDSBACKUP_ACCESS_KEY_SECRET"
	envMasterKey       = "RDSBACKUP_MASTER_KEY"
)

func (m *Main) serve(ctx context.Context, args []string) error {
	cfg, err := m.configFromFlags("serve", args)
	if err != nil {
		return err
	}
	logger := m.logger()
	// A certificate that does not load stops the start before anything runs.
	var certs *certReloader
	if cfg.TLS.Enabled() {
		if certs, err = newCertReloader(cfg.TLS, logger); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	warnOpenDataDir(cfg.DataDir, logger)
	db, masterKey, err := m.openCatalog(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	accountID, err := accountID(ctx, cfg, db)
	if err != nil {
		return err
	}

	instances := make([]*rdsbackup.Instance, len(cfg.Instances))
	for i, ic := range cfg.Instances {
		instances[i] = &rdsbackup.Instance{ID: ic.ID, Engine: rdsbackup.Engine(ic.Engine), DSN: ic.DSN, Description: ic.Description}
	}
	if err := db.SyncInstances(ctx, instances); err != nil {
		return fmt.Errorf("register instances: %w", err)
	}

	met := metrics.New()
	srv := api.NewServer()
	srv.Instances, srv.Backups, srv.Identity = db, db, db
	srv.Logger, srv.Metrics = logger, met
	srv.Region, srv.AccountID = cfg.Region, accountID
	srv.Responder = &rpc.Responder{HostID: "rdsbackup", Logger: logger}
	nonces := newNonceStore(cfg.Auth, db, logger)
	met.ReplayMemory(func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n, _ := nonces.NonceCount(ctx, time.Now())
		return n
	}, cfg.Auth.MaxNonces)
	srv.Auth = &rpc.Authenticator{
		Lookup:  srv.LookupKey,
		Nonces:  nonces,
		Rates:   rpc.NewKeyRates(cfg.Auth.RatePerKey.Rate, cfg.Auth.RatePerKey.Burst),
		Now:     time.Now,
		MaxSkew: rpc.DefaultMaxSkew,
	}
	if err := srv.EnsureSystemPolicies(ctx); err != nil {
		return fmt.Errorf("install system policies: %w", err)
	}
	if err := m.ensureRootKey(ctx, db, logger); err != nil {
		return err
	}

	storage, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// On a shared catalog other nodes may be writing to the bucket: their
	// uploads are not this start's to abort. A dead node's are aborted job
	// by job when its jobs are settled (docs/nodes.md).
	if cfg.Catalog.Type == CatalogPostgres && storage.AbortUploads != nil {
		logger.Info("shared catalog: incomplete uploads are aborted per settled job, not all at start")
	} else if err := storage.Clean(ctx); err != nil {
		return fmt.Errorf("clean backup storage (%s): %w", storage.Describe, err)
	}
	// Encryption outermost: the runner asks its writers how a set is encrypted.
	store, err := m.encryptStore(ctx, cfg, met.Store(storage.Store), db, logger)
	if err != nil {
		return err
	}
	// Tools a killed process left running go before their temp files.
	children := &childproc.Registry{Dir: cfg.Path("run/tools"), Logger: logger}
	if err := killLeftoverTools(children, logger); err != nil {
		return err
	}
	tmpDir := cfg.Path("tmp")
	if err := resetTempDir(tmpDir); err != nil {
		return err
	}
	bes := engines(logger, tmpDir, children)
	runner := backup.NewRunner(db, store, bes)
	runner.Logger, runner.Metrics = logger, met
	runner.Node, runner.Lease, runner.AbortUploads = cfg.Node.ID, time.Duration(cfg.Node.Lease), storage.AbortUploads
	met.Jobs(runner.JobStates, func() int { return len(runner.Unsettled()) })
	// DescribeBackupTasks shows an ended job's final state even while the
	// catalog cannot take it yet.
	srv.Jobs = backup.JobView{JobService: db, Runner: runner}
	// Jobs a killed process left behind are settled before any new one.
	if err := runner.Recover(ctx); err != nil {
		return fmt.Errorf("recover interrupted backups: %w", err)
	}
	defer runner.Close()
	srv.Backup = runner
	// Every node settles the jobs of nodes that stopped renewing their
	// leases: within about 1.5 lease times of a node's death.
	defer every(ctx, time.Duration(cfg.Node.Lease)/2, func(ctx context.Context) {
		if _, err := runner.Sweep(ctx); err != nil && ctx.Err() == nil {
			logger.Error("settle the jobs of lost nodes", "err", err)
		}
	})()

	deleter := &backup.Deleter{Catalog: db, Store: store, Logger: logger, Now: time.Now, Metrics: met}
	// Deletions a killed process left half done are finished first.
	if err := deleter.Resume(ctx); err != nil {
		return fmt.Errorf("finish interrupted deletions: %w", err)
	}
	auto := newAutomation(db, runner, deleter, cfg, time.Now, logger)
	auto.sched.Metrics = met
	if err := auto.load(ctx, cfg, time.Now()); err != nil {
		return fmt.Errorf("load backup policies: %w", err)
	}
	srv.Policies, srv.Scheduling, srv.Deleter = db, auto, deleter

	// Point-in-time recovery: log streams and restores into instances.
	pitr := newPITR(bes, db, store, cfg, logger, met)
	// Restores too are held by their node; any node fails those of a dead
	// one.
	pitr.recoverer.Leases, pitr.recoverer.Node, pitr.recoverer.Lease = db, cfg.Node.ID, time.Duration(cfg.Node.Lease)
	if err := pitr.recoverer.Recover(ctx); err != nil {
		return fmt.Errorf("settle interrupted restores: %w", err)
	}
	defer every(ctx, time.Duration(cfg.Node.Lease)/2, func(ctx context.Context) {
		if _, err := pitr.recoverer.Sweep(ctx); err != nil && ctx.Err() == nil {
			logger.Error("settle the restores of lost nodes", "err", err)
		}
	})()
	pitr.wire(srv)
	// Each instance's log stream runs on one node at a time.
	pitr.supervisor.Leases, pitr.supervisor.Node, pitr.supervisor.Lease = db, cfg.Node.ID, time.Duration(cfg.Node.Lease)
	pitr.supervisor.AbortUploads = storage.AbortUploads
	pitrCtx, stopPITR := context.WithCancel(ctx)
	pitrDone := make(chan struct{})
	go func() { defer close(pitrDone); pitr.supervisor.Run(pitrCtx) }()
	defer func() { stopPITR(); <-pitrDone; pitr.recoverer.Wait() }()

	// Clones (docs/clones.md): the ones that were running start again.
	if cfg.Clones != nil {
		clones, err := startClones(ctx, cfg, pitr.recoverer, logger)
		if err != nil {
			return err
		}
		defer clones.Close()
		srv.Clones = clones
	}

	// Restore drills (docs/drills.md): leftovers removed, schedules started.
	stopDrills, err := startDrills(ctx, cfg, db, store, logger, met.DrillDone, func() bool { return runner.Active() > 0 })
	if err != nil {
		return err
	}
	defer stopDrills()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if certs != nil {
		scheme = "https"
		ln = tls.NewListener(ln, certs.serverConfig())
	}
	links := &api.Links{Key: linkKey(masterKey), PublicBase: cfg.Downloads.PublicBaseURL,
		IntranetBase: cfg.Downloads.IntranetBaseURL, TTL: time.Duration(cfg.Downloads.LinkTTL), Now: time.Now}
	if links.PublicBase == "" {
		links.PublicBase = scheme + "://" + ln.Addr().String()
	}
	if links.IntranetBase == "" {
		links.IntranetBase = links.PublicBase
	}
	srv.Links = links
	if cfg.Downloads.Mode == DownloadsPresigned {
		srv.Presigner = presigner{storage}
	}

	mux := http.NewServeMux()
	mux.Handle("/download/", &api.Downloads{Links: links, Backups: db, Store: store, LogFiles: db})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { health(w, r, cfg.Node.ID, runner, storage) })
	mux.Handle("/", srv)

	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", met.Handler())
		ms := &http.Server{Handler: mmux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: hs.ErrorLog}
		go func() { errc <- ms.Serve(mln) }()
		defer ms.Close()
		logger.Info("metrics serving", "addr", mln.Addr().String())
	}
	go func() { errc <- hs.Serve(ln) }()
	if certs != nil && m.Hangup != nil {
		go certs.watch(ctx, m.Hangup)
	}
	logger.Info("rdsbackup serving", "addr", ln.Addr().String(), "scheme", scheme, "dataDir", cfg.DataDir, "storage", storage.Describe,
		"region", cfg.Region, "accountId", accountID, "instances", len(instances), "node", cfg.Node.ID)
	if m.Ready != nil {
		m.Ready(ln.Addr().String())
	}

	autoCtx, stopAuto := context.WithCancel(ctx)
	autoDone := make(chan struct{})
	go func() {
		defer close(autoDone)
		if cfg.Backups.Scheduled() {
			// One node of the cluster schedules and sweeps; another takes
			// over within node.lease of its death.
			leader := &rdsbackup.Singleton{Leases: db, Name: "scheduler", Node: cfg.Node.ID, Lease: time.Duration(cfg.Node.Lease),
				Every: time.Duration(cfg.Backups.TickInterval), Now: time.Now,
				Failed: func(err error) { logger.Warn("scheduler lease", "err", err) }}
			leader.Run(autoCtx, auto.tick)
		}
	}()
	defer func() { stopAuto(); <-autoDone }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(shutdownCtx)
}

// every runs fn every d until ctx ends or the returned stop is called,
// which waits for a run in progress.
func every(ctx context.Context, d time.Duration, fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// health answers /healthz: 200 while the service does its work, 503 while
// the backup storage does not answer (an S3 bucket that is down or refuses
// the credentials), or while a backup job has ended but its final state
// cannot be recorded in the catalog (its disk is full, say; the service
// keeps retrying, and a restart would not help). The body says why; the
// X-Rdsbackup-Node header and the body's last line name the node.
func health(w http.ResponseWriter, r *http.Request, node string, runner *backup.Runner, storage *backupStorage) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Rdsbackup-Node", node)
	defer fmt.Fprintf(w, "node %s\n", node)
	var storeErr error
	if storage.Healthy != nil {
		storeErr = storage.Healthy(r.Context())
	}
	stuck := runner.Unsettled()
	if len(stuck) == 0 && storeErr == nil {
		fmt.Fprintln(w, "ok")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	if storeErr != nil {
		fmt.Fprintf(w, "unhealthy: the backup storage does not answer: %v\n", storeErr)
	}
	if len(stuck) == 0 {
		return
	}
	fmt.Fprintf(w, "unhealthy: %d backup job(s) ended but the catalog does not take their final state; retrying\n", len(stuck))
	for _, u := range stuck {
		fmt.Fprintf(w, "job %d (%s, instance %s): since %s, %d attempts: %s\n", u.Job.ID, u.Job.Status, u.Job.InstanceID,
			u.Since.UTC().Format(time.RFC3339), u.Attempts, u.Err)
	}
}

// warnOpenDataDir warns when other users may enter or read the data
// directory. Everything the service creates in it is private (0600/0700)
// anyway; the directory itself is the operator's, so it is not changed.
func warnOpenDataDir(dir string, logger *slog.Logger) {
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	logger.Warn("the data directory is open to other users (group or world permissions); make it private with chmod 700",
		"dataDir", dir, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
}

// masterKey reads the master key: from the environment when set, otherwise
// from a 0600 file in the data directory, made on first start.
func (m *Main) masterKey(cfg *Config, logger *slog.Logger) ([]byte, error) {
	if v := m.Getenv(envMasterKey); v != "" {
		key, err := aesgcm.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envMasterKey, err)
		}
		return key, nil
	}
	key, created, err := aesgcm.LoadOrCreateKeyFile(cfg.Path("master.key"))
	if err != nil {
		return nil, err
	}
	if created {
		logger.Info("created master key file; back it up with the catalog, secrets cannot be read without it", "path", cfg.Path("master.key"))
	}
	return key, nil
}

// linkKey derives the key that signs download links from the master key,
// so links survive restarts without another secret to keep.
func linkKey(masterKey []byte) []byte {
	h := hmac.New(sha256.New, masterKey)
	h.Write([]byte("rdsbackup download links v1"))
	return h.Sum(nil)
}

// accountID returns the configured account id, or else the one the
// catalog keeps (setting "account_id"), so that every node sharing a
// catalog names resources alike. A catalog without one takes the data
// directory's account-id file, which older versions wrote, or a new id; the
// file is kept in step for them.
func accountID(ctx context.Context, cfg *Config, settings rdsbackup.SettingService) (string, error) {
	if cfg.AccountID != "" {
		return cfg.AccountID, nil
	}
	path := cfg.Path("account-id")
	id := ""
	buf, err := os.ReadFile(path)
	if err == nil {
		id = strings.TrimSpace(string(buf))
		if _, err := strconv.ParseUint(id, 10, 64); err != nil {
			return "", fmt.Errorf("%s: not an account id", path)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read account id: %w", err)
	}
	fromFile := id
	if id == "" {
		id = rdsbackup.GenerateUserID()
	}
	stored, err := settings.CreateSetting(ctx, "account_id", []byte(id))
	if err != nil {
		return "", fmt.Errorf("account id: %w", err)
	}
	if id = string(stored); id != fromFile {
		if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write account id: %w", err)
		}
	}
	return id, nil
}

// ensureRootKey installs the account's root key: the one in the environment
// when set (replacing a stored key of the same id whose secret differs), or
// on first start a generated pair, printed once to stdout and never logged.
func (m *Main) ensureRootKey(ctx context.Context, db rdsbackup.IdentityService, logger *slog.Logger) error {
	id, secret := m.Getenv(envAccessKeyID), m.Getenv(envAccessKeySecret)
	if (id == "") != (secret == "") {
		return fmt.Errorf("set both %s and %s, or neither", envAccessKeyID, envAccessKeySecret)
	}
	if id != "" {
		k, err := db.FindAccessKey(ctx, id)
		switch {
		case err == nil && !k.Root():
			return fmt.Errorf("%s %s belongs to RAM user %q, not to the account", envAccessKeyID, id, k.UserName)
		case err == nil && subtle.ConstantTimeCompare([]byte(k.Secret), []byte(secret)) == 1 && k.Status == rdsbackup.KeyActive:
		case err == nil:
			if err := db.DeleteAccessKey(ctx, "", id); err != nil {
				return fmt.Errorf("replace root key: %w", err)
			}
			fallthrough
		case rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND:
			if err := db.CreateAccessKey(ctx, &rdsbackup.AccessKey{ID: id, Secret: secret, Status: rdsbackup.KeyActive}); rdsbackup.ErrorCode(err) == rdsbackup.ECONFLICT {
				// Another node sharing the catalog stored it first: fine if it
				// is this key.
				if k, ferr := db.FindAccessKey(ctx, id); ferr != nil || !k.Root() || subtle.ConstantTimeCompare([]byte(k.Secret), []byte(secret)) != 1 {
					return fmt.Errorf("store root key: %w", err)
				}
			} else if err != nil {
				return fmt.Errorf("store root key: %w", err)
			}
			logger.Info("root access key installed from the environment", "accessKeyId", id)
		default:
			return fmt.Errorf("find root key: %w", err)
		}
		// The key in the environment is the account's only key: one set
		// before (or generated on first start) stops working.
		keys, err := db.FindAccessKeys(ctx, "")
		if err != nil {
			return fmt.Errorf("find root keys: %w", err)
		}
		for _, old := range keys {
			if old.ID != id {
				if err := db.DeleteAccessKey(ctx, "", old.ID); err != nil {
					return fmt.Errorf("retire root key %s: %w", old.ID, err)
				}
				logger.Info("retired the previous root access key", "accessKeyId", old.ID)
			}
		}
		return nil
	}
	keys, err := db.FindAccessKeys(ctx, "")
	if err != nil {
		return fmt.Errorf("find root keys: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	k := rdsbackup.GenerateAccessKey("")
	if err := db.CreateAccessKey(ctx, k); err != nil {
		return fmt.Errorf("store root key: %w", err)
	}
	fmt.Fprintf(m.Stdout, "Generated the root access key (shown once; store it now):\n  AccessKeyId:     %s\n  AccessKeySecret: %s\n", k.ID, k.Secret)
	logger.Info("generated root access key and printed it to stdout", "accessKeyId", k.ID)
	return nil
}

// logger writes structured logs to stderr; stdout carries data only.
func (m *Main) logger() *slog.Logger { return slog.New(slog.NewTextHandler(m.Stderr, nil)) }

// presigner makes whole-set links presigned GETs of the bucket
// (downloads.mode presigned), expiring with the links.
type presigner struct{ storage *backupStorage }

func (p presigner) PresignSet(set *rdsbackup.BackupSet, expires int64) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.storage.Presign(ctx, set.ObjectKey, time.Unix(expires, 0), fmt.Sprintf("%s_%d.zst", set.InstanceID, set.ID))
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
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
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
	"github.com/rdsbackup/rdsbackup/rpc"
)

const demoUsage = `Usage: rdsbackup demo [--dir DIR] [--listen ADDR] [--tls-cert FILE --tls-key FILE]

Starts a throwaway MariaDB and PostgreSQL server from the installed server
binaries (Debian packages mariadb-server, mariadb-client and postgresql),
creates a small sample database in each, registers them as the instances
rm-demo-mariadb and pg-demo, takes a Logical backup of each through the API,
and prints the endpoint, a root access key and a Go program that lists the
backups. It keeps serving the API until interrupted (Ctrl-C); then it stops
the database servers and, without --dir, removes its working directory.

The servers' passwords are random unless RDSBACKUP_DEMO_MARIADB_PASSWORD and
RDSBACKUP_DEMO_POSTGRES_PASSWORD are set (letters, digits and -._~ only); the
config file refers to them by name and holds no password.

With --tls-cert and --tls-key the API is served over HTTPS with that
certificate, which must be valid for the --listen address; the printed
program and aliyun CLI line then use HTTPS.

Flags:
`

// The demo's instances, sample databases and environment variables.
const (
	demoMariaDBInstance     = "rm-demo-mariadb"
	demoPostgresInstance    = "pg-demo"
	demoMariaDBDatabase     = "shop"
	demoPostgresDatabase    = "crm"
	envDemoMariaDBPassword  = "RDSBACKUP_DEMO_MARIADB_PASSWORD"
	envDemoPostgresPassword = "RDSBACKUP_DEMO_POSTGRES_PASSWORD"
	demoConfigName          = "rdsbackup.yaml"
	demoBackupTimeout       = 5 * time.Minute
)

// demoPasswordPattern: the passwords go into DSNs and URLs as they are.
var demoPasswordPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)

func (m *Main) demo(ctx context.Context, args []string) (err error) {
	fset := flag.NewFlagSet("demo", flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	fset.Usage = func() { fmt.Fprint(m.Stderr, demoUsage); fset.PrintDefaults() }
	dirFlag := fset.String("dir", "", "working directory, created or empty, kept at the end (default: a new temporary directory, removed at the end)")
	listenFlag := fset.String("listen", "", "the API's host:port (default "+DefaultListen+", or a free port when that is taken)")
	var tlsCfg TLSConfig
	fset.StringVar(&tlsCfg.CertFile, "tls-cert", "", "serve HTTPS with this PEM certificate (chain), with --tls-key")
	fset.StringVar(&tlsCfg.KeyFile, "tls-key", "", "the PEM private key of --tls-cert")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("demo: unexpected argument %q", fset.Arg(0))}
	}
	logger := m.logger()

	// Everything that can be checked before starting anything.
	listen, err := demoListenAddr(*listenFlag)
	if err != nil {
		return err
	}
	roots, err := demoTLS(&tlsCfg)
	if err != nil {
		return err
	}
	mariaPW, err := demoPassword(m.Getenv, envDemoMariaDBPassword)
	if err != nil {
		return err
	}
	pgPW, err := demoPassword(m.Getenv, envDemoPostgresPassword)
	if err != nil {
		return err
	}
	if err := demoCheckInstalled(); err != nil {
		return err
	}

	dir, temp, err := demoWorkDir(*dirFlag)
	if err != nil {
		return err
	}
	if temp {
		defer func() {
			if rerr := os.RemoveAll(dir); rerr != nil {
				logger.Warn("could not remove the working directory", "dir", dir, "err", rerr)
			} else {
				logger.Info("removed the working directory", "dir", dir)
			}
		}()
		fmt.Fprintf(m.Stdout, "Working directory: %s (removed when the demo stops)\n", dir)
	} else {
		fmt.Fprintf(m.Stdout, "Working directory: %s (kept when the demo stops)\n", dir)
	}

	// The database servers, in parallel: initializing each takes seconds.
	logger.Info("starting MariaDB and PostgreSQL", "dir", dir)
	maria, pg, err := demoStartServers(ctx, dir, mariaPW, pgPW)
	if err != nil {
		return demoInterrupted(ctx, err)
	}
	defer func() {
		// Pdeathsig and process groups end the servers even if this
		// process is killed; here they stop cleanly.
		maria.Stop()
		pg.Stop()
		logger.Info("stopped the database servers")
	}()
	logger.Info("database servers running", "mariadb", net.JoinHostPort(maria.Host, strconv.Itoa(maria.Port)),
		"postgres", net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)))
	if err := demoSampleData(ctx, maria, pg); err != nil {
		return demoInterrupted(ctx, fmt.Errorf("demo: sample data: %w", err))
	}

	// The service, through serve itself, with a config that names the
	// passwords instead of holding them.
	configPath := filepath.Join(dir, demoConfigName)
	if err := writeDemoConfig(configPath, listen, filepath.Join(dir, "rdsbackup-data"), maria, pg, tlsCfg); err != nil {
		return err
	}
	key := rdsbackup.GenerateAccessKey("")
	env := map[string]string{
		envAccessKeyID:          key.ID,
		envAccessKeySecret:      key.Secret,
		envMasterKey:            "", // the demo's own, in its data directory
		envDemoMariaDBPassword:  mariaPW,
		envDemoPostgresPassword: pgPW,
	}
	ready := make(chan string, 1)
	svc := &Main{
		Stdout: m.Stdout,
		Stderr: m.Stderr,
		Getenv: func(name string) string {
			if v, ok := env[name]; ok {
				return v
			}
			return m.Getenv(name)
		},
		Ready: func(addr string) { ready <- addr },
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.serve(serveCtx, []string{"--config", configPath}) }()
	defer func() {
		stopServe()
		if serr := <-served; serr != nil && err == nil {
			err = serr
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case serr := <-served:
		served <- serr // for the deferred wait
		if serr == nil {
			serr = errors.New("it stopped")
		}
		return demoInterrupted(ctx, fmt.Errorf("demo: the service did not start: %w", serr))
	case <-ctx.Done():
		return demoInterrupted(ctx, ctx.Err())
	}

	// One Logical backup of each instance, through the API like any client.
	client := &demoClient{addr: addr, keyID: key.ID, secret: key.Secret, scheme: "http", http: &http.Client{Timeout: 30 * time.Second}}
	if tlsCfg.Enabled() {
		client.scheme = "https"
		client.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	}
	instances := []string{demoMariaDBInstance, demoPostgresInstance}
	backupIDs := map[string]string{}
	jobs := map[string]string{}
	for _, id := range instances {
		jobID, err := client.startBackup(ctx, id)
		if err != nil {
			return demoInterrupted(ctx, fmt.Errorf("demo: back up %s: %w", id, err))
		}
		jobs[id] = jobID
		logger.Info("backup started", "instance", id, "backupJobId", jobID)
	}
	for _, id := range instances {
		backupID, err := client.waitBackup(ctx, id, jobs[id])
		if err != nil {
			return demoInterrupted(ctx, fmt.Errorf("demo: back up %s: %w", id, err))
		}
		backupIDs[id] = backupID
		logger.Info("backup finished", "instance", id, "backupId", backupID)
	}

	printDemoIntro(m.Stdout, demoIntro{
		Addr: addr, Region: DefaultRegion, KeyID: key.ID, KeySecret: key.Secret, Config: configPath,
		MariaDB: maria, Postgres: pg, BackupIDs: backupIDs, TLS: tlsCfg.Enabled(),
	})
	if m.Ready != nil {
		m.Ready(addr)
	}

	select {
	case <-ctx.Done():
		logger.Info("stopping the demo")
		return nil
	case serr := <-served:
		served <- serr
		return fmt.Errorf("demo: the service stopped: %w", serr)
	}
}

// demoInterrupted turns the error of a step cut short by Ctrl-C into a
// plain message.
func demoInterrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errors.New("demo: interrupted")
	}
	return err
}

// demoCheckInstalled reports every missing program at once, with the Debian
// packages to install.
func demoCheckInstalled() error {
	if !localserver.Supported {
		return errors.New("demo: starting database servers needs a Unix system")
	}
	var problems, pkgs []string
	missing := func(err error, pkg string) {
		var nie *localserver.NotInstalledError
		if errors.As(err, &nie) {
			pkg = nie.Package
		}
		problems = append(problems, err.Error())
		if !slices.Contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	if _, _, err := localserver.MariaDBBinaries(); err != nil {
		missing(err, "mariadb-server")
	}
	if _, err := exec.LookPath("mariadb-dump"); err != nil {
		if _, err := exec.LookPath("mysqldump"); err != nil {
			missing(errors.New("mariadb-dump not found in PATH (install the Debian package mariadb-client)"), "mariadb-client")
		}
	}
	if _, err := localserver.PostgresBinDir(); err != nil {
		missing(err, "postgresql")
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("demo: the database servers are not installed:\n  %s\ninstall them with: sudo apt-get install %s",
		strings.Join(problems, "\n  "), strings.Join(pkgs, " "))
}

// demoListenAddr returns the API's address: the flag's, which must be free,
// or the default one, or a free port when that is taken.
func demoListenAddr(flagValue string) (string, error) {
	if flagValue == "" {
		if l, err := net.Listen("tcp", DefaultListen); err == nil {
			l.Close()
			return DefaultListen, nil
		}
		return "127.0.0.1:0", nil
	}
	if _, _, err := net.SplitHostPort(flagValue); err != nil {
		return "", usageError{fmt.Errorf("demo: --listen %q: %v", flagValue, err)}
	}
	l, err := net.Listen("tcp", flagValue)
	if err != nil {
		return "", fmt.Errorf("demo: --listen %s: %w", flagValue, err)
	}
	l.Close()
	return flagValue, nil
}

// demoPassword returns the password in the environment variable, or a
// random one.
func demoPassword(getenv func(string) string, name string) (string, error) {
	if v := getenv(name); v != "" {
		if !demoPasswordPattern.MatchString(v) {
			return "", usageError{fmt.Errorf("demo: %s: use 1-128 letters, digits, '-', '.', '_' or '~' (it goes into a DSN as it is)", name)}
		}
		return v, nil
	}
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b), nil
}

// demoWorkDir makes the working directory: dir (created, or existing and
// empty), or a new temporary one (temp).
func demoWorkDir(dir string) (path string, temp bool, err error) {
	if dir == "" {
		path, err := os.MkdirTemp(localserver.TempDir(), "rdsbackup-demo-")
		if err != nil {
			return "", false, fmt.Errorf("demo: %w", err)
		}
		if os.Geteuid() == 0 {
			// PostgreSQL runs as the user postgres, who must be able to
			// enter the directory (not list it).
			if err := os.Chmod(path, 0o711); err != nil {
				os.Remove(path)
				return "", false, fmt.Errorf("demo: %w", err)
			}
		}
		return path, true, nil
	}
	path, err = filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("demo: --dir: %w", err)
	}
	if strings.Contains(path, "$") {
		// The config file is expanded like a shell string.
		return "", false, usageError{fmt.Errorf("demo: --dir %s: a path with '$' cannot be written in the config file", path)}
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", false, fmt.Errorf("demo: --dir: %w", err)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", false, fmt.Errorf("demo: --dir: %w", err)
	}
	if len(entries) > 0 {
		return "", false, fmt.Errorf("demo: --dir %s is not empty: give a new or empty directory", path)
	}
	return path, false, nil
}

// demoStartServers starts MariaDB and PostgreSQL in DIR/mariadb and
// DIR/postgres, at the same time. On error neither is left running.
func demoStartServers(ctx context.Context, dir, mariaPW, pgPW string) (*localserver.MariaDB, *localserver.Postgres, error) {
	type mariaResult struct {
		s   *localserver.MariaDB
		err error
	}
	mc := make(chan mariaResult, 1)
	go func() {
		s, err := localserver.StartMariaDB(ctx, localserver.MariaDBOptions{Dir: filepath.Join(dir, "mariadb"), RootPassword: mariaPW})
		mc <- mariaResult{s, err}
	}()
	pg, pgErr := localserver.StartPostgres(ctx, localserver.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Password: pgPW})
	mr := <-mc
	switch {
	case mr.err != nil && pgErr != nil:
		return nil, nil, fmt.Errorf("demo: start MariaDB: %v\ndemo: start PostgreSQL: %w", mr.err, pgErr)
	case mr.err != nil:
		pg.Stop()
		return nil, nil, fmt.Errorf("demo: start MariaDB: %w", mr.err)
	case pgErr != nil:
		mr.s.Stop()
		return nil, nil, fmt.Errorf("demo: start PostgreSQL: %w", pgErr)
	}
	return mr.s, pg, nil
}

// The sample databases: a few tables with keys, a few rows.
var (
	demoMariaDBSchema = []string{
		`CREATE TABLE customers (
			id INT AUTO_INCREMENT PRIMARY KEY,
			name VARCHAR(100) NOT NULL,
			email VARCHAR(200) NOT NULL UNIQUE,
			created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)`,
		`CREATE TABLE products (
			id INT AUTO_INCREMENT PRIMARY KEY,
			sku VARCHAR(32) NOT NULL UNIQUE,
			name VARCHAR(200) NOT NULL,
			price DECIMAL(10,2) NOT NULL)`,
		`CREATE TABLE orders (
			id INT AUTO_INCREMENT PRIMARY KEY,
			customer_id INT NOT NULL,
			product_id INT NOT NULL,
			quantity INT NOT NULL,
			ordered_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
			FOREIGN KEY (customer_id) REFERENCES customers (id),
			FOREIGN KEY (product_id) REFERENCES products (id))`,
		`INSERT INTO customers (name, email) VALUES
			('Ada Lovelace', 'ada@example.com'),
			('Grace Hopper', 'grace@example.com'),
			('Alan Turing', 'alan@example.com')`,
		`INSERT INTO products (sku, name, price) VALUES
			('TEA-001', 'Green tea, 100 g', 6.50),
			('MUG-002', 'Mug', 12.00),
			('KTL-003', 'Kettle', 39.90)`,
		`INSERT INTO orders (customer_id, product_id, quantity) VALUES
			(1, 1, 2), (1, 2, 1), (2, 3, 1), (3, 1, 5)`,
	}
	demoPostgresSchema = []string{
		`CREATE TABLE companies (
			id serial PRIMARY KEY,
			name text NOT NULL UNIQUE,
			country char(2) NOT NULL)`,
		`CREATE TABLE contacts (
			id serial PRIMARY KEY,
			company_id integer NOT NULL REFERENCES companies,
			name text NOT NULL,
			email text UNIQUE)`,
		`CREATE TABLE deals (
			id serial PRIMARY KEY,
			contact_id integer NOT NULL REFERENCES contacts,
			title text NOT NULL,
			amount numeric(12,2) NOT NULL,
			stage text NOT NULL CHECK (stage IN ('lead', 'won', 'lost')),
			closed_on date)`,
		`INSERT INTO companies (name, country) VALUES
			('Analytical Engines Ltd', 'GB'), ('Compilers Inc', 'US')`,
		`INSERT INTO contacts (company_id, name, email) VALUES
			(1, 'Charles Babbage', 'charles@example.com'),
			(2, 'Jean Sammet', 'jean@example.com'),
			(2, 'John Backus', NULL)`,
		`INSERT INTO deals (contact_id, title, amount, stage, closed_on) VALUES
			(1, 'Difference engine maintenance', 12000.00, 'won', '2024-03-01'),
			(2, 'COBOL training', 4500.50, 'lead', NULL),
			(3, 'FORTRAN licences', 999.99, 'lost', '2024-05-17')`,
	}
)

// demoSampleData creates the sample databases with plain SQL.
func demoSampleData(ctx context.Context, maria *localserver.MariaDB, pg *localserver.Postgres) error {
	if err := maria.CreateDatabase(ctx, demoMariaDBDatabase); err != nil {
		return fmt.Errorf("MariaDB: %w", err)
	}
	if err := demoExec(ctx, "MariaDB", func() (*sql.DB, error) { return maria.Open(ctx, demoMariaDBDatabase) }, demoMariaDBSchema); err != nil {
		return err
	}
	if err := pg.CreateDatabase(ctx, demoPostgresDatabase); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	return demoExec(ctx, "PostgreSQL", func() (*sql.DB, error) { return pg.Open(ctx, demoPostgresDatabase) }, demoPostgresSchema)
}

// demoExec runs statements, in order, on a pool open opens.
func demoExec(ctx context.Context, kind string, open func() (*sql.DB, error), stmts []string) error {
	db, err := open()
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return nil
}

// writeDemoConfig writes the service's config: the two instances, their
// passwords as ${VAR} references.
func writeDemoConfig(path, listen, dataDir string, maria *localserver.MariaDB, pg *localserver.Postgres, tlsCfg TLSConfig) error {
	type instance struct {
		ID          string          `yaml:"id"`
		Engine      string          `yaml:"engine"`
		DSN         string          `yaml:"dsn"`
		Description string          `yaml:"description"`
		Drills      *InstanceDrills `yaml:"drills"`
	}
	type drills struct {
		Dir string `yaml:"dir"`
	}
	cfg := struct {
		Listen    string     `yaml:"listen"`
		DataDir   string     `yaml:"dataDir"`
		Region    string     `yaml:"region"`
		Instances []instance `yaml:"instances"`
		TLS       *TLSConfig `yaml:"tls,omitempty"`
		Drills    drills     `yaml:"drills"`
	}{
		Listen:  listen,
		DataDir: dataDir,
		Region:  DefaultRegion,
		// Restore drills of every new set (docs/drills.md), in the demo
		// PostgreSQL server's directory: the postgres user reaches it, and
		// it goes with the demo.
		Drills: drills{Dir: filepath.Join(pg.Dir, "drills")},
		Instances: []instance{{
			ID:          demoMariaDBInstance,
			Engine:      string(rdsbackup.EngineMariaDB),
			DSN:         fmt.Sprintf("%s:${%s}@tcp(%s)/", maria.User, envDemoMariaDBPassword, net.JoinHostPort(maria.Host, strconv.Itoa(maria.Port))),
			Description: "rdsbackup demo: MariaDB with the sample database " + demoMariaDBDatabase,
			Drills:      &InstanceDrills{Enabled: true, Schedule: DrillAfterEachSet},
		}, {
			ID:          demoPostgresInstance,
			Engine:      string(rdsbackup.EnginePostgreSQL),
			DSN:         fmt.Sprintf("postgres://%s:${%s}@%s/postgres?sslmode=disable", pg.User, envDemoPostgresPassword, net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))),
			Description: "rdsbackup demo: PostgreSQL with the sample database " + demoPostgresDatabase,
			Drills:      &InstanceDrills{Enabled: true, Schedule: DrillAfterEachSet},
		}},
	}
	if tlsCfg.Enabled() {
		cfg.TLS = &tlsCfg
	}
	var body bytes.Buffer
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(&cfg); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	head := fmt.Sprintf("# Written by rdsbackup demo. The passwords come from the environment\n# (%s, %s).\n", envDemoMariaDBPassword, envDemoPostgresPassword)
	if err := os.WriteFile(path, append([]byte(head), body.Bytes()...), 0o600); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	return nil
}

// demoClient calls the API as any client does: V2-signed POSTs.
type demoClient struct {
	addr, keyID, secret string
	scheme              string // http or https
	http                *http.Client
}

// call makes one RDS call and decodes its JSON answer into out.
func (c *demoClient) call(ctx context.Context, action string, params url.Values, out any) error {
	p := url.Values{}
	for k, v := range params {
		p[k] = v
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	p.Set("Action", action)
	p.Set("Version", "2014-08-15")
	p.Set("Format", "JSON")
	p.Set("RegionId", DefaultRegion)
	p.Set("AccessKeyId", c.keyID)
	p.Set("SignatureMethod", "HMAC-SHA1")
	p.Set("SignatureVersion", "1.0")
	p.Set("SignatureNonce", hex.EncodeToString(nonce))
	p.Set("Timestamp", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	p.Set("Signature", rpc.SignV2(c.secret, rpc.StringToSignV2(http.MethodPost, p)))

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.scheme+"://"+c.addr+"/", strings.NewReader(p.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Code, Message string }
		if json.Unmarshal(body, &e) == nil && e.Code != "" {
			return &demoAPIError{Action: action, Code: e.Code, Message: e.Message}
		}
		return fmt.Errorf("%s: %s", action, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}

// demoAPIError is an error answer of the API.
type demoAPIError struct{ Action, Code, Message string }

func (e *demoAPIError) Error() string { return e.Action + ": " + e.Code + ": " + e.Message }

// startBackup starts a manual Logical backup. The default policy's window
// may be open when the demo starts, and then the service is already taking
// an automated backup of the instance, which refuses a second one: the demo
// waits for that one to end and asks again.
func (c *demoClient) startBackup(ctx context.Context, instance string) (string, error) {
	for attempt := 0; ; attempt++ {
		var out struct{ BackupJobId string }
		err := c.call(ctx, "CreateBackup", url.Values{"DBInstanceId": {instance}, "BackupMethod": {"Logical"}}, &out)
		var apiErr *demoAPIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.Code != rdsbackup.EBackupRunning || attempt == 3 {
			return out.BackupJobId, err
		}
		var running struct {
			Items struct {
				BackupJob []struct{ BackupJobId string }
			}
		}
		if err := c.call(ctx, "DescribeBackupTasks", url.Values{"DBInstanceId": {instance}}, &running); err != nil {
			return "", err
		}
		for _, j := range running.Items.BackupJob {
			// Its outcome does not matter: the demo takes its own backup next.
			c.waitBackup(ctx, instance, j.BackupJobId)
		}
	}
}

// waitBackup polls DescribeBackupTasks until the job has ended and returns
// the BackupId of the set it made.
func (c *demoClient) waitBackup(ctx context.Context, instance, jobID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, demoBackupTimeout)
	defer cancel()
	for {
		var out struct {
			Items struct {
				BackupJob []struct {
					BackupStatus, BackupId, FailureReason string
				}
			}
		}
		err := c.call(ctx, "DescribeBackupTasks", url.Values{"DBInstanceId": {instance}, "BackupJobId": {jobID}}, &out)
		if err != nil {
			return "", err
		}
		if len(out.Items.BackupJob) != 1 {
			return "", fmt.Errorf("DescribeBackupTasks: %d jobs with BackupJobId %s", len(out.Items.BackupJob), jobID)
		}
		switch j := out.Items.BackupJob[0]; rdsbackup.JobStatus(j.BackupStatus) {
		case rdsbackup.JobFinished:
			return j.BackupId, nil
		case rdsbackup.JobFailed:
			return "", fmt.Errorf("backup job %s failed: %s", jobID, j.FailureReason)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("backup job %s: %w", jobID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// demoIntro is what the newcomer is told once the demo is ready.
type demoIntro struct {
	Addr, Region, KeyID, KeySecret, Config string
	TLS                                    bool // the API is served over HTTPS
	MariaDB                                *localserver.MariaDB
	Postgres                               *localserver.Postgres
	BackupIDs                              map[string]string
}

// The lines around the example program, which the tests look for.
const (
	demoProgramBegin = "--- main.go ---"
	demoProgramEnd   = "--- end of main.go ---"
)

func printDemoIntro(w io.Writer, in demoIntro) {
	hostPort := func(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
	fmt.Fprintf(w, `
rdsbackup is serving the Alibaba Cloud RDS API with two demo instances, each
backed up once just now (BackupMethod Logical).

  Endpoint:         %s  (%s)
  Region:           %s
  AccessKeyId:      %s
  AccessKeySecret:  %s
  Config:           %s

  Instance          Engine      Server            Sample database  BackupId
  %-16s  MariaDB     %-16s  %-15s  %s
  %-16s  PostgreSQL  %-16s  %-15s  %s

The database servers' passwords are in this process's environment only
(%s, %s).

List the backups with the official Go SDK: save this as main.go in an empty
directory, then run: go mod init listbackups && go mod tidy && go run .

%s
%s%s

Or with the aliyun CLI%s:
  aliyun rds DescribeBackups --endpoint %s%s --region %s \
    --access-key-id %s --access-key-secret %s \
    --DBInstanceId %s

Press Ctrl-C to stop the demo and its database servers.
`,
		in.Addr, demoTransport(in.TLS), in.Region, in.KeyID, in.KeySecret, in.Config,
		demoMariaDBInstance, hostPort(in.MariaDB.Host, in.MariaDB.Port), demoMariaDBDatabase, in.BackupIDs[demoMariaDBInstance],
		demoPostgresInstance, hostPort(in.Postgres.Host, in.Postgres.Port), demoPostgresDatabase, in.BackupIDs[demoPostgresInstance],
		envDemoMariaDBPassword, envDemoPostgresPassword,
		demoProgramBegin, demoProgram(in), demoProgramEnd,
		demoCLINote(in.TLS), in.Addr, demoCLISchemeFlag(in.TLS), in.Region, in.KeyID, in.KeySecret, demoMariaDBInstance)
}

func demoTransport(tls bool) string {
	if tls {
		return "HTTPS"
	}
	return "plain HTTP"
}

// demoCLISchemeFlag is the aliyun CLI's switch for the demo's scheme: the
// CLI speaks HTTPS unless told --insecure.
func demoCLISchemeFlag(tls bool) string {
	if tls {
		return " --secure"
	}
	return " --insecure"
}

// demoCLINote explains the switch where it is not the CLI's default.
func demoCLINote(tls bool) string {
	if tls {
		return ""
	}
	return " (--insecure: the endpoint is plain HTTP, and the CLI\nwould otherwise speak HTTPS to it)"
}

// demoTLS checks --tls-cert and --tls-key before anything starts, makes
// their paths absolute for the config file, and returns the roots the demo's
// own client trusts: the system's and the certificates of --tls-cert, so
// that a self-signed certificate works.
func demoTLS(c *TLSConfig) (*x509.CertPool, error) {
	if c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	if err := c.validate(); err != nil {
		return nil, usageError{errors.New("demo: give both --tls-cert and --tls-key")}
	}
	for _, p := range []*string{&c.CertFile, &c.KeyFile} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		*p = abs
	}
	if _, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		return nil, fmt.Errorf("demo: --tls-cert/--tls-key: %w", err)
	}
	pem, err := os.ReadFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AppendCertsFromPEM(pem)
	return roots, nil
}

func demoProgramScheme(tls bool) string {
	if tls {
		return "\n\tc.GetConfig().WithScheme(\"HTTPS\") // the demo serves HTTPS"
	}
	return ""
}

// demoProgram is a Go program that lists the demo's backups.
func demoProgram(in demoIntro) string {
	return fmt.Sprintf(`// Command listbackups lists the backups of the rdsbackup demo's instances
// with the official Alibaba Cloud Go SDK.
package main

import (
	"fmt"
	"log"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

func main() {
	c, err := rds.NewClientWithAccessKey(%q, %q, %q)
	if err != nil {
		log.Fatal(err)
	}
	c.Domain = %q // rdsbackup's address; the SDK talks plain HTTP by default%s

	for _, id := range []string{%q, %q} {
		req := rds.CreateDescribeBackupsRequest()
		req.DBInstanceId = id
		req.PageSize = requests.NewInteger(30)
		resp, err := c.DescribeBackups(req)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%%s: %%s backup(s)\n", id, resp.TotalRecordCount)
		for _, b := range resp.Items.Backup {
			fmt.Printf("  BackupId %%s  %%s  %%s %%s  %%s  %%d bytes  databases %%s\n",
				b.BackupId, b.BackupStatus, b.BackupMethod, b.BackupType, b.BackupStartTime, b.BackupSize, b.BackupDBNames)
		}
	}
}
`, in.Region, in.KeyID, in.KeySecret, in.Addr, demoProgramScheme(in.TLS), demoMariaDBInstance, demoPostgresInstance)
}

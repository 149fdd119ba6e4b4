package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// Defaults of a service started without --config.
const (
	DefaultListen  = "127.0.0.1:8080"
	DefaultDataDir = "rdsbackup-data"
	DefaultRegion  = "cn-hangzhou"
)

// Config is the YAML configuration file.
type Config struct {
	Listen    string           `yaml:"listen"`
	DataDir   string           `yaml:"dataDir"`
	Region    string           `yaml:"region"`
	AccountID string           `yaml:"accountId"`
	Instances []InstanceConfig `yaml:"instances"`
	Downloads DownloadsConfig  `yaml:"downloads"`
	Backups   BackupsConfig    `yaml:"backups"`
	Auth      AuthConfig       `yaml:"auth"`
	Metrics   MetricsConfig    `yaml:"metrics"`
	TLS       TLSConfig        `yaml:"tls"`
	Catalog   CatalogConfig    `yaml:"catalog"`
	Storage   StorageConfig    `yaml:"storage"`
	Logs      LogsConfig       `yaml:"logs"`
	// Encryption encrypts every stored object (see EncryptionConfig).
	Encryption EncryptionConfig `yaml:"encryption"`
	// Clones, when present, enables CloneDBInstance (docs/clones.md).
	Clones *ClonesConfig `yaml:"clones"`
	// Drills configures restore drills (docs/drills.md).
	Drills DrillsConfig `yaml:"drills"`
	// Node names this process among the nodes sharing a catalog
	// (docs/nodes.md).
	Node NodeConfig `yaml:"node"`
}

// NodeConfig identifies a node and sets how long its claims last.
type NodeConfig struct {
	// ID names the node in job rows, leases and /healthz (default the
	// hostname). Every node sharing a catalog needs its own: two processes
	// with one id would settle each other's jobs at start.
	ID string `yaml:"id"`
	// Lease is how long a node's claim on a job, the scheduler or a log
	// stream lasts without renewal (default 30s, 2s to 10m): when a node
	// dies, its work moves to another node within about this time.
	Lease Duration `yaml:"lease"`
}

// nodeIDPattern: short, printable, safe in logs and headers.
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// hostname is the default node id; tests replace it.
var hostname = os.Hostname

func (n *NodeConfig) validate() error {
	if n.ID == "" {
		h, err := hostname()
		if err != nil {
			return fmt.Errorf("config: node.id is not set and the hostname cannot be read (%v): set node.id", err)
		}
		if !nodeIDPattern.MatchString(h) {
			return fmt.Errorf("config: node.id is not set and the hostname %q is not a valid node id: set node.id (1-63 letters, digits, '.', '_' or '-', starting with a letter or digit)", h)
		}
		n.ID = h
	} else if !nodeIDPattern.MatchString(n.ID) {
		return fmt.Errorf("config: node.id %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", n.ID)
	}
	if n.Lease == 0 {
		n.Lease = Duration(30 * time.Second)
	} else if n.Lease < Duration(2*time.Second) || n.Lease > Duration(10*time.Minute) {
		return fmt.Errorf("config: node.lease %v: must be between 2s and 10m", time.Duration(n.Lease))
	}
	return nil
}

// ClonesConfig enables CloneDBInstance: servers started on this host from
// the installed MariaDB/PostgreSQL binaries, restored from backups. Absent
// (the default), clones are off: they start processes and take disk, which
// a backup service should not do unless asked.
type ClonesConfig struct {
	// Dir holds one directory per clone and their records (default
	// dataDir/clones). When rdsbackup runs as root, PostgreSQL clones run
	// as the postgres user, who must be able to reach it.
	Dir string `yaml:"dir"`
	// Bind is the address the clones listen on (default 127.0.0.1).
	Bind string `yaml:"bind"`
	// Host is the ConnectionString handed out (default: Bind, or this
	// machine's host name when Bind is a wildcard address).
	Host string `yaml:"host"`
	// Ports is the range the clones' ports come from, e.g. "34000-34099"
	// (required).
	Ports string `yaml:"ports"`
	// MaxClones bounds the clones that exist at once (default 2, 1 to 64);
	// Failed ones do not count.
	MaxClones int `yaml:"maxClones"`
	// AdminPassword is the password of the clones' superuser (root on
	// MariaDB, postgres on PostgreSQL), usually ${CLONE_ADMIN_PASSWORD}.
	// Empty: a random one, made at the first start and kept in
	// dataDir/clone-admin.password (0600).
	AdminPassword string `yaml:"adminPassword"`

	firstPort, lastPort int
}

func (c *ClonesConfig) validate(cfg *Config) error {
	if c.Dir == "" {
		c.Dir = cfg.Path("clones")
	}
	if c.Bind == "" {
		c.Bind = "127.0.0.1"
	}
	if net.ParseIP(c.Bind) == nil {
		return fmt.Errorf("config: clones.bind %q: must be an IP address, such as 127.0.0.1 or 0.0.0.0", c.Bind)
	}
	if c.Ports == "" {
		return fmt.Errorf("config: clones.ports: missing (a range of TCP ports for the clones' servers, such as \"34000-34099\")")
	}
	from, to, ok := strings.Cut(c.Ports, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(from))
	b, err2 := strconv.Atoi(strings.TrimSpace(to))
	if !ok || err1 != nil || err2 != nil || a < 1024 || b > 65535 || a > b {
		return fmt.Errorf("config: clones.ports %q: must be a range such as \"34000-34099\" of ports from 1024 to 65535", c.Ports)
	}
	c.firstPort, c.lastPort = a, b
	if c.MaxClones == 0 {
		c.MaxClones = 2
	} else if c.MaxClones < 1 || c.MaxClones > 64 {
		return fmt.Errorf("config: clones.maxClones %d: must be 1 to 64", c.MaxClones)
	}
	if c.MaxClones > b-a+1 {
		return fmt.Errorf("config: clones.maxClones %d: the range clones.ports %q has only %d ports", c.MaxClones, c.Ports, b-a+1)
	}
	return nil
}

// LogsConfig sets the archiving of logs for point-in-time recovery
// (docs/pitr.md).
type LogsConfig struct {
	// UploadInterval is how often the log file being written is stored as
	// a replaceable partial object (default 60s, 1s to 1h).
	UploadInterval Duration `yaml:"uploadInterval"`
}

// EncryptionConfig sets the encryption at rest of the stored objects (sets
// and manifests): AES-256-GCM under keys kept in KeyFile, or in the
// environment variable RDSBACKUP_ENCRYPTION_KEYS when that is set.
type EncryptionConfig struct {
	// Enabled encrypts new objects. Unset (the default), it is on for a new
	// installation and off for one that already has backups, decided at
	// the first start with this version and kept in the catalog; true or
	// false overrides that. Objects stay readable either way: turning it
	// on encrypts new objects only, turning it off leaves encrypted ones
	// readable while the keys are there.
	Enabled *bool `yaml:"enabled"`
	// KeyFile holds the key-encryption keys (default dataDir/encryption.keys,
	// created 0600 when encryption is on and there is none). WITHOUT IT THE
	// ENCRYPTED BACKUPS CANNOT BE READ: keep a copy apart from the backups.
	KeyFile string `yaml:"keyFile"`
}

// MetricsConfig sets the Prometheus endpoint.
type MetricsConfig struct {
	// Listen is the host:port of a listener of its own that serves GET
	// /metrics, without authentication: bind it where only the monitoring
	// system reaches. Empty (the default): no metrics endpoint.
	Listen  string        `yaml:"listen"`
	Catalog CatalogConfig `yaml:"catalog"`
}

// Catalog types.
const (
	CatalogSQLite   = "sqlite"
	CatalogPostgres = "postgres"
)

// CatalogConfig chooses where the catalog lives: the embedded SQLite file
// dataDir/catalog.db (the default, one node), or a PostgreSQL database that
// several nodes share.
type CatalogConfig struct {
	Type string `yaml:"type"` // sqlite (default) or postgres
	// DSN is the PostgreSQL connection string (URL or key=value), usually
	// ${CATALOG_DSN}; a password left out of it is read by pgx from
	// PGPASSWORD or ~/.pgpass. Not used with sqlite.
	DSN string `yaml:"dsn"`
}

func (c *CatalogConfig) validate() error {
	switch c.Type {
	case "":
		c.Type = CatalogSQLite
		fallthrough
	case CatalogSQLite:
		if c.DSN != "" {
			return fmt.Errorf("config: catalog.dsn is for type postgres; the sqlite catalog is dataDir/catalog.db")
		}
	case CatalogPostgres:
		if c.DSN == "" {
			return fmt.Errorf("config: catalog.dsn: missing (type postgres needs a connection string, e.g. ${CATALOG_DSN})")
		}
		if _, err := pgconn.ParseConfig(c.DSN); err != nil {
			return fmt.Errorf("config: catalog.dsn: not a valid PostgreSQL connection string: %v", redact(err.Error(), c.DSN))
		}
	default:
		return fmt.Errorf("config: catalog.type %q: use sqlite or postgres", c.Type)
	}
	return nil
}

// AuthConfig sets request authentication.
type AuthConfig struct {
	// MaxNonces bounds the replay memory: the nonces of the last 15
	// minutes, about 21 bytes each. The default (2,097,152, 45 MB) sustains
	// about 2,200 requests/s; past the bound requests are refused with
	// ServiceUnavailable rather than let a replay through.
	MaxNonces int `yaml:"maxNonces"`
	// NonceStore is where the replay memory lives: "catalog" (the
	// default) keeps it in the catalog, so that a request is refused when
	// replayed to any node sharing the catalog and after any restart;
	// "memory" keeps it in the process, a little faster but forgotten at a
	// restart and not shared between nodes.
	NonceStore string `yaml:"nonceStore"`
	// RatePerKey limits each RAM user's access key; the account's (root)
	// keys are not limited. A key over its rate is refused with
	// Throttling.User before its request takes any replay memory.
	RatePerKey RateConfig `yaml:"ratePerKey"`
}

// Values of auth.nonceStore.
const (
	NonceStoreCatalog = "catalog"
	NonceStoreMemory  = "memory"
)

// RateConfig is a token bucket: Rate requests per second sustained, Burst
// at once (defaults rpc.DefaultRatePerKey and rpc.DefaultBurstPerKey).
type RateConfig struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// BackupsConfig sets the automated backups.
type BackupsConfig struct {
	// MaxConcurrent bounds the backups running at once (default 2).
	MaxConcurrent int `yaml:"maxConcurrent"`
	// TickInterval is how often the scheduler and the expiry sweep run
	// (default 30s).
	TickInterval Duration `yaml:"tickInterval"`
	// Schedule turns automated backups and the expiry sweep on (default
	// true). Off, only CreateBackup takes backups and nothing expires.
	Schedule *bool `yaml:"schedule"`
}

// Scheduled reports whether automated backups run.
func (b *BackupsConfig) Scheduled() bool { return b.Schedule == nil || *b.Schedule }

// PolicyConfig is an instance's backup policy in the config; empty fields
// keep the default (DefaultBackupPolicy).
type PolicyConfig struct {
	PreferredBackupTime   string `yaml:"preferredBackupTime"`
	PreferredBackupPeriod string `yaml:"preferredBackupPeriod"`
	BackupRetentionPeriod int    `yaml:"backupRetentionPeriod"`
	BackupMethod          string `yaml:"backupMethod"`
	// EnableBackupLog turns log backup (point-in-time recovery) on or off;
	// LogBackupRetentionPeriod is how many days logs are kept (7-730, not
	// above the data retention).
	EnableBackupLog          *bool `yaml:"enableBackupLog"`
	LogBackupRetentionPeriod int   `yaml:"logBackupRetentionPeriod"`
}

// DownloadsConfig sets the signed download links that DescribeBackups hands
// out; rdsbackup serves them itself under /download/.
type DownloadsConfig struct {
	// PublicBaseURL prefixes BackupDownloadURL and DownloadLink (default:
	// http://<listen>, https://<listen> with TLS).
	PublicBaseURL string `yaml:"publicBaseURL"`
	// IntranetBaseURL prefixes the Intranet links (default: PublicBaseURL).
	IntranetBaseURL string `yaml:"intranetBaseURL"`
	// LinkTTL is how long a link stays valid (default 1h, at most 7 days).
	LinkTTL Duration `yaml:"linkTTL"`
	// Mode is proxy (default: links point at rdsbackup, which streams from
	// storage) or presigned (with storage type s3, the links to whole sets
	// are presigned GET URLs of the bucket; per-database links stay proxied).
	Mode string `yaml:"mode"`
}

// Duration is a time.Duration written as "90s", "1h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 90s or 1h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// InstanceConfig registers one database server.
type InstanceConfig struct {
	ID          string `yaml:"id"`
	Engine      string `yaml:"engine"`
	DSN         string `yaml:"dsn"`
	Description string `yaml:"description"`
	// BackupPolicy, when set, is the instance's policy (see README).
	BackupPolicy *PolicyConfig `yaml:"backupPolicy"`
	// Drills, when set, schedules restore drills of the instance's sets
	// (docs/drills.md); absent: none (rdsbackup verify still runs one).
	Drills *InstanceDrills `yaml:"drills"`
}

// DrillsConfig is where and how restore drills run (docs/drills.md).
type DrillsConfig struct {
	// Dir holds the drills' throwaway servers (default dataDir/drills).
	// When rdsbackup runs as root, PostgreSQL servers run as the postgres
	// user, who must be able to reach it.
	Dir string `yaml:"dir"`
	// Timeout bounds one drill (default 1h); a drill that runs out of
	// time did not run and leaves its set as it was.
	Timeout Duration `yaml:"timeout"`
}

// Drill schedules of an instance.
const (
	DrillAfterEachSet = "after-each-set"
	DrillDaily        = "daily"
	DrillWeekly       = "weekly"
)

// InstanceDrills is an instance's drills schedule.
type InstanceDrills struct {
	Enabled bool `yaml:"enabled"`
	// Schedule is after-each-set (default), daily or weekly (the newest
	// Success set that no drill has judged).
	Schedule string `yaml:"schedule"`
	// Timeout overrides drills.timeout for this instance's sets.
	Timeout Duration `yaml:"timeout"`
}

func (d *DrillsConfig) validate(cfg *Config) error {
	if d.Dir == "" {
		d.Dir = cfg.Path("drills")
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(time.Hour)
	} else if d.Timeout < Duration(time.Second) {
		return fmt.Errorf("config: drills.timeout %v: must be at least 1s", time.Duration(d.Timeout))
	}
	for i := range cfg.Instances {
		id := cfg.Instances[i].Drills
		if id == nil {
			continue
		}
		switch id.Schedule {
		case "":
			id.Schedule = DrillAfterEachSet
		case DrillAfterEachSet, DrillDaily, DrillWeekly:
		default:
			return fmt.Errorf("config: instances[%d].drills.schedule %q: use after-each-set, daily or weekly", i, id.Schedule)
		}
		if id.Timeout != 0 && id.Timeout < Duration(time.Second) {
			return fmt.Errorf("config: instances[%d].drills.timeout: must be at least 1s", i)
		}
	}
	return nil
}

// DefaultConfig is the configuration without a file, with every default
// filled in (the same ones a file that omits a key gets).
func DefaultConfig() *Config {
	c := baseConfig()
	if err := c.Validate(); err != nil {
		panic("the built-in defaults do not validate: " + err.Error())
	}
	return c
}

// baseConfig holds the defaults a config file starts from; Validate fills
// in the rest.
func baseConfig() *Config {
	return &Config{Listen: DefaultListen, DataDir: DefaultDataDir, Region: DefaultRegion}
}

// instanceIDPattern: RDS-like ids (letters, digits, '-' and '_', starting
// with a letter), short enough to be part of a resource name.
var instanceIDPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// ReadConfigFile reads a config file, expanding ${VAR} from getenv.
func ReadConfigFile(path string, getenv func(string) string) (*Config, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(buf, getenv)
}

// ParseConfig parses and validates a config. ${VAR} and $VAR are replaced
// by the environment before parsing, so secrets need not be in the file.
//
// Errors never show an expanded value: YAML's messages quote pieces of the
// document, which would be a password's, so every value of 4 bytes or more
// that came from the environment is shown as the ${NAME} it was written as.
func ParseConfig(buf []byte, getenv func(string) string) (*Config, error) {
	expandedFrom := map[string]string{} // value -> variable name
	expanded := os.Expand(string(buf), func(name string) string {
		v := getenv(name)
		if len(v) >= minRedactedValue {
			expandedFrom[v] = name
		}
		return v
	})
	hide := func(err error) error {
		msg := err.Error()
		// Longest first, so that a value inside another goes with it.
		values := slices.SortedFunc(maps.Keys(expandedFrom), func(a, b string) int { return len(b) - len(a) })
		for _, v := range values {
			msg = strings.ReplaceAll(msg, v, "${"+expandedFrom[v]+"}")
		}
		return errors.New(msg)
	}
	cfg := baseConfig()
	dec := yaml.NewDecoder(strings.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && err.Error() != "EOF" {
		return nil, hide(fmt.Errorf("parse config: %w", err))
	}
	if err := cfg.Validate(); err != nil {
		return nil, hide(err)
	}
	return cfg, nil
}

// minRedactedValue: shorter expanded values would garble messages (line
// numbers, words) if replaced, and are no secrets.
const minRedactedValue = 4

// Validate checks every entry and says which one is wrong and why. It never
// connects to a database: the service must start while they are down.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen %q: %v", c.Listen, err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("config: dataDir must not be empty")
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			return fmt.Errorf("config: metrics.listen %q: %v", c.Metrics.Listen, err)
		}
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccountID != "" && !regexp.MustCompile(`^[0-9]{1,32}$`).MatchString(c.AccountID) {
		return fmt.Errorf("config: accountId %q: must be digits", c.AccountID)
	}
	if err := c.Downloads.validate(); err != nil {
		return err
	}
	if err := c.TLS.validate(); err != nil {
		return err
	}
	if err := c.Catalog.validate(); err != nil {
		return err
	}
	if err := c.Node.validate(); err != nil {
		return err
	}
	if c.Clones != nil {
		if err := c.Clones.validate(c); err != nil {
			return err
		}
	}
	if err := c.Drills.validate(c); err != nil {
		return err
	}
	if err := c.Storage.validate(); err != nil {
		return err
	}
	if c.Downloads.Mode == DownloadsPresigned && c.Storage.Type != StorageS3 {
		return fmt.Errorf("config: downloads.mode presigned needs storage.type s3: localfs has no URLs to presign")
	}
	if c.Encryption.KeyFile == "" {
		c.Encryption.KeyFile = c.Path("encryption.keys")
	}
	if c.Auth.MaxNonces == 0 {
		c.Auth.MaxNonces = rpc.DefaultMaxNonces
	} else if c.Auth.MaxNonces < 1000 || c.Auth.MaxNonces > 1<<27 {
		return fmt.Errorf("config: auth.maxNonces %d: must be between 1000 and %d", c.Auth.MaxNonces, 1<<27)
	}
	switch c.Auth.NonceStore {
	case "":
		c.Auth.NonceStore = NonceStoreCatalog
	case NonceStoreCatalog, NonceStoreMemory:
	default:
		return fmt.Errorf("config: auth.nonceStore %q: use catalog or memory", c.Auth.NonceStore)
	}
	if r := &c.Auth.RatePerKey; r.Rate == 0 {
		r.Rate = rpc.DefaultRatePerKey
	} else if r.Rate < 0.01 || r.Rate > 1e6 {
		return fmt.Errorf("config: auth.ratePerKey.rate %v: must be between 0.01 and 1000000 requests per second", r.Rate)
	}
	if r := &c.Auth.RatePerKey; r.Burst == 0 {
		r.Burst = max(rpc.DefaultBurstPerKey, int(r.Rate))
	} else if r.Burst < 1 || r.Burst > 1e6 {
		return fmt.Errorf("config: auth.ratePerKey.burst %d: must be 1 to 1000000", r.Burst)
	}
	if c.Backups.MaxConcurrent == 0 {
		c.Backups.MaxConcurrent = 2
	} else if c.Backups.MaxConcurrent < 0 || c.Backups.MaxConcurrent > 64 {
		return fmt.Errorf("config: backups.maxConcurrent %d: must be 1 to 64", c.Backups.MaxConcurrent)
	}
	if c.Logs.UploadInterval == 0 {
		c.Logs.UploadInterval = Duration(time.Minute)
	} else if c.Logs.UploadInterval < Duration(time.Second) || c.Logs.UploadInterval > Duration(time.Hour) {
		return fmt.Errorf("config: logs.uploadInterval %v: must be between 1s and 1h", time.Duration(c.Logs.UploadInterval))
	}
	if c.Backups.TickInterval == 0 {
		c.Backups.TickInterval = Duration(30 * time.Second)
	} else if c.Backups.TickInterval < Duration(10*time.Millisecond) || c.Backups.TickInterval > Duration(10*time.Minute) {
		return fmt.Errorf("config: backups.tickInterval %v: must be between 10ms and 10m", time.Duration(c.Backups.TickInterval))
	}
	seen := map[string]bool{}
	for i, inst := range c.Instances {
		where := fmt.Sprintf("config: instances[%d] (id %q)", i, inst.ID)
		if !instanceIDPattern.MatchString(inst.ID) {
			return fmt.Errorf("%s: malformed id: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter", where)
		}
		if seen[inst.ID] {
			return fmt.Errorf("%s: duplicate id", where)
		}
		seen[inst.ID] = true
		engine := rdsbackup.Engine(inst.Engine)
		if !engine.Valid() {
			return fmt.Errorf("%s: unknown engine %q: use one of MySQL, MariaDB, PostgreSQL, SQLServer", where, inst.Engine)
		}
		if err := validateDSN(engine, inst.DSN); err != nil {
			return fmt.Errorf("%s: dsn: %v", where, err)
		}
		if inst.BackupPolicy != nil {
			if _, err := inst.BackupPolicy.apply(rdsbackup.DefaultBackupPolicy(inst.ID)); err != nil {
				return fmt.Errorf("%s: backupPolicy: %v", where, err)
			}
		}
	}
	return nil
}

// validateDSN parses a DSN with the engine's own driver rules. Errors are
// rebuilt without the DSN text, which may hold a password.
func validateDSN(engine rdsbackup.Engine, dsn string) error {
	if dsn == "" {
		return fmt.Errorf("missing")
	}
	switch engine {
	case rdsbackup.EngineMySQL, rdsbackup.EngineMariaDB:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return fmt.Errorf("not a MySQL DSN (user:pass@tcp(host:port)/): %v", redact(err.Error(), dsn))
		}
		if cfg.Net != "tcp" && cfg.Net != "unix" {
			return fmt.Errorf("network %q not supported, use tcp or unix", cfg.Net)
		}
	case rdsbackup.EnginePostgreSQL:
		if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
			return fmt.Errorf("not a PostgreSQL URL (postgres://user:pass@host:port/db)")
		}
		if _, err := pgconn.ParseConfig(dsn); err != nil {
			return fmt.Errorf("not a valid PostgreSQL URL: %v", redact(err.Error(), dsn))
		}
	case rdsbackup.EngineSQLServer:
		u, err := url.Parse(dsn)
		if err != nil {
			return fmt.Errorf("not a URL")
		}
		if u.Scheme != "sqlserver" || u.Host == "" {
			return fmt.Errorf("not a SQL Server URL (sqlserver://user:pass@host:port?database=db)")
		}
	}
	return nil
}

// quoted matches what drivers quote in their messages: pieces of the DSN.
var quoted = regexp.MustCompile(`"[^"]*"|'[^']*'`)

// redact keeps a driver's message but drops every quoted piece of it and any
// occurrence of the DSN or its password: a malformed DSN cannot be parsed
// reliably, so what the driver echoes may hold any part of the password.
func redact(msg, dsn string) string {
	msg = strings.ReplaceAll(msg, dsn, "<dsn>")
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return quoted.ReplaceAllString(msg, `"…"`)
}

func (d *DownloadsConfig) validate() error {
	// Empty base URLs default, once the listener is up, to its address.
	for name, v := range map[string]string{"publicBaseURL": d.PublicBaseURL, "intranetBaseURL": d.IntranetBaseURL} {
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return fmt.Errorf("config: downloads.%s %q: must be an http(s) URL such as https://backup.example.com", name, v)
		}
	}
	switch d.Mode {
	case "":
		d.Mode = DownloadsProxy
	case DownloadsProxy, DownloadsPresigned:
	default:
		return fmt.Errorf("config: downloads.mode %q: use proxy or presigned", d.Mode)
	}
	if d.LinkTTL == 0 {
		d.LinkTTL = Duration(time.Hour)
	}
	if d.LinkTTL < Duration(time.Minute) || d.LinkTTL > Duration(7*24*time.Hour) {
		return fmt.Errorf("config: downloads.linkTTL %v: must be between 1m and 168h", time.Duration(d.LinkTTL))
	}
	return nil
}

// apply returns base changed by the config's fields.
func (pc *PolicyConfig) apply(base *rdsbackup.BackupPolicy) (*rdsbackup.BackupPolicy, error) {
	p := *base
	var err error
	if pc.PreferredBackupTime != "" {
		if p.Window, err = rdsbackup.ParseWindow(pc.PreferredBackupTime); err != nil {
			return nil, fmt.Errorf("preferredBackupTime: %v", err)
		}
	}
	if pc.PreferredBackupPeriod != "" {
		if p.Days, err = rdsbackup.ParseDays(pc.PreferredBackupPeriod); err != nil {
			return nil, fmt.Errorf("preferredBackupPeriod: %v", err)
		}
	}
	if pc.BackupRetentionPeriod != 0 {
		if pc.BackupRetentionPeriod < 7 || pc.BackupRetentionPeriod > 730 {
			return nil, fmt.Errorf("backupRetentionPeriod %d: must be 7 to 730 days", pc.BackupRetentionPeriod)
		}
		p.RetentionDays = pc.BackupRetentionPeriod
	}
	switch pc.BackupMethod {
	case "":
	case string(rdsbackup.MethodLogical), string(rdsbackup.MethodPhysical):
		p.Method = rdsbackup.BackupMethod(pc.BackupMethod)
	default:
		return nil, fmt.Errorf("backupMethod %q: must be Logical or Physical", pc.BackupMethod)
	}
	if pc.EnableBackupLog != nil {
		p.EnableBackupLog = *pc.EnableBackupLog
	}
	if pc.LogBackupRetentionPeriod != 0 {
		if pc.LogBackupRetentionPeriod < 7 || pc.LogBackupRetentionPeriod > 730 {
			return nil, fmt.Errorf("logBackupRetentionPeriod %d: must be 7 to 730 days", pc.LogBackupRetentionPeriod)
		}
		p.LogBackupRetentionPeriod = pc.LogBackupRetentionPeriod
	}
	if p.LogBackupRetentionPeriod > p.RetentionDays {
		return nil, fmt.Errorf("logBackupRetentionPeriod %d: must not exceed backupRetentionPeriod (%d days)", p.LogBackupRetentionPeriod, p.RetentionDays)
	}
	return &p, nil
}

// hash identifies the config policy, to notice when it was edited.
func (pc *PolicyConfig) hash() string {
	h := fmt.Sprintf("%s|%s|%d|%s", pc.PreferredBackupTime, pc.PreferredBackupPeriod, pc.BackupRetentionPeriod, pc.BackupMethod)
	// Only when set, so that the hash of a config written before these
	// keys existed stays the same (and a ModifyBackupPolicy is not undone).
	if pc.EnableBackupLog != nil || pc.LogBackupRetentionPeriod != 0 {
		h += fmt.Sprintf("|log=%v|%d", pc.EnableBackupLog != nil && *pc.EnableBackupLog, pc.LogBackupRetentionPeriod)
	}
	return h
}

// Path returns a file's path inside the data directory.
func (c *Config) Path(name string) string { return filepath.Join(c.DataDir, name) }

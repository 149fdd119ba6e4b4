package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"

	"github.com/rdsbackup/rdsbackup"
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
}

// InstanceConfig registers one database server.
type InstanceConfig struct {
	ID          string `yaml:"id"`
	Engine      string `yaml:"engine"`
	DSN         string `yaml:"dsn"`
	Description string `yaml:"description"`
}

// DefaultConfig is the configuration without a file.
func DefaultConfig() *Config {
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
func ParseConfig(buf []byte, getenv func(string) string) (*Config, error) {
	expanded := os.Expand(string(buf), getenv)
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && err.Error() != "EOF" {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Validate checks every entry and says which one is wrong and why. It never
// connects to a database: the service must start while they are down.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("config: listen %q: %v", c.Listen, err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("config: dataDir must not be empty")
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccountID != "" && !regexp.MustCompile(`^[0-9]{1,32}$`).MatchString(c.AccountID) {
		return fmt.Errorf("config: accountId %q: must be digits", c.AccountID)
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

// redact removes the DSN (and its password) from a driver's message.
func redact(msg, dsn string) string {
	msg = strings.ReplaceAll(msg, dsn, "<dsn>")
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	if cfg, err := mysql.ParseDSN(dsn); err == nil && cfg.Passwd != "" {
		msg = strings.ReplaceAll(msg, cfg.Passwd, "xxxxx")
	}
	return msg
}

// Path returns a file's path inside the data directory.
func (c *Config) Path(name string) string { return filepath.Join(c.DataDir, name) }

package main

import (
	"strings"
	"testing"
)

// FuzzParseConfig parses hostile config files: nothing may panic, a config
// that parses validates again unchanged, and no error shows the password
// that ${DB_PASSWORD} expands to.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:8080\ndataDir: /var/lib/rdsbackup\ninstances:\n  - id: rm-shop\n    engine: MariaDB\n    dsn: \"backup:${DB_PASSWORD}@tcp(10.0.0.5:3306)/\"\n"))
	f.Add([]byte("instances:\n  - id: pg-crm\n    engine: PostgreSQL\n    dsn: \"postgres://backup:${DB_PASSWORD}@h:5432/postgres?sslmode=verify-full\"\n    backupPolicy:\n      preferredBackupTime: 02:00Z-03:00Z\n      preferredBackupPeriod: Monday,Friday\n      backupRetentionPeriod: 30\n"))
	f.Add([]byte("auth:\n  maxNonces: 1000\n  ratePerKey: {rate: 0.5, burst: 1}\ntls: {certFile: a, keyFile: b}\ndownloads: {linkTTL: 1m, publicBaseURL: \"https://x\"}\nbackups: {maxConcurrent: 64, tickInterval: 10ms, schedule: false}\n"))
	f.Add([]byte("instances: [{id: rm-x, engine: MySQL, dsn: \"u:${DB_PASSWORD}@tcp(h:1\"}]"))
	f.Add([]byte("&a [*a, *a]\n"))
	const secret = "fuzz-secret-pw-0042"
	getenv := func(k string) string {
		if k == "DB_PASSWORD" {
			return secret
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		cfg, err := ParseConfig(data, getenv)
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the password: %v", err)
			}
			return
		}
		before := *cfg
		if err := cfg.Validate(); err != nil {
			t.Fatalf("a parsed config does not validate again: %v", err)
		}
		if cfg.Auth != before.Auth || cfg.Downloads != before.Downloads || cfg.Backups.MaxConcurrent != before.Backups.MaxConcurrent {
			t.Fatalf("validating again changed the config")
		}
	})
}

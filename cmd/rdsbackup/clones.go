package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/clone"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// startClones makes the clone manager of a config with a clones section:
// it checks the directory, gets the admin password and starts again the
// clones that were running (docs/clones.md).
func startClones(ctx context.Context, cfg *Config, restorer clone.Restorer, logger *slog.Logger) (*clone.Manager, error) {
	cc := cfg.Clones
	if err := os.MkdirAll(cc.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("config: clones.dir %s: %w", cc.Dir, err)
	}
	for _, ic := range cfg.Instances {
		if rdsbackup.Engine(ic.Engine) == rdsbackup.EnginePostgreSQL {
			if err := localserver.CheckPostgresParent(cc.Dir); err != nil {
				return nil, fmt.Errorf("config: clones.dir %s: %w", cc.Dir, err)
			}
			break
		}
	}
	password := cc.AdminPassword
	if password == "" {
		var err error
		if password, err = cloneAdminPassword(cfg.Path("clone-admin.password")); err != nil {
			return nil, err
		}
	}
	host := cc.Host
	if host == "" {
		host = cc.Bind
		if ip := net.ParseIP(cc.Bind); ip != nil && ip.IsUnspecified() {
			if host, _ = os.Hostname(); host == "" {
				host = "127.0.0.1"
			}
		}
	}
	m := &clone.Manager{
		Dir: cc.Dir, Bind: cc.Bind, Host: host, FirstPort: cc.firstPort, LastPort: cc.lastPort, Max: cc.MaxClones,
		Password: password, Restorer: restorer, Logger: logger, Now: time.Now,
	}
	if err := m.Load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// cloneAdminPassword reads the clones' admin password from path, making a
// random one there (0600) the first time.
func cloneAdminPassword(path string) (string, error) {
	buf, err := os.ReadFile(path)
	if err == nil {
		if pw := strings.TrimSpace(string(buf)); pw != "" {
			return pw, nil
		}
		return "", fmt.Errorf("clones: %s is empty: delete it to have a new password made, or set clones.adminPassword", path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("clones: admin password: %w", err)
	}
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("clones: admin password: %w", err)
	}
	return pw, nil
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup/storage/encrypted"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

func putObject(t *testing.T, dataDir, key string, keys *encrypted.Keyring, body []byte) {
	t.Helper()
	s := encrypted.New(localfs.New(filepath.Join(dataDir, "storage")), keys, keys != nil)
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// An installation that already has backups keeps storing in the clear
// until encryption.enabled is set; the choice, once made, is kept.
func TestEncryptionDefaultForExistingInstallation(t *testing.T) {
	dataDir := t.TempDir()
	putObject(t, dataDir, "backups/rm-old/1/set.zst", nil, []byte{0x28, 0xb5, 0x2f, 0xfd, 0})
	keyFile := filepath.Join(dataDir, "encryption.keys")
	unset := fmt.Sprintf("encryption:\n  keyFile: %s\n", keyFile)
	for range 2 {
		svc := startService(t, dataDir, unset, testEnv(nil))
		svc.Stop()
		if !strings.Contains(svc.Stderr.String(), "encryption at rest is off") {
			t.Fatalf("an existing installation: %s", svc.Stderr.String())
		}
		if _, err := os.Stat(keyFile); err == nil {
			t.Fatal("a key file was made with encryption off")
		}
	}
	svc := startService(t, dataDir, unset+"  enabled: true\n", testEnv(nil))
	svc.Stop()
	if !strings.Contains(svc.Stderr.String(), "encryption at rest is on") || !strings.Contains(svc.Stderr.String(), "CREATED THE ENCRYPTION KEY FILE") {
		t.Fatalf("enabled: true: %s", svc.Stderr.String())
	}
	// A new installation: on without being asked (and the choice kept).
	fresh := t.TempDir()
	for range 2 {
		svc := startService(t, fresh, fmt.Sprintf("encryption:\n  keyFile: %s\n", filepath.Join(fresh, "encryption.keys")), testEnv(nil))
		svc.Stop()
		if !strings.Contains(svc.Stderr.String(), "encryption at rest is on") {
			t.Fatalf("a new installation: %s", svc.Stderr.String())
		}
	}
}

// With encryption on and the key file gone, the service refuses to start
// rather than make a new key, naming the key the backups need.
func TestEncryptionLostKeyFile(t *testing.T) {
	dataDir := t.TempDir()
	key := encrypted.NewKey()
	putObject(t, dataDir, "backups/rm-x/7/manifest.json", encrypted.NewKeyring(key), []byte(`{"version":1}`))
	keyFile := filepath.Join(dataDir, "encryption.keys")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\nencryption:\n  enabled: true\n  keyFile: %s\n", dataDir, keyFile)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(nil)}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if code := m.Run(ctx, []string{"serve", "--config", path}); code != exitFailed || !strings.Contains(stderr.String(), key.ID) ||
		!strings.Contains(stderr.String(), "does not exist") {
		t.Fatalf("serve without its key file: exit %d\n%s", code, stderr.String())
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("a new key file was made")
	}
}

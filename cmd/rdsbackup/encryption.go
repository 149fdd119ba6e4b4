package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/storage/encrypted"
)

// envEncryptionKeys holds the key-encryption keys instead of the key file
// (the key file format; entries may be separated by commas).
const envEncryptionKeys = "RDSBACKUP_ENCRYPTION_KEYS"

// encryptionSetting records, once per catalog, whether encryption is on
// when the config does not say: "on" for an installation that had no
// backup when this version first started (or had encryption keys already),
// "off" for one that had backups in the clear.
const encryptionSetting = "encryption_default"

// encryptStore wraps raw, the object store, in the encryption of
// cfg.Encryption. settings decides the default for a store that writes
// (serve); nil means the caller only reads and rewraps, so no new object is
// encrypted by it and no key file is created.
func (m *Main) encryptStore(ctx context.Context, cfg *Config, raw rdsbackup.ObjectStore, settings rdsbackup.SettingService, logger *slog.Logger) (*encrypted.Store, error) {
	on := false
	if settings != nil {
		var err error
		if on, err = m.encryptionEnabled(ctx, cfg, raw, settings); err != nil {
			return nil, err
		}
	}
	if on && !m.haveKeys(cfg) {
		// A lost key file must not be silently replaced by a new key while
		// the storage holds backups that only the old one opens.
		if id, err := encryptedBackupKey(ctx, raw); err != nil {
			return nil, err
		} else if id != "" {
			return nil, fmt.Errorf("the storage holds backups encrypted with key %s, but the key file %s does not exist: "+
				"put back the copy of the key file (or set %s); rdsbackup does not make a new key while it is missing", id, cfg.Encryption.KeyFile, envEncryptionKeys)
		}
	}
	keys, created, err := m.loadKeys(cfg, on)
	if err != nil {
		return nil, err
	}
	if created {
		logger.Warn("CREATED THE ENCRYPTION KEY FILE: every new backup is encrypted with the keys in it, and WITHOUT THIS FILE "+
			"THE BACKUPS CANNOT BE READ. Copy it now to a safe place apart from the backups (and again after each 'rdsbackup keys rotate').",
			"path", cfg.Encryption.KeyFile)
	}
	if settings != nil {
		if on {
			cur, _ := keys.Current()
			logger.Info("encryption at rest is on", "keyId", cur.ID, "keys", keys.Source)
		} else {
			logger.Info("encryption at rest is off: new backups are stored in the clear; set encryption.enabled: true to encrypt them")
		}
	}
	return encrypted.New(raw, keys, on), nil
}

// encryptionEnabled applies the config, or else the catalog's recorded
// default, deciding it when there is none.
func (m *Main) encryptionEnabled(ctx context.Context, cfg *Config, raw rdsbackup.ObjectStore, settings rdsbackup.SettingService) (bool, error) {
	if e := cfg.Encryption.Enabled; e != nil {
		return *e, nil
	}
	v, err := settings.FindSetting(ctx, encryptionSetting)
	if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
		existing := false
		for _, lerr := range raw.List(ctx, "backups/") {
			if lerr != nil {
				return false, fmt.Errorf("look for existing backups: %w", lerr)
			}
			existing = true
			break
		}
		// Keys already there mean encryption was on before this catalog
		// (a catalog rebuilt on a new host from encrypted storage).
		value := "on"
		if existing && !m.haveKeys(cfg) {
			value = "off"
		}
		v, err = settings.CreateSetting(ctx, encryptionSetting, []byte(value))
	}
	if err != nil {
		return false, fmt.Errorf("encryption default: %w", err)
	}
	return string(v) == "on", nil
}

// encryptedBackupKey returns the key id of an encrypted manifest in raw,
// "" when there is none.
func encryptedBackupKey(ctx context.Context, raw rdsbackup.ObjectStore) (string, error) {
	probe := encrypted.New(raw, nil, false)
	for o, err := range raw.List(ctx, "backups/") {
		if err != nil {
			return "", fmt.Errorf("look for encrypted backups: %w", err)
		}
		if path.Base(o.Key) != "manifest.json" {
			continue
		}
		doc, err := probe.ObjectEncryption(ctx, o.Key)
		if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
			continue
		} else if err != nil {
			return "", fmt.Errorf("look for encrypted backups: %w", err)
		}
		if doc != rdsbackup.NoEncryption {
			var e struct{ KeyId string }
			json.Unmarshal([]byte(doc), &e)
			return e.KeyId, nil
		}
	}
	return "", nil
}

// haveKeys reports whether keys are configured: the environment variable,
// or a key file.
func (m *Main) haveKeys(cfg *Config) bool {
	if m.Getenv(envEncryptionKeys) != "" {
		return true
	}
	_, err := os.Stat(cfg.Encryption.KeyFile)
	return err == nil
}

// loadKeys returns the keyring: from the environment when set, else from
// the key file, which is created when create is set and there is none. No
// keys and no create: a nil keyring, which reads objects stored in the
// clear and names the missing key for encrypted ones.
func (m *Main) loadKeys(cfg *Config, create bool) (keys *encrypted.Keyring, created bool, err error) {
	if v := m.Getenv(envEncryptionKeys); v != "" {
		keys, err := encrypted.ParseKeyring([]byte(v))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", envEncryptionKeys, err)
		}
		keys.Source = envEncryptionKeys
		return keys, false, nil
	}
	if create {
		return encrypted.LoadOrCreateKeyFile(cfg.Encryption.KeyFile)
	}
	keys, err = encrypted.LoadKeyFile(cfg.Encryption.KeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &encrypted.Keyring{Source: "no key file " + cfg.Encryption.KeyFile + " and " + envEncryptionKeys + " unset"}, false, nil
	}
	return keys, false, err
}

// openStoreForTool opens the config's backup storage for a command other
// than serve (rebuild-catalog, restore, keys): objects are read through the
// encryption at rest with the keys there are; it decides nothing and makes
// no key.
func (m *Main) openStoreForTool(ctx context.Context, cfg *Config, logger *slog.Logger) (*encrypted.Store, *backupStorage, error) {
	storage, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	store, err := m.encryptStore(ctx, cfg, storage.Store, nil, logger)
	return store, storage, err
}

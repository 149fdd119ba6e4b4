package encrypted

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a key-encryption key (AES-256).
const KeySize = 32

// Key is a key-encryption key (KEK): it wraps the data keys of objects.
type Key struct {
	ID     string // "ek-" and 16 hex digits when rdsbackup made it
	Secret []byte
}

// NewKey makes a random key with a fresh id.
func NewKey() Key {
	id := make([]byte, 8)
	rand.Read(id)
	secret := make([]byte, KeySize)
	rand.Read(secret)
	return Key{ID: "ek-" + hex.EncodeToString(id), Secret: secret}
}

// Keyring holds the key-encryption keys. The last one is current: new
// objects are encrypted under it; the others stay to read older objects.
type Keyring struct {
	keys []Key
	// Source names where the keys came from, for messages ("key file
	// /var/lib/rdsbackup/encryption.keys"); never the keys themselves.
	Source string
}

// NewKeyring returns a keyring of keys, the last one current.
func NewKeyring(keys ...Key) *Keyring { return &Keyring{keys: keys} }

// Current returns the key new objects are encrypted under.
func (k *Keyring) Current() (Key, bool) {
	if k == nil || len(k.keys) == 0 {
		return Key{}, false
	}
	return k.keys[len(k.keys)-1], true
}

// Lookup returns the key with id.
func (k *Keyring) Lookup(id string) (Key, bool) {
	if k == nil {
		return Key{}, false
	}
	for _, key := range k.keys {
		if key.ID == id {
			return key, true
		}
	}
	return Key{}, false
}

// IDs returns the key ids, oldest first; the last is current.
func (k *Keyring) IDs() []string {
	if k == nil {
		return nil
	}
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.ID
	}
	return ids
}

// Add makes key the current key.
func (k *Keyring) Add(key Key) { k.keys = append(k.keys, key) }

func (k *Keyring) where() string {
	if k == nil || k.Source == "" {
		return ""
	}
	return " (" + k.Source + ")"
}

const keyFileHeader = `# rdsbackup encryption keys. WITHOUT THIS FILE THE ENCRYPTED BACKUPS CANNOT BE READ:
# keep a copy somewhere safe, apart from the backups. One key per line, "<id> <base64>";
# the last key is the current one, the others still read older objects.
`

// Marshal renders the keyring in the key file format.
func (k *Keyring) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(keyFileHeader)
	for _, key := range k.keys {
		fmt.Fprintf(&b, "%s %s\n", key.ID, base64.StdEncoding.EncodeToString(key.Secret))
	}
	return b.Bytes()
}

// ParseKeyring reads the key file format: lines "<id> <base64 key>", '#'
// comments and blank lines ignored. In an environment variable the
// entries may be separated by commas instead of newlines. Errors never
// quote a key.
func ParseKeyring(text []byte) (*Keyring, error) {
	k := &Keyring{}
	var entries []string
	for _, line := range strings.Split(string(text), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			entries = append(entries, strings.Split(line, ",")...)
		}
	}
	for i, line := range entries {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, secret, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("encryption keys: entry %d: want \"<id> <base64 key>\"", i+1)
		}
		if !validKeyID(id) {
			return nil, fmt.Errorf("encryption keys: entry %d: key id must be 1-64 letters, digits, '-', '_' or '.'", i+1)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("encryption keys: key %s: must be %d bytes in base64", id, KeySize)
		}
		if _, dup := k.Lookup(id); dup {
			return nil, fmt.Errorf("encryption keys: key %s appears twice", id)
		}
		k.keys = append(k.keys, Key{ID: id, Secret: raw})
	}
	if len(k.keys) == 0 {
		return nil, errors.New("encryption keys: no key")
	}
	return k, nil
}

// LoadKeyFile reads the key file at path, which must be private (0600).
func LoadKeyFile(path string) (*Keyring, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("encryption key file %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	k, err := ParseKeyring(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k.Source = "key file " + path
	return k, nil
}

// LoadOrCreateKeyFile reads the key file at path, or, when there is none,
// creates it (0600) with one new key. created tells the caller to warn
// that the file must be kept.
func LoadOrCreateKeyFile(path string) (k *Keyring, created bool, err error) {
	k, err = LoadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create encryption key directory: %w", err)
	}
	k = NewKeyring(NewKey())
	// O_EXCL: two processes starting at once must not each make a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		k, err = LoadKeyFile(path)
		return k, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("create encryption key file: %w", err)
	}
	if _, err := f.Write(k.Marshal()); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write encryption key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("sync encryption key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	k.Source = "key file " + path
	return k, true, nil
}

// WriteKeyFile replaces the key file at path with k, atomically (a crash
// leaves the old file or the new one) and privately.
func WriteKeyFile(path string, k *Keyring) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".encryption-keys-*")
	if err != nil {
		return fmt.Errorf("write encryption key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(k.Marshal()); err != nil {
		tmp.Close()
		return fmt.Errorf("write encryption key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync encryption key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace encryption key file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

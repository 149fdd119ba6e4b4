package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/storage/encrypted"
)

const keysUsage = `Usage: rdsbackup keys (list | rotate | rewrap) [--config FILE]

Manages the key-encryption keys of encryption at rest (encryption.keyFile,
default dataDir/encryption.keys, or RDSBACKUP_ENCRYPTION_KEYS).

  list    print the key ids; the current one (new objects) is marked
  rotate  add a new key and make it current; the others stay, to read the
          objects written under them. Restart the service to use it, and copy
          the key file to its safe place again.
  rewrap  re-wrap the data keys of every object under a non-current key with
          the current key (run it with the service stopped). Only each
          object's header changes; its encrypted data is copied byte for byte.
          Afterwards the old keys can be removed from the key file.
`

func (m *Main) keysCommand(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(m.Stderr, keysUsage)
		if len(args) == 0 {
			return usageError{errors.New("keys: give list, rotate or rewrap")}
		}
		return flag.ErrHelp
	}
	cfg, err := m.configFromFlags("keys "+args[0], args[1:])
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		keys, _, err := m.loadKeys(cfg, false)
		if err != nil {
			return err
		}
		ids := keys.IDs()
		if len(ids) == 0 {
			return fmt.Errorf("keys: %s", keys.Source)
		}
		for i, id := range ids {
			mark := ""
			if i == len(ids)-1 {
				mark = "  (current)"
			}
			fmt.Fprintf(m.Stdout, "%s%s\n", id, mark)
		}
		fmt.Fprintf(m.Stderr, "from %s\n", keys.Source)
		return nil
	case "rotate":
		if m.Getenv(envEncryptionKeys) != "" {
			return fmt.Errorf("keys rotate: the keys come from %s; add a new entry at its end there (\"<id> <base64 of 32 random bytes>\")", envEncryptionKeys)
		}
		keys, _, err := encrypted.LoadOrCreateKeyFile(cfg.Encryption.KeyFile)
		if err != nil {
			return err
		}
		key := encrypted.NewKey()
		keys.Add(key)
		if err := encrypted.WriteKeyFile(cfg.Encryption.KeyFile, keys); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "%s\n", key.ID)
		fmt.Fprintf(m.Stderr, "new current key %s in %s; restart the service to use it, copy the key file to its safe place again, "+
			"and run 'rdsbackup keys rewrap' to move older objects to it\n", key.ID, cfg.Encryption.KeyFile)
		return nil
	case "rewrap":
		return m.rewrap(ctx, cfg)
	}
	return usageError{fmt.Errorf("keys: unknown command %q: give list, rotate or rewrap", args[0])}
}

// rewrap moves every object to the current key, and the catalog's record
// of each set's encryption with it.
func (m *Main) rewrap(ctx context.Context, cfg *Config) error {
	logger := m.logger()
	db, _, err := m.openCatalog(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	store, _, err := m.openStoreForTool(ctx, cfg, logger)
	if err != nil {
		return err
	}
	cur, ok := store.Keys.Current()
	if !ok {
		return fmt.Errorf("keys rewrap: %s", store.Keys.Source)
	}
	// Collected first: each rewrap replaces an object, which a listing in
	// progress may or may not see again.
	objs, err := rdsbackup.CollectObjects(store.Inner.List(ctx, ""))
	if err != nil {
		return err
	}
	changed := 0
	for _, o := range objs {
		ok, err := store.Rewrap(ctx, o.Key)
		if err != nil {
			return fmt.Errorf("keys rewrap: %w (%d objects re-wrapped before)", err, changed)
		}
		if !ok {
			continue
		}
		changed++
		if err := recordEncryption(ctx, db, store, o.Key); err != nil {
			return fmt.Errorf("keys rewrap: %w", err)
		}
	}
	fmt.Fprintf(m.Stdout, "re-wrapped %d of %d objects under %s\n", changed, len(objs), cur.ID)
	return nil
}

// recordEncryption updates the catalog entry of the set whose object is
// key (backups/<instance>/<id>/set.zst), if there is one.
func recordEncryption(ctx context.Context, db rdsbackup.BackupSetService, store *encrypted.Store, key string) error {
	segs := strings.Split(key, "/")
	if len(segs) != 4 || segs[0] != "backups" || path.Base(key) == "manifest.json" {
		return nil
	}
	id, err := strconv.ParseInt(segs[2], 10, 64)
	if err != nil {
		return nil
	}
	set, err := db.FindBackupSet(ctx, id)
	if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if set.ObjectKey != key {
		return nil
	}
	if set.Encryption, err = store.ObjectEncryption(ctx, key); err != nil {
		return err
	}
	return db.UpdateBackupSet(ctx, set)
}

const decryptUsage = `Usage: rdsbackup decrypt [--config FILE] [--key-file F] [--in F] [--out F]

Decrypts an object copied straight from the backup storage (a file from the
bucket, a presigned S3 link, dataDir/storage) into what the download links
serve: the set's zstd stream, whose CRC64 is the set's Checksum. The keys
come from RDSBACKUP_ENCRYPTION_KEYS, else --key-file, else the config's
encryption.keyFile. An object stored in the clear is copied unchanged.
A damaged object stops with an error at the first chunk that does not
authenticate: --out is then removed; on stdout, check the exit code.

Flags:
`

func (m *Main) decrypt(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("decrypt", flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	fset.Usage = func() { fmt.Fprint(m.Stderr, decryptUsage); fset.PrintDefaults() }
	configPath := fset.String("config", "", "YAML config file, for encryption.keyFile")
	keyFile := fset.String("key-file", "", "the key file (default: the config's encryption.keyFile)")
	in := fset.String("in", "", "the encrypted object (default: stdin)")
	out := fset.String("out", "", "where the plaintext goes (default: stdout)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	keys, err := m.keysFor(*configPath, *keyFile)
	if err != nil {
		return err
	}
	var src io.Reader = os.Stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	var dst io.Writer = m.Stdout
	var outFile *os.File
	if *out != "" {
		if outFile, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			return err
		}
		defer outFile.Close()
		dst = outFile
	}
	n, err := encrypted.Decrypt(dst, rdsbackup.ContextReader(ctx, src), keys)
	if err != nil {
		if outFile != nil {
			outFile.Close()
			os.Remove(*out)
		}
		return fmt.Errorf("decrypt: %s (after %d bytes)", describeErr(err), n)
	}
	if outFile != nil {
		if err := outFile.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(m.Stderr, "decrypted %d bytes\n", n)
	return nil
}

// keysFor loads the keyring for commands that run without the service:
// the environment, else keyFile, else the config's (or the default) key file.
func (m *Main) keysFor(configPath, keyFile string) (*encrypted.Keyring, error) {
	cfg := DefaultConfig()
	if configPath != "" {
		var err error
		if cfg, err = ReadConfigFile(configPath, m.Getenv); err != nil {
			return nil, err
		}
	}
	if keyFile != "" {
		cfg.Encryption.KeyFile = keyFile
	}
	keys, _, err := m.loadKeys(cfg, false)
	return keys, err
}

// describeErr is an error's message for the command line: the domain's
// message when there is one.
func describeErr(err error) string {
	var e *rdsbackup.Error
	if errors.As(err, &e) {
		return e.Code + ": " + e.Message
	}
	return err.Error()
}

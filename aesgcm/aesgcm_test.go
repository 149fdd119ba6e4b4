package aesgcm_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rdsbackup/rdsbackup/aesgcm"
)

func TestSealOpen(t *testing.T) {
	key, created, err := aesgcm.LoadOrCreateKeyFile(filepath.Join(t.TempDir(), "sub", "master.key"))
	if err != nil || !created {
		t.Fatalf("create key: created=%v err=%v", created, err)
	}
	box, err := aesgcm.New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("sealed text contains the plaintext")
	}
	plain, err := box.Open(sealed)
	if err != nil || string(plain) != "s3cret" {
		t.Fatalf("open: %q %v", plain, err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := box.Open(sealed); err == nil {
		t.Fatal("tampered ciphertext opened")
	}
	other, _ := aesgcm.New(bytes.Repeat([]byte{7}, aesgcm.KeySize))
	sealed2, _ := box.Seal([]byte("x"))
	if _, err := other.Open(sealed2); err == nil {
		t.Fatal("wrong key opened the secret")
	}
}

func TestKeyFileReusedAndProtected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	k1, _, err := aesgcm.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, created, err := aesgcm.LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: created=%v err=%v equal=%v", created, err, bytes.Equal(k1, k2))
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	os.Chmod(path, 0o644)
	if _, _, err := aesgcm.LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("world-readable key file accepted")
	}
	if _, err := aesgcm.ParseKey("bm90IGEga2V5"); err == nil {
		t.Fatal("short key accepted")
	}
}

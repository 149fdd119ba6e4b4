package main

// Encryption at rest through the real service: every engine × method
// backed up on a new installation (where encryption is on by default),
// nothing readable in storage, downloads and ranges serving the plaintext
// zstd stream, restores; a damaged object, a wrong and a missing key, a
// catalog rebuilt on a fresh host, key rotation and re-wrapping.

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/storage/encrypted"
)

// sampleValue is stored in a source database; it must not appear in
// storage, and must appear in what the download serves, decompressed.
const sampleValue = "enc-sample-7f3a9c-do-not-leak"

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// encryptedFixture is a backup fixture on a new data directory whose
// config leaves encryption.enabled unset: on, as for any new installation.
func encryptedFixture(t *testing.T, inst backupInstance) *backupFixture {
	fx := newBackupFixture(t, inst)
	fx.YAML = fmt.Sprintf("encryption:\n  keyFile: %s\n", filepath.Join(fx.DataDir, "encryption.keys")) + fx.YAML
	return fx
}

func keyFilePath(fx *backupFixture) string { return filepath.Join(fx.DataDir, "encryption.keys") }

func currentKeyID(t *testing.T, fx *backupFixture) string {
	t.Helper()
	keys, err := encrypted.LoadKeyFile(keyFilePath(fx))
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := keys.Current()
	return cur.ID
}

func encryptionDoc(id string) string {
	return `{"EncryptionType":"AES-256-GCM","KeyId":"` + id + `"}`
}

// rawObjects reads every stored file of a set.
func rawObjects(t *testing.T, fx *backupFixture, inst, id string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	dir := filepath.Join(fx.DataDir, "storage", "backups", inst, id)
	for _, name := range []string{"set.zst", "manifest.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// checkStoredEncrypted: the set's stored objects are in the encrypted
// format, with neither zstd frames nor the sample value nor manifest JSON
// in them, while the download serves zstd frames holding the sample value.
func checkStoredEncrypted(t *testing.T, fx *backupFixture, inst string, b backupOut, logical bool) {
	t.Helper()
	for name, raw := range rawObjects(t, fx, inst, b.BackupId) {
		if !encrypted.IsEncrypted(raw) {
			t.Errorf("set %s: %s is not encrypted", b.BackupId, name)
		}
		if bytes.HasPrefix(raw, zstdMagic) || bytes.Contains(raw, []byte(sampleValue)) || bytes.Contains(raw, []byte(`"backupId"`)) {
			t.Errorf("set %s: %s holds plaintext", b.BackupId, name)
		}
		// A logical set is small: a chance 4-byte match is unlikely (a
		// physical one is tens of MiB, where one may occur by chance).
		if logical && bytes.Contains(raw, zstdMagic) {
			t.Errorf("set %s: %s holds a zstd frame magic", b.BackupId, name)
		}
	}
	body := checkDownloads(t, b)
	if !bytes.HasPrefix(body, zstdMagic) {
		t.Fatalf("set %s: the download is not the zstd stream", b.BackupId)
	}
	if logical {
		dec, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(dec)
		dec.Close()
		if err != nil || !bytes.Contains(plain, []byte(sampleValue)) {
			t.Errorf("set %s: the decompressed download lacks the sample value (%v)", b.BackupId, err)
		}
	}
}

// getRange GETs a link with a Range header.
func getRange(t *testing.T, link, rng string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, link, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// checkRanges: Range requests of the whole set and of a part's link serve
// the right plaintext bytes, across chunk boundaries.
func checkRanges(t *testing.T, b backupOut, whole []byte) {
	t.Helper()
	n := int64(len(whole))
	for _, r := range [][2]int64{{0, 0}, {1, 100}, {encrypted.ChunkSize - 3, encrypted.ChunkSize + 5}, {n / 2, n/2 + 3*encrypted.ChunkSize}, {n - 10, n - 1}} {
		lo, hi := min(r[0], n-1), min(r[1], n-1)
		status, got := getRange(t, b.BackupDownloadURL, fmt.Sprintf("bytes=%d-%d", lo, hi))
		if status != http.StatusPartialContent || !bytes.Equal(got, whole[lo:hi+1]) {
			t.Errorf("set %s: range %d-%d: %d, %d bytes, want %d", b.BackupId, lo, hi, status, len(got), hi-lo+1)
		}
	}
	status, got := getRange(t, b.BackupDownloadURL, "bytes=-777")
	if status != http.StatusPartialContent || !bytes.Equal(got, whole[n-777:]) {
		t.Errorf("set %s: suffix range: %d, %d bytes", b.BackupId, status, len(got))
	}
	for _, l := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
		part, _ := downloadLink(t, l.DownloadLink)
		status, got := getRange(t, l.DownloadLink, "bytes=3-")
		if status != http.StatusPartialContent || !bytes.Equal(got, part[3:]) || !bytes.Contains(whole, part) {
			t.Errorf("set %s, link of %s: range 3-: %d", b.BackupId, l.DataBase, status)
		}
	}
}

// runMain runs a subcommand in-process with the fixture's environment.
func runMain(t *testing.T, fx *backupFixture, extraEnv map[string]string, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{}
	for k, v := range fx.Env {
		env[k] = v
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(env)}
	code := m.Run(t.Context(), args)
	return code, stdout.String(), stderr.String()
}

// encConfigFile is fx.configFile with the fixture's encryption settings.
func encConfigFile(t *testing.T, fx *backupFixture) string {
	t.Helper()
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\nbackups:\n  schedule: false\n%s", fx.DataDir, fx.YAML)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func wantDownloadError(t *testing.T, link, code, mentions string) {
	t.Helper()
	status, body := getRange(t, link, "")
	if status != http.StatusInternalServerError || !strings.Contains(string(body), `"Code":"`+code+`"`) || !strings.Contains(string(body), mentions) {
		t.Fatalf("download: %d %s, want 500 %s mentioning %q", status, body, code, mentions)
	}
}

func TestEncryptionMariaDB(t *testing.T) {
	const pw = "enc maria pw"
	const inst = "rm-enc"
	src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 21, LogBin: true, RootPassword: pw})
	dbA, dbB := src.NewDatabase(t), src.NewDatabase(t)
	enginetest.FillMariaDB(t, src.DB(t, dbA), 1500)
	enginetest.FillMariaDB(t, src.DB(t, dbB), 200)
	for _, q := range []string{"CREATE TABLE sample (v VARCHAR(64))", "INSERT INTO sample VALUES ('" + sampleValue + "')"} {
		if _, err := src.DB(t, dbA).Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	dbs := []string{dbA, dbB}
	want := map[string]map[string]string{}
	for _, d := range dbs {
		want[d] = enginetest.MariaDBContents(t, src.DB(t, d))
	}

	fx := encryptedFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
	svc := fx.start(t)
	if !strings.Contains(svc.Stderr.String(), "CREATED THE ENCRYPTION KEY FILE") || !strings.Contains(svc.Stderr.String(), keyFilePath(fx)) {
		t.Errorf("no first-start warning naming the key file:\n%s", svc.Stderr.String())
	}
	if fi, err := os.Stat(keyFilePath(fx)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	keyID := currentKeyID(t, fx)
	c := rootClients(t, svc)
	target := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "enc target pw"})

	var logical backupOut
	t.Run("Logical", func(t *testing.T) {
		id := createBackup(t, c, inst, "Logical", nil)
		waitFinished(t, c, inst, id)
		logical = describeSet(t, c, inst, id)
		if logical.Encryption != encryptionDoc(keyID) {
			t.Errorf("Encryption %s, want %s", logical.Encryption, encryptionDoc(keyID))
		}
		checkStoredEncrypted(t, fx, inst, logical, true)
		whole, _ := downloadLink(t, logical.BackupDownloadURL)
		checkRanges(t, logical, whole)
		mustRestore(t, target.DSN(""), "--url", logical.BackupDownloadURL)
		for _, d := range dbs {
			sameContents(t, "restored "+d, want[d], enginetest.MariaDBContents(t, target.DB(t, d)))
		}
		mustRestore(t, target.DSN(""), "--url", dbLink(t, logical, dbB), "--engine", "MariaDB", "--database", dbB, "--as", "link_copy")
		sameContents(t, "restored from its link", want[dbB], enginetest.MariaDBContents(t, target.DB(t, "link_copy")))
	})
	if logical.BackupId == "" {
		t.FailNow()
	}

	t.Run("Physical", func(t *testing.T) {
		id := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, id)
		b := describeSet(t, c, inst, id)
		if b.Encryption != encryptionDoc(keyID) {
			t.Errorf("Encryption %s", b.Encryption)
		}
		checkStoredEncrypted(t, fx, inst, b, false)
		dir := filepath.Join(t.TempDir(), "restored")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mustRestore(t, "", "--url", b.BackupDownloadURL, "--data-dir", dir)
		port := startMariaDBOn(t, dir, pw)
		for _, d := range dbs {
			sameContents(t, "physically restored "+d, want[d], enginetest.MariaDBContents(t, openMariaDB(t, port, pw, d)))
		}
	})

	// A file copied straight from the storage (what a presigned bucket
	// link serves) restores with the key, and `rdsbackup decrypt` turns it
	// into the download's bytes.
	t.Run("CiphertextFile", func(t *testing.T) {
		raw := filepath.Join(fx.DataDir, "storage", "backups", inst, logical.BackupId, "set.zst")
		out := filepath.Join(t.TempDir(), "plain.zst")
		if code, _, stderr := runMain(t, fx, nil, "decrypt", "--key-file", keyFilePath(fx), "--in", raw, "--out", out); code != exitOK {
			t.Fatalf("decrypt: %d %s", code, stderr)
		}
		plain, err := os.ReadFile(out)
		if err != nil || crcOf(plain) != logical.Checksum {
			t.Fatalf("decrypted file: CRC64 %s, Checksum %s (%v)", crcOf(plain), logical.Checksum, err)
		}
		mustRestore(t, target.DSN(""), "--file", raw, "--key-file", keyFilePath(fx), "--checksum", logical.Checksum, "--database", dbA, "--as", "from_ciphertext")
		sameContents(t, "restored from the ciphertext file", want[dbA], enginetest.MariaDBContents(t, target.DB(t, "from_ciphertext")))

		// Without the key: refused, naming the key id, the target untouched.
		before := mariadbDatabases(t, target.DB(t, ""))
		code, stderr := runRestore(t, target.DSN(""), "--file", raw, "--key-file", filepath.Join(t.TempDir(), "none"), "--database", dbA, "--as", "nokey")
		if code != exitFailed || !strings.Contains(stderr, keyID) || !strings.Contains(stderr, "EncryptionKeyUnavailable") {
			t.Errorf("restore without the key: exit %d:\n%s", code, stderr)
		}
		if after := mariadbDatabases(t, target.DB(t, "")); !slices.Equal(before, after) {
			t.Errorf("a refused restore changed the target: %q → %q", before, after)
		}
	})

	t.Run("DamagedObject", func(t *testing.T) {
		id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", dbB })
		waitFinished(t, c, inst, id)
		b := describeSet(t, c, inst, id)
		obj := filepath.Join(fx.DataDir, "storage", "backups", inst, id, "set.zst")
		raw, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		raw[200] ^= 1 // in the first chunk, just after the header
		if err := os.WriteFile(obj, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		wantDownloadError(t, b.BackupDownloadURL, "InternalError.ObjectCorrupt", "authentication")
		before := mariadbDatabases(t, target.DB(t, ""))
		if code, stderr := runRestore(t, target.DSN(""), "--url", b.BackupDownloadURL, "--database", dbB, "--as", "damaged"); code != exitFailed {
			t.Errorf("restore of a damaged set: exit %d\n%s", code, stderr)
		}
		if after := mariadbDatabases(t, target.DB(t, "")); !slices.Equal(before, after) {
			t.Errorf("a refused restore changed the target: %q → %q", before, after)
		}
	})

	t.Run("WrongKey", func(t *testing.T) {
		svc.Stop()
		good, err := os.ReadFile(keyFilePath(fx))
		if err != nil {
			t.Fatal(err)
		}
		// Another secret under the same id.
		other := encrypted.NewKey()
		other.ID = keyID
		if err := encrypted.WriteKeyFile(keyFilePath(fx), encrypted.NewKeyring(other)); err != nil {
			t.Fatal(err)
		}
		wrong := fx.start(t)
		b := describeSet(t, rootClients(t, wrong), inst, logical.BackupId)
		wantDownloadError(t, b.BackupDownloadURL, "InternalError.EncryptionKeyUnavailable", keyID)
		before := mariadbDatabases(t, target.DB(t, ""))
		code, stderr := runRestore(t, target.DSN(""), "--url", b.BackupDownloadURL)
		if code != exitFailed || !strings.Contains(stderr, keyID) {
			t.Errorf("restore with the wrong key: exit %d\n%s", code, stderr)
		}
		if after := mariadbDatabases(t, target.DB(t, "")); !slices.Equal(before, after) {
			t.Errorf("a refused restore changed the target: %q → %q", before, after)
		}
		wrong.Stop()
		if err := os.WriteFile(keyFilePath(fx), good, 0o600); err != nil {
			t.Fatal(err)
		}
	})

	// A fresh host with the storage and the config: without the key file,
	// rebuild-catalog stops naming the key; with it, the catalog comes back
	// with each set's encryption, and the sets restore.
	t.Run("RebuildOnFreshHost", func(t *testing.T) {
		svc.Stop()
		fresh := &backupFixture{DataDir: t.TempDir(), Env: fx.Env}
		fresh.YAML = strings.Replace(fx.YAML, keyFilePath(fx), keyFilePath(fresh), 1)
		if err := os.CopyFS(filepath.Join(fresh.DataDir, "storage"), os.DirFS(filepath.Join(fx.DataDir, "storage"))); err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(fresh.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				os.Chmod(p, map[bool]fs.FileMode{true: 0o700, false: 0o600}[d.IsDir()])
			}
			return nil
		})
		cfg := encConfigFile(t, fresh)
		code, stdout, stderr := runMain(t, fresh, nil, "rebuild-catalog", "--config", cfg)
		if code != exitFailed || !strings.Contains(stderr, keyID) || strings.Contains(stdout, "imported") {
			t.Fatalf("rebuild-catalog without the key: exit %d\n%s%s", code, stdout, stderr)
		}
		key, err := os.ReadFile(keyFilePath(fx))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFilePath(fresh), key, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr = runMain(t, fresh, nil, "rebuild-catalog", "--config", cfg)
		if code != exitOK || !strings.Contains(stdout, "imported 3 backup set(s)") {
			t.Fatalf("rebuild-catalog with the key: exit %d\n%s%s", code, stdout, stderr)
		}
		svc2 := fresh.start(t)
		if strings.Contains(svc2.Stderr.String(), "CREATED THE ENCRYPTION KEY FILE") {
			t.Error("the key file was made anew")
		}
		c2 := rootClients(t, svc2)
		b := describeSet(t, c2, inst, logical.BackupId)
		if b.Encryption != encryptionDoc(keyID) || b.Checksum != logical.Checksum || b.BackupSize != logical.BackupSize {
			t.Errorf("rebuilt set: Encryption %s Checksum %s size %d", b.Encryption, b.Checksum, b.BackupSize)
		}
		mustRestore(t, target.DSN(""), "--url", b.BackupDownloadURL, "--database", dbA, "--as", "rebuilt_copy")
		sameContents(t, "restored after the rebuild", want[dbA], enginetest.MariaDBContents(t, target.DB(t, "rebuilt_copy")))
	})
}

func TestEncryptionPostgres(t *testing.T) {
	const pw = "enc pg pw"
	const inst = "pg-enc"
	src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: pw})
	dbA := src.NewDatabase(t)
	enginetest.FillPostgres(t, src.DB(t, dbA), 1500)
	if _, err := src.DB(t, dbA).Exec("CREATE TABLE sample (v text); INSERT INTO sample VALUES ('" + sampleValue + "')"); err != nil {
		t.Fatal(err)
	}
	want := enginetest.PostgresContents(t, src.DB(t, dbA))

	fx := encryptedFixture(t, backupInstance{inst, "PostgreSQL", src.URL("postgres")})
	svc := fx.start(t)
	c := rootClients(t, svc)
	keyA := currentKeyID(t, fx)
	target := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "enc pg target"})

	var before backupOut
	t.Run("Logical", func(t *testing.T) {
		id := createBackup(t, c, inst, "Logical", nil)
		waitFinished(t, c, inst, id)
		before = describeSet(t, c, inst, id)
		if before.Encryption != encryptionDoc(keyA) {
			t.Errorf("Encryption %s", before.Encryption)
		}
		// pg_dump -Fc compresses the table data itself: the sample value
		// is not looked for in the download here.
		checkStoredEncrypted(t, fx, inst, before, false)
		whole, _ := downloadLink(t, before.BackupDownloadURL)
		checkRanges(t, before, whole)
		mustRestore(t, target.URL("postgres"), "--url", dbLink(t, before, dbA), "--engine", "PostgreSQL", "--database", dbA, "--as", "copy_a")
		sameContents(t, "restored from its link", want, enginetest.PostgresContents(t, target.DB(t, "copy_a")))
	})
	if before.BackupId == "" {
		t.FailNow()
	}

	t.Run("Physical", func(t *testing.T) {
		id := createBackup(t, c, inst, "Physical", nil)
		waitFinished(t, c, inst, id)
		b := describeSet(t, c, inst, id)
		if b.Encryption != encryptionDoc(keyA) {
			t.Errorf("Encryption %s", b.Encryption)
		}
		checkStoredEncrypted(t, fx, inst, b, false)
		dir := postgresDataDir(t)
		mustRestore(t, "", "--url", b.BackupDownloadURL, "--data-dir", dir)
		u := startPostgresOn(t, src, dir, pw)
		sameContents(t, "physically restored", want, enginetest.PostgresContents(t, openPostgres(t, u, dbA)))
	})

	// keys rotate: new sets use the new key, old ones still restore; keys
	// rewrap moves the old ones to it without changing a data byte, after
	// which the old key can go.
	t.Run("RotateAndRewrap", func(t *testing.T) {
		svc.Stop()
		cfg := encConfigFile(t, fx)
		code, stdout, stderr := runMain(t, fx, nil, "keys", "rotate", "--config", cfg)
		keyB := strings.TrimSpace(stdout)
		if code != exitOK || !strings.HasPrefix(keyB, "ek-") || keyB == keyA {
			t.Fatalf("keys rotate: %d %q %s", code, stdout, stderr)
		}
		code, stdout, _ = runMain(t, fx, nil, "keys", "list", "--config", cfg)
		if code != exitOK || stdout != keyA+"\n"+keyB+"  (current)\n" {
			t.Fatalf("keys list: %d %q", code, stdout)
		}
		svc2 := fx.start(t)
		c2 := rootClients(t, svc2)
		id := createBackup(t, c2, inst, "Logical", nil)
		waitFinished(t, c2, inst, id)
		after := describeSet(t, c2, inst, id)
		if after.Encryption != encryptionDoc(keyB) {
			t.Errorf("set after rotation: Encryption %s, want key %s", after.Encryption, keyB)
		}
		old := describeSet(t, c2, inst, before.BackupId)
		if old.Encryption != encryptionDoc(keyA) {
			t.Errorf("set before rotation: Encryption %s, want key %s", old.Encryption, keyA)
		}
		for i, b := range []backupOut{old, after} {
			as := fmt.Sprintf("rot_%d", i)
			mustRestore(t, target.URL("postgres"), "--url", dbLink(t, b, dbA), "--engine", "PostgreSQL", "--database", dbA, "--as", as)
			sameContents(t, "restored "+as, want, enginetest.PostgresContents(t, target.DB(t, as)))
		}
		svc2.Stop()

		rawBefore := rawObjects(t, fx, inst, before.BackupId)["set.zst"]
		code, stdout, stderr = runMain(t, fx, nil, "keys", "rewrap", "--config", cfg)
		if code != exitOK || !strings.Contains(stdout, "re-wrapped 4 of ") {
			t.Fatalf("keys rewrap: %d %s %s", code, stdout, stderr)
		}
		rawAfter := rawObjects(t, fx, inst, before.BackupId)["set.zst"]
		chunks := int(before.BackupSize + (before.BackupSize/encrypted.ChunkSize+1)*encrypted.Overhead)
		if before.BackupSize%encrypted.ChunkSize == 0 {
			chunks -= encrypted.Overhead
		}
		if len(rawAfter)-chunks != len(rawBefore)-chunks+len(keyB)-len(keyA) || !bytes.Equal(rawBefore[len(rawBefore)-chunks:], rawAfter[len(rawAfter)-chunks:]) {
			t.Fatal("rewrap changed data bytes")
		}

		// Only the new key is left.
		keys, err := encrypted.LoadKeyFile(keyFilePath(fx))
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := keys.Current()
		if err := encrypted.WriteKeyFile(keyFilePath(fx), encrypted.NewKeyring(cur)); err != nil {
			t.Fatal(err)
		}
		svc3 := fx.start(t)
		c3 := rootClients(t, svc3)
		old = describeSet(t, c3, inst, before.BackupId)
		if old.Encryption != encryptionDoc(keyB) || old.Checksum != before.Checksum {
			t.Errorf("re-wrapped set: Encryption %s Checksum %s", old.Encryption, old.Checksum)
		}
		checkDownloads(t, old)
		mustRestore(t, target.URL("postgres"), "--url", dbLink(t, old, dbA), "--engine", "PostgreSQL", "--database", dbA, "--as", "rewrapped")
		sameContents(t, "restored after rewrap", want, enginetest.PostgresContents(t, target.DB(t, "rewrapped")))
	})
}

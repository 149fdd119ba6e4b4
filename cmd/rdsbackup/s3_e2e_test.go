package main

// Backups on S3 storage (a real MinIO, internal/s3test) through the
// official SDK: round trips of every engine and method with the catalog
// lost and rebuilt from the bucket, DeleteBackup, presigned downloads, and
// the faults: a bucket or credentials that do not work, the S3 server
// killed mid-upload, rdsbackup killed mid-upload.

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	"github.com/minio/minio-go/v7"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
)

const envTestS3Secret = "RDSBACKUP_TEST_S3_SECRET"

// s3Target is a bucket (and prefix) of a MinIO server that a service's
// storage section points at, possibly through a gate.
type s3Target struct {
	srv      *s3test.Server
	endpoint string
	bucket   string
	prefix   string
}

func newS3Target(t *testing.T, srv *s3test.Server) *s3Target {
	return &s3Target{srv: srv, endpoint: srv.Endpoint, bucket: srv.NewBucket(t), prefix: "rdsbackup/"}
}

// use adds the storage section to the fixture; the secret reaches it
// through ${VAR}, as the README recommends.
func (s *s3Target) use(fx *backupFixture, extra string) {
	fx.YAML += s.yaml(extra)
	fx.Env[envTestS3Secret] = s.srv.SecretKey
}

// yaml is the storage section of the bucket; its secret is in
// ${envTestS3Secret}.
func (s *s3Target) yaml(extra string) string {
	return fmt.Sprintf("storage:\n  type: s3\n  endpoint: %s\n  region: %s\n  bucket: %s\n  prefix: %s\n"+
		"  accessKeyId: %s\n  secretAccessKey: \"${%s}\"\n  secure: false\n  pathStyle: path\n  partSize: 5MiB\n  requestTimeout: 10s\n%s",
		s.endpoint, s3test.Region, s.bucket, s.prefix, s.srv.AccessKey, envTestS3Secret, extra)
}

// keys lists the bucket's objects under the prefix, without it.
func (s *s3Target) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	for o := range s.srv.Client().ListObjects(t.Context(), s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, s.prefix))
	}
	return keys
}

func setKeys(inst, id string) []string {
	return []string{"backups/" + inst + "/" + id + "/manifest.json", "backups/" + inst + "/" + id + "/set.zst"}
}

func rebuildCatalog(t *testing.T, fx *backupFixture) string {
	t.Helper()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(fx.Env)}
	if code := m.Run(t.Context(), []string{"rebuild-catalog", "--config", fx.configFile(t)}); code != exitOK {
		t.Fatalf("rebuild-catalog: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// TestS3RoundTrip backs up each engine both ways to S3, loses the catalog
// (a new host: an empty data directory, the same config), rebuilds it from
// the bucket's manifests, restores every set into fresh servers and
// compares; then DeleteBackup removes the objects and the set.
func TestS3RoundTrip(t *testing.T) {
	t.Parallel()
	srv := s3test.Shared(t)

	t.Run("MariaDB", func(t *testing.T) {
		const inst, pw = "rm-s3", "s3 src:@/%#1!"
		src := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{ServerID: 21, LogBin: true, RootPassword: pw})
		dbA, dbU := src.NewDatabase(t), makeUnicodeMariaDB(t, src)
		enginetest.FillMariaDB(t, src.DB(t, dbA), 1000)
		want := map[string]map[string]string{}
		for _, d := range []string{dbA, dbU} {
			want[d] = enginetest.MariaDBContents(t, src.DB(t, d))
		}
		s3 := newS3Target(t, srv)
		fx := newBackupFixture(t, backupInstance{inst, "MariaDB", src.DSN("")})
		s3.use(fx, "")
		logical, physical := s3BackupRebuild(t, fx, s3, inst)

		svc := fx.start(t)
		c := rootClients(t, svc)
		target := enginetest.StartMariaDB(t, enginetest.MariaDBOptions{RootPassword: "s3 dst pw"})
		mustRestore(t, target.DSN(""), "--url", describeSet(t, c, inst, logical).BackupDownloadURL)
		for d, w := range want {
			sameContents(t, "restored from S3 "+d, w, enginetest.MariaDBContents(t, target.DB(t, d)))
		}
		// Straight from the bucket, found through the catalog.
		env := maps.Clone(fx.Env)
		env[envTargetDSN] = target.DSN("")
		code, stderr := runRestoreEnv(t, env, "--backup-id", logical, "--config", fx.configFile(t), "--database", dbA, "--as", "direct_"+dbA)
		if code != exitOK || !strings.Contains(stderr, "from s3 bucket "+s3.bucket) {
			t.Fatalf("restore --backup-id: exit %d\n%s", code, stderr)
		}
		sameContents(t, "restored from the bucket directly", want[dbA], enginetest.MariaDBContents(t, target.DB(t, "direct_"+dbA)))
		dir := filepath.Join(t.TempDir(), "restored")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mustRestore(t, "", "--url", describeSet(t, c, inst, physical).BackupDownloadURL, "--data-dir", dir)
		port := startMariaDBOn(t, dir, pw)
		for d, w := range want {
			sameContents(t, "physically restored from S3 "+d, w, enginetest.MariaDBContents(t, openMariaDB(t, port, pw, d)))
		}
		s3Delete(t, c, s3, inst, logical, physical)
	})

	t.Run("PostgreSQL", func(t *testing.T) {
		const inst, pw = "pg-s3", "pg s3:@/%#1!"
		src := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: pw})
		dbA, dbU := src.NewDatabase(t), makeUnicodePostgres(t, src)
		enginetest.FillPostgres(t, src.DB(t, dbA), 1000)
		want := map[string]map[string]string{}
		for _, d := range []string{dbA, dbU} {
			want[d] = enginetest.PostgresContents(t, src.DB(t, d))
		}
		s3 := newS3Target(t, srv)
		fx := newBackupFixture(t, backupInstance{inst, "PostgreSQL", src.URL("postgres")})
		s3.use(fx, "")
		logical, physical := s3BackupRebuild(t, fx, s3, inst)

		svc := fx.start(t)
		c := rootClients(t, svc)
		target := enginetest.StartPostgres(t, enginetest.PostgresOptions{Password: "pg s3 dst"})
		mustRestore(t, target.URL("postgres"), "--url", describeSet(t, c, inst, logical).BackupDownloadURL)
		for d, w := range want {
			sameContents(t, "restored from S3 "+d, w, enginetest.PostgresContents(t, target.DB(t, d)))
		}
		dir := postgresDataDir(t)
		mustRestore(t, "", "--url", describeSet(t, c, inst, physical).BackupDownloadURL, "--data-dir", dir)
		u := startPostgresOn(t, src, dir, pw)
		for d, w := range want {
			sameContents(t, "physically restored from S3 "+d, w, enginetest.PostgresContents(t, openPostgres(t, u, d)))
		}
		s3Delete(t, c, s3, inst, logical, physical)
	})
}

// s3BackupRebuild takes a Logical and a Physical backup of inst to S3,
// checks where they went, then replaces the data directory with an empty
// one (a new host with the same config) and rebuilds the catalog from the
// bucket. It returns the two BackupIds.
func s3BackupRebuild(t *testing.T, fx *backupFixture, s3 *s3Target, inst string) (logical, physical string) {
	t.Helper()
	svc := fx.start(t)
	c := rootClients(t, svc)
	before := map[string]backupOut{}
	for _, method := range []string{"Logical", "Physical"} {
		id := createBackup(t, c, inst, method, nil)
		waitFinished(t, c, inst, id)
		b := describeSet(t, c, inst, id)
		if b.BackupStatus != "Success" || b.IsAvail != 1 {
			t.Fatalf("%s backup: %s, IsAvail %d, %q", method, b.BackupStatus, b.IsAvail, b.FailureReason)
		}
		// Proxied: the links point at rdsbackup, ranges pass through.
		if !strings.HasPrefix(b.BackupDownloadURL, "http://"+svc.Addr+"/download/") {
			t.Errorf("proxied link %s", b.BackupDownloadURL)
		}
		checkDownloads(t, b)
		before[id] = b
		if method == "Logical" {
			logical = id
		} else {
			physical = id
		}
	}
	if files := storageFiles(t, fx.DataDir); len(files) != 0 {
		t.Errorf("local storage holds %v; everything belongs in the bucket", files)
	}
	wantKeys := append(setKeys(inst, logical), setKeys(inst, physical)...)
	slices.Sort(wantKeys)
	if got := s3.keys(t); !slices.Equal(got, wantKeys) {
		t.Errorf("bucket holds %v, want %v", got, wantKeys)
	}
	if ups := s3.srv.Uploads(t, s3.bucket, ""); len(ups) != 0 {
		t.Errorf("incomplete uploads after the backups: %v", ups)
	}
	svc.Stop()

	// A new host: the data directory is new and empty (the catalog is
	// gone); the config is the same.
	if err := os.RemoveAll(fx.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(fx.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out := rebuildCatalog(t, fx); !strings.Contains(out, "imported 2 backup set(s)") {
		t.Fatalf("rebuild-catalog says: %s", out)
	}
	svc = fx.start(t)
	defer svc.Stop()
	c = rootClients(t, svc)
	for id, b := range before {
		after := describeSet(t, c, inst, id)
		if after.Checksum != b.Checksum || after.BackupSize != b.BackupSize || after.BackupMethod != b.BackupMethod {
			t.Errorf("set %s rebuilt as %s %d %s, was %s %d %s", id, after.Checksum, after.BackupSize, after.BackupMethod, b.Checksum, b.BackupSize, b.BackupMethod)
		}
	}
	return logical, physical
}

// s3Delete deletes the sets with DeleteBackup: their objects leave the
// bucket, then their rows the catalog.
func s3Delete(t *testing.T, c *clients, s3 *s3Target, inst string, ids ...string) {
	t.Helper()
	if err := deleteBackup(c, inst, strings.Join(ids, ",")); err != nil {
		t.Fatalf("DeleteBackup: %v", err)
	}
	if keys := s3.keys(t); len(keys) != 0 {
		t.Errorf("bucket after DeleteBackup: %v", keys)
	}
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = inst })
	if err != nil || len(resp.Items.Backup) != 0 {
		t.Errorf("sets after DeleteBackup: %v %v", resp, err)
	}
}

// TestS3Presigned: in downloads.mode presigned the set links are presigned
// GETs of the bucket that work without rdsbackup and expire with the link
// TTL; per-database links stay proxied.
func TestS3Presigned(t *testing.T) {
	t.Parallel()
	const inst = "rm-presign"
	src := enginetest.SharedMariaDB(t)
	dsn, db, _ := polDatabase(t, src, 200)
	s3 := newS3Target(t, s3test.Shared(t))
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", dsn})
	s3.use(fx, "")
	fx.YAML += "downloads:\n  mode: presigned\n  linkTTL: 1m\n"
	svc := fx.start(t)
	c := rootClients(t, svc)
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	waitFinished(t, c, inst, id)
	b := describeSet(t, c, inst, id)
	if !strings.HasPrefix(b.BackupDownloadURL, "http://"+s3.srv.Endpoint+"/"+s3.bucket+"/"+s3.prefix+"backups/") ||
		!strings.Contains(b.BackupDownloadURL, "X-Amz-Expires=") || b.BackupIntranetDownloadURL != b.BackupDownloadURL {
		t.Fatalf("presigned links %s / %s", b.BackupDownloadURL, b.BackupIntranetDownloadURL)
	}
	for _, l := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
		if !strings.HasPrefix(l.DownloadLink, "http://"+svc.Addr+"/download/") {
			t.Errorf("per-database link %s is not proxied", l.DownloadLink)
		}
	}
	// The whole set straight from the bucket, with the CRC64 DescribeBackups says.
	checkDownloadsPresigned(t, b)
	// The expiry is the link TTL's.
	if !regexp.MustCompile(`X-Amz-Expires=(59|60)(&|$)`).MatchString(b.BackupDownloadURL) {
		t.Errorf("presigned URL does not expire with the 1m link TTL: %s", b.BackupDownloadURL)
	}
	// restore takes the presigned URL like any link.
	target := enginetest.SharedMariaDB(t)
	as := "presigned_" + db
	mustRestore(t, target.DSN(""), "--url", b.BackupDownloadURL, "--database", db, "--as", as)
	sameContents(t, "restored from a presigned URL", enginetest.MariaDBContents(t, src.DB(t, db)), enginetest.MariaDBContents(t, target.DB(t, as)))
}

// TestS3PresignedEncrypted: with encryption at rest on, the bucket holds a
// set's ciphertext, so even in downloads.mode presigned its links stay
// proxied and serve the bytes its Checksum describes.
func TestS3PresignedEncrypted(t *testing.T) {
	t.Parallel()
	const inst = "rm-presign-enc"
	src := enginetest.SharedMariaDB(t)
	dsn, db, _ := polDatabase(t, src, 50)
	s3 := newS3Target(t, s3test.Shared(t))
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", dsn})
	s3.use(fx, "")
	fx.YAML += "downloads:\n  mode: presigned\n  linkTTL: 1m\nencryption:\n  enabled: true\n"
	svc := fx.start(t)
	c := rootClients(t, svc)
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	waitFinished(t, c, inst, id)
	b := describeSet(t, c, inst, id)
	if !strings.Contains(b.Encryption, "AES-256-GCM") {
		t.Fatalf("set not encrypted: Encryption %s", b.Encryption)
	}
	if !strings.HasPrefix(b.BackupDownloadURL, "http://"+svc.Addr+"/download/") || !strings.HasPrefix(b.BackupIntranetDownloadURL, "http://"+svc.Addr+"/download/") {
		t.Fatalf("an encrypted set got links into the bucket: %s / %s", b.BackupDownloadURL, b.BackupIntranetDownloadURL)
	}
	checkDownloads(t, b)
}

func checkDownloadsPresigned(t *testing.T, b backupOut) {
	t.Helper()
	resp, err := http.Get(b.BackupDownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || crcOf(body) != b.Checksum || int64(len(body)) != b.BackupSize {
		t.Fatalf("presigned download: %s, %d bytes, CRC64 %s; want %d bytes, %s", resp.Status, len(body), crcOf(body), b.BackupSize, b.Checksum)
	}
	if !strings.Contains(resp.Header.Get("Content-Disposition"), b.DBInstanceId+"_"+b.BackupId+".zst") {
		t.Errorf("presigned download names the file %q", resp.Header.Get("Content-Disposition"))
	}
}

// runRestoreEnv runs `rdsbackup restore args...` in-process with env.
func runRestoreEnv(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(env)}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	code := m.Run(ctx, append([]string{"restore", "--work-dir", t.TempDir()}, args...))
	return code, stderr.String()
}

// serveOnce runs serve with a config and returns its exit code and stderr
// (for starts that must fail).
func serveOnce(t *testing.T, fx *backupFixture) (int, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(fx.Env)}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	code := m.Run(ctx, []string{"serve", "--config", fx.configFile(t)})
	return code, stderr.String()
}

// TestS3StartChecks: a bucket that does not exist, refused credentials and
// a bad storage section stop the start with a message naming the problem
// (and never the secret).
func TestS3StartChecks(t *testing.T) {
	t.Parallel()
	srv := s3test.Shared(t)
	for _, tc := range []struct {
		name  string
		edit  func(*s3Target, *backupFixture)
		extra string
		want  string
	}{
		{"MissingBucket", func(s *s3Target, _ *backupFixture) { s.bucket = "no-such-bucket" }, "", `bucket "no-such-bucket" does not exist`},
		{"WrongSecret", func(s *s3Target, fx *backupFixture) {}, "", "credentials are refused"},
		{"Unreachable", func(s *s3Target, _ *backupFixture) { s.endpoint = fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)) }, "", "connection refused"},
		{"BadPartSize", func(s *s3Target, _ *backupFixture) {}, "  partSize: 1MiB\n", "storage.partSize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s3 := newS3Target(t, srv)
			fx := newBackupFixture(t)
			tc.edit(s3, fx)
			s3.use(fx, "")
			if tc.extra != "" {
				fx.YAML = strings.Replace(fx.YAML, "  partSize: 5MiB\n", tc.extra, 1)
			}
			if tc.name == "WrongSecret" {
				fx.Env[envTestS3Secret] = "wrong-secret-value"
			}
			code, stderr := serveOnce(t, fx)
			if code == exitOK || !strings.Contains(stderr, tc.want) {
				t.Fatalf("serve: exit %d, want a failure saying %q:\n%s", code, tc.want, stderr)
			}
			if strings.Contains(stderr, srv.SecretKey) || strings.Contains(stderr, "wrong-secret-value") {
				t.Errorf("the error shows the secret:\n%s", stderr)
			}
		})
	}
}

// TestS3BucketGoneAfterStart: a bucket that disappears under a running
// service fails the backup with a reason naming it, and /healthz says the
// storage does not answer.
func TestS3BucketGoneAfterStart(t *testing.T) {
	t.Parallel()
	const inst = "rm-gone"
	src := enginetest.SharedMariaDB(t)
	dsn, db, _ := polDatabase(t, src, 50)
	s3 := newS3Target(t, s3test.Shared(t))
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", dsn})
	s3.use(fx, "")
	svc := fx.start(t)
	c := rootClients(t, svc)
	if err := s3.srv.Client().RemoveBucket(t.Context(), s3.bucket); err != nil {
		t.Fatal(err)
	}
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	tr := waitJob(t, c, inst, id, time.Minute)
	if tr.Final.BackupStatus != "Failed" || !strings.Contains(tr.Final.FailureReason, "does not exist") {
		t.Fatalf("job with the bucket gone: %+v", tr.Final)
	}
	b := describeSet(t, c, inst, id)
	if b.BackupStatus != "Failed" || b.IsAvail != 0 {
		t.Errorf("set with the bucket gone: %s, IsAvail %d", b.BackupStatus, b.IsAvail)
	}
	resp, err := http.Get("http://" + svc.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "backup storage does not answer") {
		t.Errorf("/healthz with the bucket gone: %s %s", resp.Status, body)
	}
}

// incompressibleSource is a database of about 12 MB that zstd cannot
// shrink (more than two 5 MiB parts) on the shared MariaDB, and a DSN of a
// user of it.
func incompressibleSource(t *testing.T) (dsn, db string) {
	t.Helper()
	src := enginetest.SharedMariaDB(t)
	dsn, db, _ = polDatabase(t, src, 0)
	q := "CREATE TABLE noise (id INT PRIMARY KEY, b BLOB NOT NULL) ENGINE=InnoDB"
	if _, err := src.DB(t, db).Exec(q); err != nil {
		t.Fatal(err)
	}
	if _, err := src.DB(t, db).Exec("INSERT INTO noise SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_12288"); err != nil {
		t.Fatal(err)
	}
	return dsn, db
}

// TestS3ServerKilledMidUpload kills MinIO while a set is being uploaded
// (held by a gate after the first part started): the job fails with a
// reason, the set is Failed and unavailable, no Success row appears, and
// once the server is back the upload is aborted (nothing of it stays on
// its disk).
func TestS3ServerKilledMidUpload(t *testing.T) {
	t.Parallel()
	const inst = "rm-s3kill"
	dsn, db := incompressibleSource(t)
	srv := s3test.StartOwn(t)
	gate := s3test.NewGate(t, srv.Endpoint)
	s3 := newS3Target(t, srv)
	s3.endpoint = gate.Addr()
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", dsn})
	s3.use(fx, "")
	svc := fx.start(t)
	c := rootClients(t, svc)

	held := gate.HoldAfter(6 << 20)
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	select {
	case <-held:
	case <-time.After(time.Minute):
		t.Fatal("the upload did not reach 6 MiB")
	}
	if ups := srv.UploadsOnDisk(t); len(ups) != 1 {
		t.Fatalf("uploads on disk mid-upload: %v", ups)
	}
	srv.Kill()
	gate.Release()
	tr := waitJob(t, c, inst, id, 2*time.Minute)
	t.Logf("job %s: %v, reason %q", id, tr.Statuses, tr.Final.FailureReason)
	if tr.Final.BackupStatus != "Failed" || !strings.Contains(tr.Final.FailureReason, "s3") {
		t.Fatalf("job with the S3 server killed: %+v", tr.Final)
	}
	b := describeSet(t, c, inst, id)
	if b.BackupStatus != "Failed" || b.IsAvail != 0 || b.FailureReason == "" {
		t.Errorf("set: %s, IsAvail %d, %q", b.BackupStatus, b.IsAvail, b.FailureReason)
	}
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId, r.BackupStatus = inst, "Success" })
	if err != nil || len(resp.Items.Backup) != 0 {
		t.Errorf("Success sets: %v %v", resp, err)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The abort that failed with the server down is retried once it
	// answers: at the next health check.
	hr, err := http.Get("http://" + svc.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 {
		t.Errorf("/healthz with the server back: %s", hr.Status)
	}
	if ups := srv.UploadsOnDisk(t); len(ups) != 0 {
		t.Errorf("incomplete uploads on the server's disk after it came back: %v", ups)
	}
	if keys := s3.keys(t); len(keys) != 0 {
		t.Errorf("bucket after the failed backup: %v", keys)
	}
}

// TestS3ServiceKilledMidUpload SIGKILLs rdsbackup while it uploads a set,
// then starts it again: the job is Failed and its upload aborted by the
// start-up cleanup.
func TestS3ServiceKilledMidUpload(t *testing.T) {
	t.Parallel()
	const inst = "rm-s3crash"
	dsn, db := incompressibleSource(t)
	srv := s3test.Shared(t)
	gate := s3test.NewGate(t, srv.Endpoint)
	s3 := newS3Target(t, srv)
	s3.endpoint = gate.Addr()
	bin := buildRdsbackup(t)
	fx := newBackupFixture(t, backupInstance{inst, "MariaDB", dsn})
	s3.use(fx, "")
	config := fx.configFile(t)
	proc := startServeProcess(t, bin, config, fx.Env)
	c := proc.clients(t)

	held := gate.HoldAfter(6 << 20)
	id := createBackup(t, c, inst, "Logical", func(r *rds.CreateBackupRequest) { r.BackupStrategy, r.DBName = "db", db })
	select {
	case <-held:
	case <-time.After(time.Minute):
		t.Fatal("the upload did not reach 6 MiB")
	}
	if ups := srv.Uploads(t, s3.bucket, s3.prefix); len(ups) != 1 {
		t.Fatalf("uploads mid-upload: %v", ups)
	}
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-proc.done
	gate.Release()

	proc = startServeProcess(t, bin, config, fx.Env)
	c = proc.clients(t)
	j := describeJob(t, c, inst, id)
	if j.BackupStatus != "Failed" || !strings.Contains(j.FailureReason, "interrupted") {
		t.Errorf("interrupted job after the restart: %+v", j)
	}
	checkFailedSet(t, describeSet(t, c, inst, id), `interrupted`)
	if ups := srv.Uploads(t, s3.bucket, ""); len(ups) != 0 {
		t.Errorf("incomplete uploads after the restart: %v", ups)
	}
	if keys := s3.keys(t); len(keys) != 0 {
		t.Errorf("bucket after the interrupted backup: %v", keys)
	}
	if !strings.Contains(proc.stderr.String(), "aborted incomplete uploads") {
		t.Errorf("the start does not say it aborted the upload:\n%s", proc.stderr.String())
	}
}

// Package s3test starts throwaway MinIO servers for tests: a real S3
// server, because signatures, presigned expiry, multipart uploads and
// ranges are what the S3 store must get right.
//
// The minio binary is the one scripts/test.sh builds from the Go module
// proxy into $HOME/.cache/rdsbackup/minio (or $RDSBACKUP_MINIO, or minio
// in PATH). Without it tests skip with a message saying how to get it,
// except under CI=true, where they fail: nothing skips in CI.
//
// A server listens on a free 127.0.0.1 port with a data directory of its
// own, in its own process group, and is killed if the test binary dies.
// Shared returns one server per test binary; call Main from TestMain so
// that it is stopped.
package s3test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Region is the region the servers use.
const Region = "us-east-1"

// Binary returns the minio binary's path.
func Binary() (string, error) {
	if p := os.Getenv("RDSBACKUP_MINIO"); p != "" {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "rdsbackup", "minio", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", errors.New("s3test: no minio binary: run scripts/test.sh, which builds it into $HOME/.cache/rdsbackup/minio, or set RDSBACKUP_MINIO")
}

// Require skips t when MinIO cannot be started here, or fails it under
// CI=true.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if testing.Short() {
		t.Skip("s3test: -short: not starting MinIO")
	}
	return bin
}

// Server is a running MinIO.
type Server struct {
	Endpoint  string // 127.0.0.1:port
	AccessKey string
	SecretKey string
	Dir       string

	bin    string
	ownDir bool
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File
}

// Start starts a server with a new data directory under dir ("" for the
// system temp directory).
func Start(bin, dir string) (*Server, error) {
	d, err := os.MkdirTemp(dir, "minio-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "rdsbackup-test",
		SecretKey: "secret-" + rand.Text(),
		Dir:       d,
		bin:       bin,
		ownDir:    true,
	}
	if err := s.Restart(); err != nil {
		os.RemoveAll(d)
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts a stopped or killed server again, on the same port and
// data, and waits until it answers.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("s3test: server already running")
	}
	log, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	console, err := freePort()
	if err != nil {
		log.Close()
		return err
	}
	cmd := exec.Command(s.bin, "server", filepath.Join(s.Dir, "data"), "--quiet",
		"--address", s.Endpoint, "--console-address", "127.0.0.1:"+strconv.Itoa(console))
	// Only what MinIO needs; the credentials are the root user's.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + s.Dir,
		"MINIO_ROOT_USER=" + s.AccessKey, "MINIO_ROOT_PASSWORD=" + s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_REGION=" + Region}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("s3test: start minio: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.log = cmd, exited, log

	deadline := time.Now().Add(30 * time.Second)
	for {
		// Ready means the health check passes and a signed request is
		// served: MinIO answers the first before it takes the second.
		resp, err := http.Get("http://" + s.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := s.Client().ListBuckets(ctx)
				cancel()
				if err == nil {
					return nil
				}
			}
		}
		select {
		case <-exited:
			s.cmd = nil
			log.Close()
			out, _ := os.ReadFile(log.Name())
			return fmt.Errorf("s3test: minio exited at start: %s", tail(out))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop(true)
			return errors.New("s3test: minio did not become ready in 30s")
		}
	}
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Kill kills the server as a crash would (SIGKILL) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop(true)
}

// Stop stops the server (SIGTERM) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop(false)
}

func (s *Server) stop(kill bool) {
	if s.cmd == nil {
		return
	}
	sig := os.Signal(os.Interrupt)
	if kill {
		sig = os.Kill
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	s.log.Close()
}

// Remove stops the server and deletes its directory.
func (s *Server) Remove() {
	s.Kill()
	if s.ownDir {
		os.RemoveAll(s.Dir)
	}
}

// Client returns a client with the root credentials.
func (s *Server) Client() *minio.Client {
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: Region, MaxRetries: 1})
	if err != nil {
		panic(err) // only a malformed endpoint fails, and ours is not
	}
	return c
}

var bucketSeq atomic.Int64

// NewBucket makes a bucket for t, with a name of its own.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", bucketSeq.Add(1), strings.ToLower(rand.Text()[:8]))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client().MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("s3test: make bucket: %v", err)
	}
	return name
}

// Uploads lists the incomplete multipart uploads in a bucket under prefix,
// as "key uploadID" strings. It lists the bucket's and filters, because
// MinIO takes a prefix only when it is a whole key.
func (s *Server) Uploads(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	core := minio.Core{Client: s.Client()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	keyMarker, idMarker := "", ""
	for {
		res, err := core.ListMultipartUploads(ctx, bucket, "", keyMarker, idMarker, "", 1000)
		if err != nil {
			t.Fatalf("s3test: list multipart uploads: %v", err)
		}
		for _, u := range res.Uploads {
			if strings.HasPrefix(u.Key, prefix) {
				out = append(out, u.Key+" "+u.UploadID)
			}
		}
		if !res.IsTruncated {
			return out
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// UploadsOnDisk lists the incomplete multipart uploads in the server's
// data directory, by MinIO's own layout (.minio.sys/multipart/<object
// hash>/<upload>). The S3 list is not enough after a restart: MinIO lists
// only the uploads started since it started, while the older ones keep
// their parts on disk until aborted (or until its stale-upload expiry).
func (s *Server) UploadsOnDisk(t testing.TB) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(s.Dir, "data", ".minio.sys", "multipart", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

var shared struct {
	main atomic.Bool
	once sync.Once
	srv  *Server
	err  error
}

// Main runs the tests, then removes the shared server:
//
//	func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }
func Main(m *testing.M) int { return Around(m.Run) }

// Around is Main for a TestMain that already wraps m.Run in another
// helper's Main:
//
//	os.Exit(s3test.Around(func() int { return enginetest.Main(m) }))
func Around(run func() int) int {
	shared.main.Store(true)
	defer func() {
		if shared.srv != nil {
			shared.srv.Remove()
		}
	}()
	return run()
}

// Shared returns the test binary's server, starting it on first use.
// Tests use buckets of their own (NewBucket) and must not stop it.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	if !shared.main.Load() {
		t.Fatal("s3test: Shared needs func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }")
	}
	shared.once.Do(func() { shared.srv, shared.err = Start(bin, "") })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// StartOwn starts a server that t alone uses (to kill or stop it),
// removed at the end of t.
func StartOwn(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	s, err := Start(bin, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Remove)
	return s
}

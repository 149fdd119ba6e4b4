package s3_test

import (
	"bytes"
	"crypto/rand"
	"hash/crc64"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
	"github.com/rdsbackup/rdsbackup/storage/s3"
	"github.com/rdsbackup/rdsbackup/storage/storagetest"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(m)) }

func config(srv *s3test.Server, bucket, prefix string) s3.Config {
	return s3.Config{
		Endpoint: srv.Endpoint, Region: s3test.Region, Bucket: bucket, Prefix: prefix,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PathStyle: s3.PathStylePath,
		PartSize: s3.MinPartSize, UploadConcurrency: 2, RequestTimeout: 30 * time.Second,
	}
}

func newStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// leftovers lists what uncommitted writes left in the store's bucket.
func leftovers(srv *s3test.Server) func(t *testing.T, s rdsbackup.ObjectStore) []string {
	return func(t *testing.T, s rdsbackup.ObjectStore) []string {
		st := s.(*s3.Store)
		return srv.Uploads(t, st.Bucket(), st.Prefix())
	}
}

func TestConformance(t *testing.T) {
	srv := s3test.Shared(t)
	storagetest.RunWith(t, func(t *testing.T) rdsbackup.ObjectStore {
		return newStore(t, config(srv, srv.NewBucket(t), ""))
	}, storagetest.Options{Leftovers: leftovers(srv)})
}

// TestConformancePrefix runs the suite under a key prefix, in a bucket that
// also holds another service's objects, which no operation may see.
func TestConformancePrefix(t *testing.T) {
	srv := s3test.Shared(t)
	storagetest.RunWith(t, func(t *testing.T) rdsbackup.ObjectStore {
		bucket := srv.NewBucket(t)
		other := newStore(t, config(srv, bucket, "other/"))
		w, err := other.Create(t.Context(), "backups/x")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("another service's"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		return newStore(t, config(srv, bucket, "svc/a/"))
	}, storagetest.Options{Leftovers: leftovers(srv)})
}

func put(t *testing.T, s rdsbackup.ObjectStore, key string, data []byte) {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s rdsbackup.ObjectStore, key string, off, n int64) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), key, off, n)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestMultipart writes an object of several parts in odd-sized writes,
// with each part count of concurrency, and reads it back across part
// boundaries; while it is being written it is not visible, and its upload
// is.
func TestMultipart(t *testing.T) {
	srv := s3test.Shared(t)
	for _, conc := range []int{1, 3} {
		cfg := config(srv, srv.NewBucket(t), "p/")
		cfg.UploadConcurrency = conc
		s := newStore(t, cfg)
		data := random(3*s3.MinPartSize + 12345)
		w, err := s.Create(t.Context(), "big")
		if err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 777_777)
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if ups := srv.Uploads(t, cfg.Bucket, "p/"); len(ups) != 1 || !strings.HasPrefix(ups[0], "p/big ") {
			t.Fatalf("uploads while writing: %v", ups)
		}
		if _, err := s.Stat(t.Context(), "big"); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			t.Fatalf("stat while writing: %v", err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if got := get(t, s, "big", 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("concurrency %d: read back %d bytes, not what was written", conc, len(got))
		}
		off := int64(s3.MinPartSize - 10)
		if got := get(t, s, "big", off, 20); !bytes.Equal(got, data[off:off+20]) {
			t.Fatal("range across a part boundary")
		}
		if ups := srv.Uploads(t, cfg.Bucket, ""); len(ups) != 0 {
			t.Fatalf("uploads after commit: %v", ups)
		}
	}
}

// TestPartSizeFromHint: an object whose hint is larger than 10,000 parts
// of the configured size is uploaded in larger parts, and one that
// outgrows 10,000 parts fails saying so.
func TestPartSizeFromHint(t *testing.T) {
	cfg := s3.Config{Endpoint: "127.0.0.1:1", Bucket: "b", PartSize: s3.MinPartSize}
	s := newStore(t, cfg)
	for _, tc := range []struct{ hint, want int64 }{
		{0, s3.MinPartSize},
		{1 << 30, s3.MinPartSize},
		{100 << 30, 13 << 20},       // 100 GiB and a quarter in 10,000 parts: 13.4 MB, rounded up to a MiB
		{100 << 40, s3.MaxPartSize}, // capped
	} {
		if got := s3.PartSizeFor(s, tc.hint); got != tc.want {
			t.Errorf("hint %d: part size %d, want %d", tc.hint, got, tc.want)
		}
	}
}

// TestTooManyParts fails an object that passes 10,000 parts, with a
// message that says what to change. The part limit is lowered for the
// test, which would otherwise need 50 GB.
func TestTooManyParts(t *testing.T) {
	srv := s3test.Shared(t)
	defer s3.SetMaxParts(2)()
	cfg := config(srv, srv.NewBucket(t), "")
	s := newStore(t, cfg)
	w, err := s.Create(rdsbackup.WithSizeHint(t.Context(), 1000), "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(random(2*s3.MinPartSize + 1))
	if err == nil {
		err = w.Commit()
	} else {
		w.Abort()
	}
	if err == nil || !strings.Contains(err.Error(), "larger than 2 parts") || !strings.Contains(err.Error(), "partSize") ||
		!strings.Contains(err.Error(), "estimate was 1000 bytes") {
		t.Fatalf("error %v, want one about the part count", err)
	}
	if ups := srv.Uploads(t, cfg.Bucket, ""); len(ups) != 0 {
		t.Fatalf("uploads left: %v", ups)
	}
}

// TestCleanUploads removes what a killed writer left, under its own prefix
// only.
func TestCleanUploads(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.NewBucket(t)
	mine, other := newStore(t, config(srv, bucket, "mine/")), newStore(t, config(srv, bucket, "other/"))
	for _, s := range []*s3.Store{mine, other} {
		w, err := s.Create(t.Context(), "backups/a/1/set.zst")
		if err != nil {
			t.Fatal(err)
		}
		// A part is uploaded once the next byte arrives; then the writer
		// is forgotten, as a killed process forgets it.
		if _, err := w.Write(random(s3.MinPartSize + 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(srv.Uploads(t, bucket, "")) == 2 })
	n, err := mine.CleanUploads(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("clean: %d, %v; want 1", n, err)
	}
	if ups := srv.Uploads(t, bucket, ""); len(ups) != 1 || !strings.HasPrefix(ups[0], "other/") {
		t.Fatalf("uploads after cleaning mine/: %v", ups)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCheck reports a missing bucket and refused credentials clearly.
func TestCheck(t *testing.T) {
	srv := s3test.Shared(t)
	good := config(srv, srv.NewBucket(t), "")
	if err := newStore(t, good).Check(t.Context()); err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := newStore(t, good).Healthy(t.Context()); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	missing := good
	missing.Bucket = "no-such-bucket"
	if err := newStore(t, missing).Check(t.Context()); err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	if err := newStore(t, missing).Healthy(t.Context()); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("healthy, missing bucket: %v", err)
	}
	wrong := good
	wrong.SecretAccessKey = "wrong-secret"
	err := newStore(t, wrong).Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "credentials are refused") || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("wrong secret: %v", err)
	}
	w, err := newStore(t, wrong).Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "credentials are refused") {
		t.Fatalf("commit with a wrong secret: %v", err)
	}
}

// TestPresign: a presigned URL reads the object without credentials, with
// the file name asked for, and stops working when it expires.
func TestPresign(t *testing.T) {
	srv := s3test.Shared(t)
	s := newStore(t, config(srv, srv.NewBucket(t), "pre/"))
	data := random(1000)
	put(t, s, "backups/a/1/set.zst", data)
	u, err := s.PresignGet(t.Context(), "backups/a/1/set.zst", 2*time.Second, "a_1.zst")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) || !strings.Contains(resp.Header.Get("Content-Disposition"), "a_1.zst") {
		t.Fatalf("presigned GET: %s, %d bytes, %q", resp.Status, len(got), resp.Header.Get("Content-Disposition"))
	}
	time.Sleep(3 * time.Second)
	resp, err = http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("expired presigned GET: %s", resp.Status)
	}
}

// stallingProxy forwards to target until stall is called; from then on it
// accepts bytes and never answers, like a hung server.
type stallingProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	stalled bool
}

func newStallingProxy(t *testing.T, target string) *stallingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go p.serve()
	return p
}

func (p *stallingProxy) stall() { p.mu.Lock(); p.stalled = true; p.mu.Unlock() }

func (p *stallingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer up.Close()
			go io.Copy(c, up)
			buf := make([]byte, 32<<10)
			for {
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				p.mu.Lock()
				stalled := p.stalled
				p.mu.Unlock()
				if !stalled {
					if _, err := up.Write(buf[:n]); err != nil {
						return
					}
				}
			}
		}()
	}
}

// TestStalledServer: a server that stops answering fails the write within
// the request timeout instead of hanging it.
func TestStalledServer(t *testing.T) {
	srv := s3test.Shared(t)
	cfg := config(srv, srv.NewBucket(t), "")
	proxy := newStallingProxy(t, srv.Endpoint)
	cfg.Endpoint = proxy.ln.Addr().String()
	cfg.RequestTimeout = 2 * time.Second
	s := newStore(t, cfg)
	w, err := s.Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(random(s3.MinPartSize + 1)); err != nil {
		t.Fatal(err)
	}
	proxy.stall()
	start := time.Now()
	_, err = w.Write(random(s3.MinPartSize))
	if err == nil {
		err = w.Commit()
	} else {
		w.Abort()
	}
	if err == nil || !strings.Contains(err.Error(), "no answer within 2s") {
		t.Fatalf("write to a stalled server: %v", err)
	}
	// Retries (3) of a 2s request, and the abort's own timeout.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v", d)
	}
}

// TestServerKilledMidUpload: writes fail when the server dies; the upload
// the writer could not abort then is aborted once the server is back.
func TestServerKilledMidUpload(t *testing.T) {
	srv := s3test.StartOwn(t)
	cfg := config(srv, srv.NewBucket(t), "")
	cfg.RequestTimeout = 5 * time.Second
	s := newStore(t, cfg)
	w, err := s.Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(random(s3.MinPartSize + 1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(srv.Uploads(t, cfg.Bucket, "")) == 1 })
	srv.Kill()
	var werr error
	for range 10 {
		if _, werr = w.Write(random(s3.MinPartSize)); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = w.Commit()
	} else if err := w.Abort(); err == nil {
		t.Fatal("abort with the server down succeeded")
	}
	if werr == nil {
		t.Fatal("writing to a killed server succeeded")
	}
	if err := s.Healthy(t.Context()); err == nil {
		t.Fatal("healthy with the server down")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if ups := srv.UploadsOnDisk(t); len(ups) != 1 {
		t.Fatalf("uploads after restart: %v", ups)
	}
	if err := s.Healthy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ups := srv.UploadsOnDisk(t); len(ups) != 0 {
		t.Fatalf("uploads after the health check: %v", ups)
	}
	if _, err := s.Stat(t.Context(), "k"); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Fatalf("stat: %v", err)
	}
}

// TestConfigValidate names the key at fault.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  s3.Config
		want string
	}{
		{s3.Config{Bucket: "b"}, "endpoint: missing"},
		{s3.Config{Endpoint: "https://s3.example.com", Bucket: "b"}, "endpoint"},
		{s3.Config{Endpoint: "s3.example.com"}, "bucket: missing"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", Prefix: "x"}, "prefix"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", Prefix: "a//"}, "prefix"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", AccessKeyID: "k"}, "accessKeyId and secretAccessKey"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", PathStyle: "dns"}, "pathStyle"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", PartSize: 1 << 20}, "partSize"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", UploadConcurrency: -1}, "uploadConcurrency"},
		{s3.Config{Endpoint: "s3.example.com", Bucket: "b", RequestTimeout: time.Millisecond}, "requestTimeout"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := s3.Config{Endpoint: "s3.example.com:9000", Bucket: "b"}
	if err := c.Validate(); err != nil || c.PartSize != s3.DefaultPartSize || c.UploadConcurrency != 2 || c.PathStyle != "auto" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
}

// TestMemoryBound: a write holds at most uploadConcurrency parts, however
// long the object. The heap is sampled while a 40 MiB object is written in
// 5 MiB parts, two at a time, with the collector made eager so that the
// heap shows what is live: its peak must stay within the two parts and a
// few MiB for the client, not the object's size.
func TestMemoryBound(t *testing.T) {
	srv := s3test.Shared(t)
	cfg := config(srv, srv.NewBucket(t), "")
	s := newStore(t, cfg)
	chunk := random(256 << 10)
	const total = 40 << 20
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	w, err := s.Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < total; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	close(done)
	<-sampled
	used := peak.Load() - min(base, peak.Load())
	t.Logf("a %d MiB object in %d MiB parts, %d at a time: heap peak %.1f MiB above the start", total>>20, cfg.PartSize>>20, cfg.UploadConcurrency, float64(used)/(1<<20))
	if limit := uint64(cfg.UploadConcurrency)*uint64(cfg.PartSize) + 8<<20; used > limit {
		t.Fatalf("heap peak %d bytes above the start for a %d-byte object; the bound is %d", used, total, limit)
	}
	if info, err := s.Stat(t.Context(), "k"); err != nil || info.Size != total {
		t.Fatalf("stat: %+v %v", info, err)
	}
}

// crcTransport adds the CRC64 header OSS sends on reads, with a value of
// the test's choosing ("" sends the right one, computed from want).
type crcTransport struct {
	value string
}

func (c *crcTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && c.value != "" {
		resp.Header.Set("X-Oss-Hash-Crc64ecma", c.value)
	}
	return resp, err
}

// TestServerCRC: when the server reports the object's CRC64-ECMA, as OSS
// does, an upload whose stored bytes do not match what was sent fails and
// leaves nothing; one that matches commits.
func TestServerCRC(t *testing.T) {
	srv := s3test.Shared(t)
	data := random(3 << 20)
	tr := &crcTransport{value: "12345"}
	cfg := config(srv, srv.NewBucket(t), "")
	cfg.Transport = tr
	s := newStore(t, cfg)
	w, err := s.Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "stored with CRC64 12345") {
		t.Fatalf("commit with a mismatching server CRC64: %v", err)
	}
	tr.value = ""
	if _, err := s.Stat(t.Context(), "k"); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Fatalf("the mismatching object is still there: %v", err)
	}
	tr.value = strconv.FormatUint(crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)), 10)
	put(t, s, "k", data)
	if got := get(t, s, "k", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("read back other bytes")
	}
}

// TestAbortUploadsUnder aborts one job's incomplete upload and leaves the
// others' (other nodes' running backups) alone.
func TestAbortUploadsUnder(t *testing.T) {
	srv := s3test.Shared(t)
	bucket := srv.NewBucket(t)
	st := newStore(t, config(srv, bucket, "p/"))
	for _, key := range []string{"backups/a/1/set.zst", "backups/a/12/set.zst"} {
		w, err := st.Create(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(random(s3.MinPartSize + 1)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(srv.Uploads(t, bucket, "")) == 2 })
	n, err := st.AbortUploadsUnder(t.Context(), "backups/a/1/")
	if err != nil || n != 1 {
		t.Fatalf("abort under backups/a/1/: %d, %v; want 1", n, err)
	}
	if ups := srv.Uploads(t, bucket, ""); len(ups) != 1 || !strings.HasPrefix(ups[0], "p/backups/a/12/set.zst ") {
		t.Fatalf("uploads left: %v", ups)
	}
}

package api_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/api"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/internal/s3test"
	"github.com/rdsbackup/rdsbackup/storage/s3"
)

// s3Download is a download handler over a set of size bytes in a MinIO
// bucket.
type s3Download struct {
	srv    *httptest.Server
	links  *api.Links
	store  *s3.Store
	set    *rdsbackup.BackupSet
	data   []byte
	server *s3test.Server
}

func newS3Download(tb testing.TB, size int) *s3Download {
	tb.Helper()
	srv := s3test.StartOwn(tb)
	store, err := s3.New(s3.Config{Endpoint: srv.Endpoint, Region: s3test.Region, Bucket: srv.NewBucket(tb), PathStyle: s3.PathStylePath,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	w, err := store.Create(tb.Context(), "backups/rm-a1/7/set.zst")
	if err != nil {
		tb.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(); err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	box, _ := aesgcm.New(bytes.Repeat([]byte{3}, aesgcm.KeySize))
	db := sqlite.NewDB(filepath.Join(dir, "catalog.db"), box)
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	set := &rdsbackup.BackupSet{ID: 7, InstanceID: "rm-a1", Status: rdsbackup.BackupSuccess, Available: true, StartTime: time.Unix(1e9, 0),
		Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser,
		StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMariaDB, ObjectKey: "backups/rm-a1/7/set.zst",
		Size: int64(size), Checksum: crcString(data),
		Artifacts: []rdsbackup.Artifact{{Database: "shop", Offset: 1000, Length: int64(size) - 2000, Checksum: crcString(data[1000 : size-1000])}}}
	if err := db.CreateBackupSet(tb.Context(), set); err != nil {
		tb.Fatal(err)
	}
	d := &s3Download{store: store, set: set, data: data, server: srv}
	d.links = &api.Links{Key: []byte("link key"), TTL: time.Hour, Now: time.Now}
	d.srv = httptest.NewServer(&api.Downloads{Links: d.links, Backups: db, Store: store})
	tb.Cleanup(d.srv.Close)
	d.links.PublicBase, d.links.IntranetBase = d.srv.URL, d.srv.URL
	return d
}

// TestDownloadFromS3: the proxied links stream from the bucket, with
// ranges of the set and of a part passed through.
func TestDownloadFromS3(t *testing.T) {
	d := newS3Download(t, 3<<20)
	whole, _ := d.links.Link(7, -1, d.links.Expiry())
	part, _ := d.links.Link(7, 0, d.links.Expiry())
	for _, tc := range []struct {
		link, rng string
		status    int
		want      []byte
	}{
		{whole, "", 200, d.data},
		{whole, "bytes=100-199", 206, d.data[100:200]},
		{whole, "bytes=-10", 206, d.data[len(d.data)-10:]},
		{part, "", 200, d.data[1000 : len(d.data)-1000]},
		{part, "bytes=5-", 206, d.data[1005 : len(d.data)-1000]},
	} {
		resp, body := get(t, tc.link, "Range", tc.rng)
		if resp.StatusCode != tc.status || !bytes.Equal(body, tc.want) {
			t.Errorf("%s %q: %d, %d bytes; want %d, %d bytes", tc.link, tc.rng, resp.StatusCode, len(body), tc.status, len(tc.want))
		}
	}
}

// BenchmarkDownloadFromS3 compares a download of a set through the proxy
// handler with a direct GET (presigned) from the S3 server, on loopback:
//
//	go test ./api -run '^$' -bench DownloadFromS3 -benchtime 5x
func BenchmarkDownloadFromS3(b *testing.B) {
	const size = 256 << 20
	d := newS3Download(b, size)
	whole, _ := d.links.Link(7, -1, d.links.Expiry())
	direct, err := d.store.PresignGet(b.Context(), d.set.ObjectKey, time.Hour, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, arm := range []struct{ name, url string }{{"proxy", whole}, {"direct", direct}, {"proxy2", whole}, {"direct2", direct}} {
		b.Run(arm.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				resp, err := http.Get(arm.url)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != size || resp.StatusCode != 200 {
					b.Fatalf("%s: %d bytes, %v", resp.Status, n, err)
				}
			}
		})
	}
}

package api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/api"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

type downloadFixture struct {
	srv   *httptest.Server
	links *api.Links
	set   *rdsbackup.BackupSet
	data  []byte
	now   time.Time
}

func crcString(b []byte) string {
	return strconv.FormatUint(crc64.Checksum(b, crc64.MakeTable(crc64.ECMA)), 10)
}

func newDownloadFixture(t *testing.T) *downloadFixture {
	t.Helper()
	dir := t.TempDir()
	box, _ := aesgcm.New(bytes.Repeat([]byte{3}, aesgcm.KeySize))
	db := sqlite.NewDB(filepath.Join(dir, "catalog.db"), box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store := localfs.New(filepath.Join(dir, "store"))
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	w, err := store.Create(t.Context(), "backups/rm-a1/7/set.zst")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	set := &rdsbackup.BackupSet{ID: 7, InstanceID: "rm-a1", Status: rdsbackup.BackupSuccess, Available: true, StartTime: time.Unix(1e9, 0),
		Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical, Initiator: rdsbackup.InitiatorUser,
		StoreStatus: rdsbackup.StoreEnabled, Engine: rdsbackup.EngineMariaDB, ObjectKey: "backups/rm-a1/7/set.zst",
		Size: int64(len(data)), Checksum: crcString(data),
		Artifacts: []rdsbackup.Artifact{
			{Database: "shop", Offset: 0, Length: 40000, Checksum: crcString(data[:40000])},
			{Database: "crm", Offset: 40000, Length: 50000, Checksum: crcString(data[40000:90000])},
		}}
	if err := db.CreateBackupSet(t.Context(), set); err != nil {
		t.Fatal(err)
	}
	f := &downloadFixture{set: set, data: data, now: time.Unix(1_800_000_000, 0)}
	f.links = &api.Links{Key: []byte("link key"), TTL: time.Hour, Now: func() time.Time { return f.now }}
	f.srv = httptest.NewServer(&api.Downloads{Links: f.links, Backups: db, Store: store})
	t.Cleanup(f.srv.Close)
	f.links.PublicBase, f.links.IntranetBase = f.srv.URL, f.srv.URL+"/"
	return f
}

func get(t *testing.T, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestDownloadWholeSetAndParts(t *testing.T) {
	f := newDownloadFixture(t)
	pub, intra := f.links.Link(f.set.ID, -1, f.links.Expiry())
	for _, u := range []string{pub, intra} {
		resp, body := get(t, u)
		if resp.StatusCode != 200 || !bytes.Equal(body, f.data) {
			t.Fatalf("%s: %d, %d bytes", u, resp.StatusCode, len(body))
		}
		if resp.Header.Get("x-oss-hash-crc64ecma") != f.set.Checksum || crcString(body) != f.set.Checksum ||
			resp.Header.Get("Content-Length") != strconv.Itoa(len(f.data)) {
			t.Fatalf("headers: %v", resp.Header)
		}
	}
	for i, a := range f.set.Artifacts {
		u, _ := f.links.Link(f.set.ID, i, f.links.Expiry())
		resp, body := get(t, u)
		want := f.data[a.Offset : a.Offset+a.Length]
		if resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.Header.Get("x-oss-hash-crc64ecma") != a.Checksum {
			t.Fatalf("part %d: %d, %d bytes, crc header %s", i, resp.StatusCode, len(body), resp.Header.Get("x-oss-hash-crc64ecma"))
		}
		if !strings.Contains(resp.Header.Get("Content-Disposition"), a.Database) {
			t.Errorf("part %d file name: %s", i, resp.Header.Get("Content-Disposition"))
		}
	}
}

func TestDownloadRange(t *testing.T) {
	f := newDownloadFixture(t)
	u, _ := f.links.Link(f.set.ID, -1, f.links.Expiry())
	cases := []struct {
		header     string
		start, end int // inclusive
	}{
		{"bytes=0-99", 0, 99},
		{"bytes=99990-", 99990, 99999},
		{"bytes=-10", 99990, 99999},
		{"bytes=50000-200000", 50000, 99999},
	}
	for _, c := range cases {
		resp, body := get(t, u, "Range", c.header)
		want := f.data[c.start : c.end+1]
		if resp.StatusCode != 206 || !bytes.Equal(body, want) ||
			resp.Header.Get("Content-Range") != "bytes "+strconv.Itoa(c.start)+"-"+strconv.Itoa(c.end)+"/100000" {
			t.Errorf("%s: %d %s, %d bytes", c.header, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
		}
	}
	// A range inside one database's part is relative to that part.
	pu, _ := f.links.Link(f.set.ID, 1, f.links.Expiry())
	resp, body := get(t, pu, "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(body, f.data[40010:40020]) {
		t.Errorf("part range: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, u, "Range", "bytes=100000-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", resp.StatusCode)
	}
}

func TestDownloadRefused(t *testing.T) {
	f := newDownloadFixture(t)
	good, _ := f.links.Link(f.set.ID, -1, f.links.Expiry())
	parsed, _ := url.Parse(good)
	q := parsed.Query()

	tamper := func(mod func(u *url.URL, q url.Values)) string {
		u := *parsed
		qq := url.Values{}
		for k, v := range q {
			qq[k] = append([]string(nil), v...)
		}
		mod(&u, qq)
		u.RawQuery = qq.Encode()
		return u.String()
	}
	cases := map[string]string{
		"unsigned":          f.srv.URL + "/download/7",
		"no expiry":         tamper(func(u *url.URL, q url.Values) { q.Del("Expires") }),
		"other set":         tamper(func(u *url.URL, q url.Values) { u.Path = "/download/8" }),
		"other part":        tamper(func(u *url.URL, q url.Values) { u.Path = "/download/7/1" }),
		"expiry extended":   tamper(func(u *url.URL, q url.Values) { q.Set("Expires", strconv.FormatInt(f.now.Unix()+86400, 10)) }),
		"signature altered": tamper(func(u *url.URL, q url.Values) { q.Set("Signature", "A"+q.Get("Signature")[1:]) }),
	}
	for name, u := range cases {
		resp, body := get(t, u)
		if resp.StatusCode != 403 || !strings.Contains(string(body), "AccessDenied") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	// The same link, once expired.
	f.now = f.now.Add(2 * time.Hour)
	resp, body := get(t, good)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "expired") {
		t.Errorf("expired: %d %s", resp.StatusCode, body)
	}
}

// The link format is a contract with every link already handed out: pin it
// against an independent computation of the MAC.
func TestLinkFormat(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := &api.Links{Key: []byte("k"), PublicBase: "https://pub.example/", IntranetBase: "http://intra.example",
		TTL: time.Hour, Now: func() time.Time { return now }}
	exp := l.Expiry()
	if exp != now.Add(time.Hour).Unix() {
		t.Fatalf("Expiry %d", exp)
	}
	for _, tc := range []struct {
		id   int64
		part int
		path string
	}{{42, -1, "/download/42"}, {7, 3, "/download/7/3"}} {
		// Twice: the second call reuses pooled buffers and MACs.
		for range 2 {
			pub, intra := l.Link(tc.id, tc.part, exp)
			m := hmac.New(sha256.New, []byte("k"))
			m.Write([]byte("GET\n" + tc.path + "\n" + strconv.FormatInt(exp, 10)))
			q := tc.path + "?Expires=" + strconv.FormatInt(exp, 10) + "&Signature=" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
			if pub != "https://pub.example"+q || intra != "http://intra.example"+q {
				t.Fatalf("Link(%d, %d):\n%s\n%s\nwant suffix %s", tc.id, tc.part, pub, intra, q)
			}
		}
	}
}

package main

import (
	"strings"
	"testing"
	"time"
)

// TestStorageConfig: the storage section's defaults, and a bad section
// refused with the key named.
func TestStorageConfig(t *testing.T) {
	env := func(k string) string {
		if k == "S3_SECRET" {
			return "very-secret-value"
		}
		return ""
	}
	c, err := ParseConfig([]byte("{}"), env)
	if err != nil || c.Storage.Type != StorageLocalFS || c.Downloads.Mode != DownloadsProxy {
		t.Fatalf("defaults: %+v %+v %v", c.Storage, c.Downloads, err)
	}
	const s3 = "storage:\n  type: s3\n  endpoint: s3.example.com\n  bucket: b\n  accessKeyId: AK\n  secretAccessKey: ${S3_SECRET}\n"
	c, err = ParseConfig([]byte(s3), env)
	if err != nil {
		t.Fatal(err)
	}
	sc := c.Storage.s3Config()
	if !sc.Secure || sc.PartSize != 16<<20 || sc.UploadConcurrency != 2 || sc.PathStyle != "auto" ||
		sc.RequestTimeout != 5*time.Minute || sc.SecretAccessKey != "very-secret-value" {
		t.Errorf("s3 defaults: %+v", sc)
	}
	c, err = ParseConfig([]byte(s3+"  partSize: 64MiB\n  secure: false\n  pathStyle: virtual-host\n  prefix: svc/a/\n  uploadConcurrency: 4\n  requestTimeout: 30s\ndownloads:\n  mode: presigned\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if sc := c.Storage.s3Config(); sc.Secure || sc.PartSize != 64<<20 || sc.PathStyle != "virtual-host" || sc.Prefix != "svc/a/" ||
		sc.UploadConcurrency != 4 || sc.RequestTimeout != 30*time.Second || c.Downloads.Mode != DownloadsPresigned {
		t.Errorf("s3 settings: %+v %+v", sc, c.Downloads)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"storage:\n  type: nfs\n", "storage.type"},
		{"storage:\n  bucket: b\n", "storage.bucket is for type s3"},
		{"storage:\n  type: s3\n  bucket: b\n", "storage.endpoint: missing"},
		{"storage:\n  type: s3\n  endpoint: http://s3.example.com\n  bucket: b\n", "storage.endpoint"},
		{"storage:\n  type: s3\n  endpoint: s3.example.com\n", "storage.bucket: missing"},
		{s3 + "  prefix: svc\n", "storage.prefix"},
		{s3 + "  pathStyle: dns\n", "storage.pathStyle"},
		{s3 + "  partSize: 1MiB\n", "storage.partSize"},
		{s3 + "  partSize: 6GiB\n", "storage.partSize"},
		{s3 + "  partSize: lots\n", "not a size"},
		{s3 + "  uploadConcurrency: 100\n", "storage.uploadConcurrency"},
		{s3 + "  requestTimeout: 1ms\n", "storage.requestTimeout"},
		{s3 + "  secure: maybe\n", "line 7"},
		{s3 + "  bukket: x\n", "field bukket not found"},
		{"storage:\n  type: s3\n  endpoint: s3.example.com\n  bucket: b\n  accessKeyId: AK\n", "storage.accessKeyId and secretAccessKey"},
		{"downloads:\n  mode: redirect\n", "downloads.mode"},
		{"downloads:\n  mode: presigned\n", "presigned needs storage.type s3"},
	} {
		_, err := ParseConfig([]byte(bad.yaml), env)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		} else if strings.Contains(err.Error(), "very-secret-value") {
			t.Errorf("%q: the error shows the secret: %v", bad.yaml, err)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]int64{"16MiB": 16 << 20, "5 GiB": 5 << 30, "512KiB": 512 << 10, "1048576": 1 << 20, "7B": 7} {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "1.5MiB", "16MB", "99999999999GiB"} {
		if _, err := parseByteSize(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

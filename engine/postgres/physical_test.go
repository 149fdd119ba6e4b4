package postgres_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup/engine/postgres"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...tarEntry) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)),
			ModTime: time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o600
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func TestRestorePhysicalUnpacks(t *testing.T) {
	e := &postgres.Engine{}
	dir := filepath.Join(t.TempDir(), "data") // created by RestorePhysical
	err := e.RestorePhysical(context.Background(), makeTar(t,
		tarEntry{name: "PG_VERSION", body: "15\n"},
		tarEntry{name: "global/", typ: tar.TypeDir, mode: 0o700},
		tarEntry{name: "global/pg_control", body: "control", mode: 0o640},
		tarEntry{name: "./pg_wal/archive_status/", typ: tar.TypeDir, mode: 0o750},
		tarEntry{name: "base/1/1259", body: "heap"}, // parent without its own entry
		tarEntry{name: "pg_tblspc/16384", typ: tar.TypeSymlink, link: "/srv/tablespace"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{".": 0o700 | os.ModeDir, "global/pg_control": 0o640, "pg_wal/archive_status": 0o750 | os.ModeDir,
		"base/1/1259": 0o600, "pg_tblspc/16384": os.ModeSymlink | 0o777} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "global/pg_control")); string(b) != "control" {
		t.Errorf("pg_control holds %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "PG_VERSION")); !fi.ModTime().Equal(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("PG_VERSION mtime %v", fi.ModTime())
	}
}

func TestRestorePhysicalRefuses(t *testing.T) {
	e := &postgres.Engine{}
	version := tarEntry{name: "PG_VERSION", body: "15\n"}
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"dotdot", []tarEntry{version, {name: "../escaped", body: "x"}}, "unsafe"},
		{"dotdot inside", []tarEntry{version, {name: "base/../../escaped", body: "x"}}, "unsafe"},
		{"absolute", []tarEntry{version, {name: "/tmp/escaped", body: "x"}}, "unsafe"},
		{"through symlink", []tarEntry{version, {name: "link", typ: tar.TypeSymlink, link: ".."}, {name: "link/escaped", body: "x"}}, "symbolic link"},
		{"hard link", []tarEntry{version, {name: "hard", typ: tar.TypeLink, link: "PG_VERSION"}}, "unsupported"},
		{"duplicate", []tarEntry{version, version}, "exists"},
		{"not a data directory", []tarEntry{{name: "hello", body: "x"}}, "PG_VERSION"},
		{"empty", nil, "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a", "data")
			os.MkdirAll(dir, 0o700)
			err := e.RestorePhysical(context.Background(), makeTar(t, tc.entries...), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			for _, p := range []string{filepath.Join(parent, "a", "escaped"), filepath.Join(parent, "escaped"), "/tmp/escaped"} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
			// What was unpacked before the error is removed again.
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left in the data directory: %v", left)
			}
		})
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "existing"), nil, 0o600)
	if err := e.RestorePhysical(context.Background(), makeTar(t, version), dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty directory: error %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "existing")); err != nil {
		t.Error("the existing file was removed")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.RestorePhysical(ctx, makeTar(t, version), filepath.Join(t.TempDir(), "d")); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled: error %v", err)
	}
}

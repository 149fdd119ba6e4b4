package main

// BenchmarkHandler measures the DescribeBackups handler in-process: no
// network, no client, one request at a time, so ns/op (and cpu-µs/op, the
// process's CPU time per call) is the server's own cost per call (plus signing the request, ~10 µs, done in the loop so
// every call has a fresh nonce), and -cpuprofile gives a pprof profile of
// the server path. The wiring mirrors cmd/rdsbackup/serve.go for the parts
// DescribeBackups uses.
//
//	go test ./bench/describebackups -run '^$' -bench Handler -benchmem -cpuprofile /tmp/cpu.out \
//	    -args -bench.sets 1000000 -bench.instances 10000
//
// The catalog is seeded (or reused) in the same cache as the command's, and
// the benchmark runs on a copy of it, migrated to the current schema by
// sqlite.DB.Open (for a cache seeded by an older tree this takes a while,
// once per run), so the cache stays as it was seeded.

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/api"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/rpc"
)

var (
	benchSets      = flag.Int("bench.sets", 100000, "backup sets in the benchmark catalog")
	benchInstances = flag.Int("bench.instances", 1000, "instances in the benchmark catalog")
)

var handlerSetup struct {
	once sync.Once
	srv  *api.Server
	db   *sqlite.DB
	dir  string // the copy of the cached data directory
	l    layout
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if s := &handlerSetup; s.dir != "" {
		if s.db != nil {
			s.db.Close()
		}
		os.RemoveAll(s.dir)
	}
	os.Exit(code)
}

func benchServer(b *testing.B) (*api.Server, layout) {
	s := &handlerSetup
	s.once.Do(func() {
		ctx := context.Background()
		s.l = layout{Sets: *benchSets, Instances: *benchInstances}
		cache := seedDir(os.TempDir(), s.l)
		if _, s.err = ensureSeeded(ctx, cache, s.l, false, func(f string, a ...any) { b.Logf(f, a...) }); s.err != nil {
			return
		}
		if s.dir, s.err = os.MkdirTemp("", "rdsbackup-bench-handler-"); s.err != nil {
			return
		}
		if s.err = copyCatalog(cache, s.dir); s.err != nil {
			return
		}
		key, _ := aesgcm.ParseKey(benchMasterKey)
		box, _ := aesgcm.New(key)
		began := time.Now()
		db := sqlite.NewDB(filepath.Join(s.dir, "catalog.db"), box)
		if s.err = db.Open(); s.err != nil {
			return
		}
		s.db = db
		b.Logf("opened a copy of %s (migrations included) in %s", cache, time.Since(began).Round(time.Millisecond))
		instances := make([]*rdsbackup.Instance, s.l.Instances)
		for i := range instances {
			instances[i] = &rdsbackup.Instance{ID: instanceID(i), Engine: rdsbackup.EngineMySQL, DSN: "backup:pw@tcp(127.0.0.1:1)/"}
		}
		if s.err = db.SyncInstances(ctx, instances); s.err != nil {
			return
		}
		if _, err := db.FindAccessKey(ctx, benchKeyID); rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
			s.err = db.CreateAccessKey(ctx, &rdsbackup.AccessKey{ID: benchKeyID, Secret: benchKeySecret, Status: rdsbackup.KeyActive})
			if s.err != nil {
				return
			}
		}
		srv := api.NewServer()
		srv.Instances, srv.Backups, srv.Jobs, srv.Identity = db, db, db, db
		srv.Region, srv.AccountID = benchRegion, "1234567890123456"
		srv.Responder = &rpc.Responder{HostID: "rdsbackup"}
		srv.Auth = &rpc.Authenticator{
			Lookup:  srv.LookupKey,
			Nonces:  rpc.NewNonceCache(rpc.DefaultMaxSkew, rpc.DefaultMaxNonces),
			Now:     time.Now,
			MaxSkew: rpc.DefaultMaxSkew,
		}
		srv.Links = &api.Links{Key: bytes.Repeat([]byte{9}, 32), PublicBase: "http://127.0.0.1:8080",
			IntranetBase: "http://127.0.0.1:8080", TTL: time.Hour, Now: time.Now}
		s.srv = srv
	})
	if s.err != nil {
		b.Fatal(s.err)
	}
	return s.srv, s.l
}

// discard is a ResponseWriter that keeps only the status and byte count.
type discard struct {
	h      http.Header
	status int
	n      int64
	first  []byte // the start of the body, for error messages
}

func (d *discard) Header() http.Header { return d.h }
func (d *discard) WriteHeader(s int)   { d.status = s }
func (d *discard) Write(p []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	if d.status != http.StatusOK && len(d.first) < 300 {
		d.first = append(d.first, p[:min(len(p), 300)]...)
	}
	d.n += int64(len(p))
	return len(p), nil
}

func BenchmarkHandler(b *testing.B) {
	srv, l := benchServer(b)
	for _, sc := range scenarios() {
		if sc.trivial {
			continue
		}
		b.Run(sc.name, func(b *testing.B) {
			c := newClient(uint64(time.Now().UnixNano())) // nonces must not repeat across runs
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			cpu0, reads0, n := selfCPU(), readSyscalls("self"), 0
			for b.Loop() {
				n++
				req := c.newRequest("http://127.0.0.1:8080", sc, l)
				req.RemoteAddr = "127.0.0.1:40000"
				clear(w.h)
				w.status, w.n = 0, 0
				srv.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d: %s", w.status, w.first)
				}
			}
			b.ReportMetric(float64(w.n), "B/resp")
			// Process CPU time per call (GC included): steadier than ns/op
			// when other work shares the machine.
			b.ReportMetric(float64((selfCPU()-cpu0).Microseconds())/float64(n), "cpu-µs/op")
			// read(2)/pread(2) calls per call: with no socket here, these are
			// SQLite page-cache misses, a count that machine noise does not move.
			b.ReportMetric(float64(readSyscalls("self")-reads0)/float64(n), "reads/op")
		})
	}
}

package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
)

// recorder is an HTTP transport that keeps a copy of every request the SDK
// sends, so that a test can send it again as an eavesdropper would.
type recorder struct {
	mu   sync.Mutex
	reqs []capturedRequest
}

type capturedRequest struct {
	method, uri string // uri: path and query
	header      http.Header
	body        []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, capturedRequest{req.Method, req.URL.RequestURI(), req.Header.Clone(), body})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// captureDescribe sends a DescribeBackups through the official SDK to addr
// and returns the signed request as it went on the wire.
func captureDescribe(t *testing.T, addr, instance string) capturedRequest {
	t.Helper()
	c := newClients(t, addr, rootKeyID, rootKeySecret)
	rec := &recorder{}
	c.RDS.SetTransport(rec)
	req := rds.CreateDescribeBackupsRequest()
	req.DBInstanceId = instance
	if _, err := c.RDS.DescribeBackups(req); err != nil {
		t.Fatalf("DescribeBackups: %v", err)
	}
	if len(rec.reqs) != 1 {
		t.Fatalf("the SDK sent %d requests, want 1", len(rec.reqs))
	}
	return rec.reqs[0]
}

// replay sends a captured request to addr, unchanged but for the host.
func replay(t *testing.T, addr string, c capturedRequest) *rawResponse {
	t.Helper()
	req, err := http.NewRequest(c.method, "http://"+addr+c.uri, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = c.header.Clone()
	return sendRaw(t, req)
}

// writeServeConfig writes the config of a node with its own data directory.
func writeServeConfig(t *testing.T, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg := "listen: 127.0.0.1:0\ndataDir: " + t.TempDir() + "\naccountId: \"1234567890\"\nbackups:\n  schedule: false\n" + extra + instancesYAML("rm-replay")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplayAfterKill: a request the SDK signed, captured on the wire, is
// refused when sent again — to the same process, and to the process started
// after it was SIGKILLed on the same data directory (the SQLite catalog).
// With auth.nonceStore: memory the restarted process accepts the replay,
// which is what the catalog store is for.
func TestReplayAfterKill(t *testing.T) {
	t.Parallel()
	bin := buildRdsbackup(t)
	for _, tc := range []struct {
		store       string
		afterReplay int // HTTP status of the replay after the restart
	}{
		{"", http.StatusBadRequest}, // the default: catalog
		{"memory", http.StatusOK},
	} {
		t.Run("store="+tc.store, func(t *testing.T) {
			extra := ""
			if tc.store != "" {
				extra = "auth:\n  nonceStore: " + tc.store + "\n"
			}
			config := writeServeConfig(t, extra)
			p := startServeProcess(t, bin, config, nil)
			captured := captureDescribe(t, p.addr, "rm-replay")
			wantRawError(t, replay(t, p.addr, captured), rdsbackup.ENonceUsed, http.StatusBadRequest)

			p.kill()
			p = startServeProcess(t, bin, config, nil)
			r := replay(t, p.addr, captured)
			if tc.afterReplay == http.StatusOK {
				if r.Status != http.StatusOK {
					t.Fatalf("replay to the restarted process, memory store: %d %s", r.Status, r.Body)
				}
			} else {
				wantRawError(t, r, rdsbackup.ENonceUsed, tc.afterReplay)
			}
			// The restarted process serves new requests.
			captureDescribe(t, p.addr, "rm-replay")
		})
	}
}

// TestReplayAcrossNodes: two processes on one PostgreSQL catalog. A
// request accepted by node A is refused by node B, and by A after A was
// SIGKILLed and started again.
func TestReplayAcrossNodes(t *testing.T) {
	t.Parallel()
	bin := buildRdsbackup(t)
	srv := enginetest.SharedPostgres(t)
	env := map[string]string{"CATALOG_DSN": srv.URL(srv.NewDatabase(t))}
	configA, configB := writeServeConfig(t, catalogYAML), writeServeConfig(t, catalogYAML)
	a := startServeProcess(t, bin, configA, env)
	b := startServeProcess(t, bin, configB, env)

	captured := captureDescribe(t, a.addr, "rm-replay")
	wantRawError(t, replay(t, b.addr, captured), rdsbackup.ENonceUsed, http.StatusBadRequest)
	// And the other way round.
	fromB := captureDescribe(t, b.addr, "rm-replay")
	wantRawError(t, replay(t, a.addr, fromB), rdsbackup.ENonceUsed, http.StatusBadRequest)

	a.kill()
	a = startServeProcess(t, bin, configA, env)
	wantRawError(t, replay(t, a.addr, captured), rdsbackup.ENonceUsed, http.StatusBadRequest)
	wantRawError(t, replay(t, a.addr, fromB), rdsbackup.ENonceUsed, http.StatusBadRequest)
	captureDescribe(t, a.addr, "rm-replay")
}

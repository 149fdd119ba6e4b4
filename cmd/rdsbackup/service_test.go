package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
)

// Test credentials of the account (root) key.
const (
	rootKeyID     = "LTAIrootkeyfortests0001"
	rootKeySecret = "rootsecretfortests000000000001"
)

var testMasterKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, aesgcm.KeySize))

// testService is a running rdsbackup serve, in-process.
type testService struct {
	Addr    string
	DataDir string
	Stdout  *syncBuffer
	Stderr  *syncBuffer
	cancel  context.CancelFunc
	done    chan int
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is the environment the test service sees.
func testEnv(extra map[string]string) func(string) string {
	env := map[string]string{
		envAccessKeyID:     rootKeyID,
		envAccessKeySecret: rootKeySecret,
		envMasterKey:       testMasterKey,
	}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// startService runs `rdsbackup serve` on a free port with a config whose
// instances section is instancesYAML, and stops it at the end of the test.
func startService(t testing.TB, dataDir, instancesYAML string, env func(string) string) *testService {
	t.Helper()
	// Automated backups are off unless a test asks for them: the tests'
	// instances must not be backed up because their window happens to be open.
	if !strings.Contains(instancesYAML, "backups:") {
		instancesYAML = "backups:\n  schedule: false\n" + instancesYAML
	}
	// Encryption at rest is off unless a test turns it on: most tests look
	// at the stored bytes (encryption_e2e_test.go covers it).
	if !strings.Contains(instancesYAML, "encryption:") {
		instancesYAML = "encryption:\n  enabled: false\n" + instancesYAML
	}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ndataDir: %s\naccountId: \"1234567890\"\n%s", dataDir, instancesYAML)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	s := &testService{DataDir: dataDir, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	m := &Main{Stdout: s.Stdout, Stderr: s.Stderr, Getenv: env, Ready: func(a string) { ready <- a }}
	go func() { s.done <- m.Run(ctx, []string{"serve", "--config", path}) }()
	select {
	case s.Addr = <-ready:
	case code := <-s.done:
		cancel()
		t.Fatalf("serve exited with %d before it was ready: %s", code, s.Stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve not ready after 30s")
	}
	t.Cleanup(s.Stop)
	resp, err := http.Get("http://" + s.Addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	return s
}

// Stop shuts the service down and waits for it.
func (s *testService) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	<-s.done
}

// openCatalog opens the service's catalog beside it, as the backup engine
// does, to put backup sets in.
func openCatalog(t testing.TB, dataDir string) *sqlite.DB {
	t.Helper()
	key, err := aesgcm.ParseKey(testMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	box, _ := aesgcm.New(key)
	db := sqlite.NewDB(filepath.Join(dataDir, "catalog.db"), box)
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// instancesYAML renders an instances section.
func instancesYAML(ids ...string) string {
	var b strings.Builder
	b.WriteString("instances:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  - id: %s\n    engine: MySQL\n    dsn: \"root:pw@tcp(127.0.0.1:3306)/\"\n    description: test %s\n", id, id)
	}
	return b.String()
}

// sampleSet returns a successful backup set of instance id started at t.
func sampleSet(id string, start time.Time) *rdsbackup.BackupSet {
	return &rdsbackup.BackupSet{
		InstanceID: id, Status: rdsbackup.BackupSuccess, StartTime: start, EndTime: start.Add(90 * time.Second),
		Type: rdsbackup.FullBackup, Mode: rdsbackup.BackupManual, Method: rdsbackup.MethodLogical,
		Initiator: rdsbackup.InitiatorUser, Size: 2167808, Available: true, StoreStatus: rdsbackup.StoreEnabled,
		MetaStatus: "OK", ConsistentTime: start.Unix(), Checksum: "12345678901234567890", HostInstanceID: "5882781",
		Engine: rdsbackup.EngineMySQL, EngineVersion: "8.0", Location: "Local", Scale: "DBInstance",
		DBNames: []string{"shop", "crm"}, ObjectKey: "sets/x",
		Artifacts: []rdsbackup.Artifact{{Database: "shop", Offset: 0, Length: 100, Checksum: "1"}, {Database: "crm", Offset: 100, Length: 50, Checksum: "2"}},
	}
}

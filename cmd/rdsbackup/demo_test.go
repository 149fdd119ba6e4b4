package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// demoBuffer is an io.Writer the demo writes to while the test reads it.
type demoBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *demoBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *demoBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// demoField returns the first submatch of re in out, failing the test when
// there is none.
func demoField(t *testing.T, out, re string) []string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the demo's output has no match for %s:\n%s", re, out)
	}
	return m
}

// TestDemo runs `rdsbackup demo` in-process: it must start both servers,
// back each up through the API, print what a newcomer needs, and on
// cancellation leave nothing behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the demo starts database servers")
	}
	if !localserver.Supported {
		t.Skip("the demo needs a Unix system")
	}
	t.Parallel()

	// Passwords of our own, to look for in the config file. '~' and '.'
	// are the characters a URL or DSN could trip on that the demo allows.
	const mariaPW, pgPW = "maria-Demo.pw~1", "pg_Demo.pw~2"
	getenv := func(name string) string {
		switch name {
		case envDemoMariaDBPassword:
			return mariaPW
		case envDemoPostgresPassword:
			return pgPW
		}
		return ""
	}
	var stdout, stderr demoBuffer
	ready := make(chan string, 1)
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: getenv, Ready: func(addr string) { ready <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	start := time.Now()
	go func() { exited <- m.Run(ctx, []string{"demo", "--listen", "127.0.0.1:0"}) }()

	var addr string
	select {
	case addr = <-ready:
	case code := <-exited:
		t.Fatalf("demo exited with %d before it was ready\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	case <-time.After(3 * time.Minute):
		cancel()
		<-exited
		t.Fatalf("demo not ready after 3 minutes\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	t.Logf("demo ready after %v at %s", time.Since(start).Round(time.Millisecond), addr)
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-exited
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()

	out := stdout.String()
	dir := demoField(t, out, `Working directory: (\S+) \(removed when the demo stops\)`)[1]
	if got := demoField(t, out, `Endpoint:\s+(\S+)`)[1]; got != addr {
		t.Errorf("printed endpoint %s, Ready got %s", got, addr)
	}
	keyID := demoField(t, out, `AccessKeyId:\s+(\S+)`)[1]
	secret := demoField(t, out, `AccessKeySecret:\s+(\S+)`)[1]
	configPath := demoField(t, out, `Config:\s+(\S+)`)[1]
	backupIDs := map[string]string{
		demoMariaDBInstance:  demoField(t, out, `(?m)^\s+`+demoMariaDBInstance+`\s+MariaDB\s+\S+\s+`+demoMariaDBDatabase+`\s+(\d+)$`)[1],
		demoPostgresInstance: demoField(t, out, `(?m)^\s+`+demoPostgresInstance+`\s+PostgreSQL\s+\S+\s+`+demoPostgresDatabase+`\s+(\d+)$`)[1],
	}
	if filepath.Dir(configPath) != dir {
		t.Errorf("config %s is not in the working directory %s", configPath, dir)
	}

	// Both backups finished Success, as the official SDK sees them with the
	// printed key.
	client, err := rds.NewClientWithAccessKey(DefaultRegion, keyID, secret)
	if err != nil {
		t.Fatal(err)
	}
	client.Domain = addr
	for inst, id := range backupIDs {
		req := rds.CreateDescribeBackupsRequest()
		req.DBInstanceId = inst
		req.BackupId = id
		resp, err := client.DescribeBackups(req)
		if err != nil {
			t.Fatalf("DescribeBackups %s: %v", inst, err)
		}
		if len(resp.Items.Backup) != 1 {
			t.Fatalf("DescribeBackups %s BackupId %s: %d sets", inst, id, len(resp.Items.Backup))
		}
		b := resp.Items.Backup[0]
		wantDB := map[string]string{demoMariaDBInstance: demoMariaDBDatabase, demoPostgresInstance: demoPostgresDatabase}[inst]
		if b.BackupStatus != "Success" || b.BackupMethod != "Logical" || b.BackupSize <= 0 || !strings.Contains(b.BackupDBNames, wantDB) {
			t.Errorf("%s: set %s: status %s, method %s, size %d, databases %q", inst, id, b.BackupStatus, b.BackupMethod, b.BackupSize, b.BackupDBNames)
		}
	}

	// The example program parses, and talks to this endpoint about these
	// instances with this key.
	program := demoProgramText(t, out)
	demoCheckProgram(t, program, addr, keyID, secret)
	demoBuildAndRunProgram(t, program, backupIDs)

	// So does the aliyun CLI line, over plain HTTP.
	demoRunCLILine(t, out, addr, keyID, secret, backupIDs[demoMariaDBInstance])

	// The config registers both instances and holds no password.
	raw, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{mariaPW, pgPW} {
		if bytes.Contains(raw, []byte(pw)) {
			t.Errorf("the config file holds a password:\n%s", raw)
		}
	}
	for _, ref := range []string{"${" + envDemoMariaDBPassword + "}", "${" + envDemoPostgresPassword + "}"} {
		if !bytes.Contains(raw, []byte(ref)) {
			t.Errorf("the config file does not refer to %s:\n%s", ref, raw)
		}
	}
	cfg, err := ParseConfig(raw, getenv)
	if err != nil {
		t.Fatalf("the demo's config: %v\n%s", err, raw)
	}
	// The demo drills every new set (docs/drills.md).
	for _, ic := range cfg.Instances {
		if ic.Drills == nil || !ic.Drills.Enabled || ic.Drills.Schedule != DrillAfterEachSet {
			t.Errorf("demo instance %s: drills %+v, want enabled after each set", ic.ID, ic.Drills)
		}
	}
	if err := localserver.CheckPostgresParent(cfg.Drills.Dir); err != nil {
		t.Errorf("the demo's drills.dir %s: %v", cfg.Drills.Dir, err)
	}
	ports := demoServerPorts(t, cfg)
	for _, p := range ports {
		c, err := net.DialTimeout("tcp", p, 5*time.Second)
		if err != nil {
			t.Fatalf("database server %s: %v", p, err)
		}
		c.Close()
	}

	// Ctrl-C: the demo stops the service and the servers, and removes its
	// temporary directory.
	cancel()
	select {
	case code := <-exited:
		stopped = true
		if code != exitOK {
			t.Errorf("demo exited with %d after cancellation", code)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("demo did not stop within 2 minutes of cancellation")
	}
	for _, p := range append(ports, addr) {
		if c, err := net.DialTimeout("tcp", p, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo stopped", p)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("working directory %s still there after the demo stopped: %v", dir, err)
		os.RemoveAll(dir)
	}
}

// demoProgramText extracts the example program from the demo's output.
func demoProgramText(t *testing.T, out string) string {
	t.Helper()
	_, after, ok := strings.Cut(out, demoProgramBegin+"\n")
	program, _, ok2 := strings.Cut(after, demoProgramEnd)
	if !ok || !ok2 {
		t.Fatalf("no example program between %q and %q:\n%s", demoProgramBegin, demoProgramEnd, out)
	}
	return program
}

// demoCheckProgram parses the example program and checks that it uses the
// RDS SDK with the demo's endpoint, key and instances.
func demoCheckProgram(t *testing.T, program, addr, keyID, secret string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", program, 0)
	if err != nil {
		t.Fatalf("the example program does not parse: %v\n%s", err, program)
	}
	if f.Name.Name != "main" {
		t.Errorf("package %s, want main", f.Name.Name)
	}
	imports := map[string]bool{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		imports[p] = true
	}
	if !imports["github.com/aliyun/alibaba-cloud-sdk-go/services/rds"] {
		t.Errorf("the example program does not import the RDS SDK: %v", imports)
	}
	strs := map[string]bool{}
	var domain string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				s, _ := strconv.Unquote(n.Value)
				strs[s] = true
			}
		case *ast.AssignStmt:
			if sel, ok := n.Lhs[0].(*ast.SelectorExpr); ok && sel.Sel.Name == "Domain" && len(n.Rhs) == 1 {
				if lit, ok := n.Rhs[0].(*ast.BasicLit); ok {
					domain, _ = strconv.Unquote(lit.Value)
				}
			}
		}
		return true
	})
	if domain != addr {
		t.Errorf("the example program sets Domain to %q, want %q", domain, addr)
	}
	for _, s := range []string{demoMariaDBInstance, demoPostgresInstance, keyID, secret, DefaultRegion} {
		if !strs[s] {
			t.Errorf("the example program has no string %q", s)
		}
	}
}

// demoBuildAndRunProgram compiles the example program in this module (an
// overlay adds it as a package, so the module's go.sum serves it) and runs
// it against the demo: it must list both backups. Without a go command it
// does nothing.
func demoBuildAndRunProgram(t *testing.T, program string, backupIDs map[string]string) {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		if goCmd, err = exec.LookPath("/usr/local/go/bin/go"); err != nil {
			t.Log("no go command: the example program is parsed, not built")
			return
		}
	}
	wd, err := os.Getwd() // the package directory, inside the module
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "main.go")
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	pkgDir := filepath.Join(wd, "demo-example-"+filepath.Base(tmp)) // does not exist
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(pkgDir, "main.go"): src}})
	if err := os.WriteFile(filepath.Join(tmp, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "listbackups")
	start := time.Now()
	build := exec.Command(goCmd, "build", "-overlay", filepath.Join(tmp, "overlay.json"), "-o", bin, "./"+filepath.Base(pkgDir))
	build.Dir = wd
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the example program does not build: %v\n%s\n%s", err, out, program)
	}
	t.Logf("built the example program in %v", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("the example program failed: %v\n%s", err, out)
	}
	for inst, id := range backupIDs {
		if !regexp.MustCompile(`(?m)^`+inst+`: \d+ backup\(s\)$`).Match(out) ||
			!regexp.MustCompile(`(?m)^  BackupId `+id+`  Success  Logical `).Match(out) {
			t.Errorf("the example program's output lacks %s's backup %s:\n%s", inst, id, out)
		}
	}
}

// demoRunCLILine finds the aliyun CLI command the demo prints, checks that
// it names the demo's endpoint, key and instance, and makes its call as the
// CLI would (aliyunCall): a line that forgot --insecure fails here as the
// CLI fails against a plain-HTTP endpoint.
func demoRunCLILine(t *testing.T, out, addr, keyID, secret, backupID string) {
	t.Helper()
	lines := aliyunCommands(out)
	if len(lines) != 1 {
		t.Fatalf("%d aliyun CLI commands in the demo's output, want 1:\n%s", len(lines), out)
	}
	cmd := parseAliyunCommand(t, lines[0])
	if cmd.Product != "rds" || cmd.API != "DescribeBackups" {
		t.Fatalf("the aliyun line calls %s %s, want rds DescribeBackups: %s", cmd.Product, cmd.API, lines[0])
	}
	for name, want := range map[string]string{"endpoint": addr, "region": DefaultRegion, "access-key-id": keyID, "access-key-secret": secret} {
		if got := cmd.Flags[name]; len(got) != 1 || got[0] != want {
			t.Errorf("the aliyun line has --%s %q, want %q", name, got, want)
		}
	}
	if got := cmd.Params.Get("DBInstanceId"); got != demoMariaDBInstance {
		t.Errorf("the aliyun line has --DBInstanceId %q, want %s", got, demoMariaDBInstance)
	}
	body := aliyunCall(t, cmd)
	if !strings.Contains(string(body), `"BackupId":"`+backupID+`"`) {
		t.Errorf("the aliyun line's call does not list backup %s: %s", backupID, body)
	}
}

// demoServerPorts returns the host:port of the database servers in the
// demo's config.
func demoServerPorts(t *testing.T, cfg *Config) []string {
	t.Helper()
	var out []string
	for _, inst := range cfg.Instances {
		switch inst.ID {
		case demoMariaDBInstance:
			c, err := mysql.ParseDSN(inst.DSN)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c.Addr)
		case demoPostgresInstance:
			u, err := url.Parse(inst.DSN)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u.Host)
		default:
			t.Errorf("unexpected instance %s in the demo's config", inst.ID)
		}
	}
	if len(out) != 2 {
		t.Fatalf("the demo's config has %d instances, want 2", len(cfg.Instances))
	}
	return out
}

// TestDemoUsage checks the refusals that come before anything is started.
func TestDemoUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{[]string{"demo", "extra"}, nil, exitUsage, `unexpected argument "extra"`},
		{[]string{"demo", "--listen", "nonsense"}, nil, exitUsage, "--listen"},
		{[]string{"demo"}, map[string]string{envDemoMariaDBPassword: "a b"}, exitUsage, envDemoMariaDBPassword},
		{[]string{"demo", "-h"}, nil, exitOK, "Usage: rdsbackup demo"},
	} {
		var stdout, stderr demoBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return c.env[k] }}
		code := m.Run(context.Background(), c.args)
		if code != c.code || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", c.args, code, c.code, stderr.String())
		}
	}
}

// TestDemoWorkDir checks the working directory rules: --dir is created, may
// exist empty, and is refused when not empty.
func TestDemoWorkDir(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "new", "demo")
	got, temp, err := demoWorkDir(dir)
	if err != nil || got != dir || temp {
		t.Fatalf("new dir: %s, %v, %v", got, temp, err)
	}
	if _, _, err := demoWorkDir(dir); err != nil {
		t.Errorf("existing empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	if _, _, err := demoWorkDir(dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty dir: %v", err)
	}
	got, temp, err = demoWorkDir("")
	if err != nil || !temp {
		t.Fatalf("temporary dir: %s, %v, %v", got, temp, err)
	}
	defer os.RemoveAll(got)
	if !strings.HasPrefix(filepath.Base(got), "rdsbackup-demo-") {
		t.Errorf("temporary dir %s", got)
	}
	if filepath.Dir(got) != filepath.Clean(localserver.TempDir()) {
		t.Errorf("temporary dir %s not in %s", got, localserver.TempDir())
	}
}

// TestDemoWaitsForAutomatedBackup: when the demo starts inside the default
// policy's window, the service is already backing the instance up and
// refuses CreateBackup; the demo waits for that job and asks again.
func TestDemoWaitsForAutomatedBackup(t *testing.T) {
	var creates, polls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		switch r.Form.Get("Action") {
		case "CreateBackup":
			creates++
			if creates == 1 {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"Code":"IncorrectDBInstanceState","Message":"backup job 7 is still running"}`)
				return
			}
			fmt.Fprint(w, `{"BackupJobId":"8"}`)
		case "DescribeBackupTasks":
			if r.Form.Get("BackupJobId") == "" {
				fmt.Fprint(w, `{"Items":{"BackupJob":[{"BackupJobId":"7","BackupStatus":"Progressing"}]}}`)
				return
			}
			polls++
			fmt.Fprintf(w, `{"Items":{"BackupJob":[{"BackupJobId":%q,"BackupStatus":"Finished","BackupId":"7"}]}}`, r.Form.Get("BackupJobId"))
		default:
			t.Errorf("unexpected action %q", r.Form.Get("Action"))
		}
	}))
	defer srv.Close()
	c := &demoClient{addr: strings.TrimPrefix(srv.URL, "http://"), keyID: "k", secret: "s", scheme: "http", http: srv.Client()}
	job, err := c.startBackup(context.Background(), "rm-demo-mariadb")
	if err != nil {
		t.Fatal(err)
	}
	if job != "8" || creates != 2 || polls != 1 {
		t.Fatalf("job %q after %d CreateBackup and %d polls of the running job; want 8, 2, 1", job, creates, polls)
	}
}

package main

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

// TestDemoTLSOutput: with --tls-cert and --tls-key the demo's config serves
// HTTPS, and what it prints (endpoint line, Go program, aliyun CLI line)
// uses HTTPS; without them nothing changes.
func TestDemoTLSOutput(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "demo.crt"), filepath.Join(dir, "demo.key")
	ca.issue(t, cert, key, 5)

	var ue usageError
	if _, err := demoTLS(&TLSConfig{CertFile: cert}); !errors.As(err, &ue) {
		t.Errorf("--tls-cert alone: %v", err)
	}
	if _, err := demoTLS(&TLSConfig{CertFile: key, KeyFile: key}); err == nil {
		t.Errorf("a key as the certificate was accepted")
	}
	tlsCfg := TLSConfig{CertFile: cert, KeyFile: key}
	roots, err := demoTLS(&tlsCfg)
	if err != nil || roots == nil {
		t.Fatalf("demoTLS: %v", err)
	}

	maria := &localserver.MariaDB{Host: "127.0.0.1", Port: 3306, User: "root"}
	pg := &localserver.Postgres{Host: "127.0.0.1", Port: 5432, User: "postgres"}
	cfgPath := filepath.Join(dir, "demo.yaml")
	if err := writeDemoConfig(cfgPath, "127.0.0.1:0", filepath.Join(dir, "data"), maria, pg, tlsCfg); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfigFile(cfgPath, func(string) string { return "pw" })
	if err != nil || cfg.TLS != tlsCfg {
		t.Fatalf("config: %+v %v", cfg, err)
	}

	for _, on := range []bool{false, true} {
		var out bytes.Buffer
		printDemoIntro(&out, demoIntro{Addr: "127.0.0.1:8080", Region: DefaultRegion, KeyID: "LTAIk", KeySecret: "s",
			Config: cfgPath, MariaDB: maria, Postgres: pg, BackupIDs: map[string]string{}, TLS: on})
		text := out.String()
		program := demoProgramText(t, text)
		demoCheckProgram(t, program, "127.0.0.1:8080", "LTAIk", "s")
		if got := strings.Contains(text, "(HTTPS)"); got != on {
			t.Errorf("TLS %v: endpoint line says HTTPS: %v", on, got)
		}
		flag := " --insecure "
		if on {
			flag = " --secure "
		}
		if !strings.Contains(text, "--endpoint 127.0.0.1:8080"+flag) || strings.Count(text, "secure ") != 1 {
			t.Errorf("TLS %v: the CLI line does not have%s alone:\n%s", on, flag, text)
		}
		if got := strings.Contains(program, `WithScheme("HTTPS")`); got != on {
			t.Errorf("TLS %v: program sets HTTPS: %v", on, got)
		}
	}
}

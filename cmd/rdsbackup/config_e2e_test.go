package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runConfig runs `serve --config` with cfg and returns the exit code and
// stderr. A valid config would start the service, so every case must fail.
func runConfig(t *testing.T, cfg string, env map[string]string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	full := "listen: 127.0.0.1:0\ndataDir: " + filepath.Join(dir, "data") + "\n" + cfg
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(env), Ready: func(string) {
		t.Errorf("the service started with an invalid config")
		cancel()
	}}
	code := m.Run(ctx, []string{"serve", "--config", path})
	if stdout.String() != "" {
		t.Errorf("stdout: %q", stdout.String())
	}
	return code, stderr.String()
}

func instanceEntry(id, engine, dsn string) string {
	return "  - id: " + id + "\n    engine: " + engine + "\n    dsn: '" + dsn + "'\n"
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	const pw = dsnPassword
	good := instanceEntry("rm-ok", "MySQL", "root:"+pw+"@tcp(127.0.0.1:3306)/")
	tests := []struct {
		name    string
		entries string // instance entries after the good one, which is instances[0]
		env     map[string]string
		want    []string // substrings of stderr
		secrets []string // parts of a password that must not be shown, besides pw
	}{
		{"unknown engine", instanceEntry("rm-x", "Oracle", "oracle://u:"+pw+"@h/db"), nil,
			[]string{`instances[1]`, `"rm-x"`, `unknown engine "Oracle"`}, nil},
		{"engine case", instanceEntry("rm-x", "mysql", "root:"+pw+"@tcp(h:3306)/"), nil,
			[]string{`instances[1]`, `unknown engine "mysql"`}, nil},
		{"duplicate id", instanceEntry("rm-ok", "MySQL", "root:"+pw+"@tcp(127.0.0.1:3307)/"), nil,
			[]string{`instances[1]`, `"rm-ok"`, "duplicate id"}, nil},
		{"malformed id/uppercase", instanceEntry("RM-A1", "MySQL", "root:"+pw+"@tcp(h:3306)/"), nil,
			[]string{`instances[1]`, `"RM-A1"`, "malformed id"}, nil},
		{"malformed id/digit first", instanceEntry("1db", "MySQL", "root:"+pw+"@tcp(h:3306)/"), nil,
			[]string{`instances[1]`, `"1db"`, "malformed id"}, nil},
		{"malformed id/slash", instanceEntry("rm/a1", "MySQL", "root:"+pw+"@tcp(h:3306)/"), nil,
			[]string{`instances[1]`, "malformed id"}, nil},
		{"malformed id/empty", instanceEntry("", "MySQL", "root:"+pw+"@tcp(h:3306)/"), nil,
			[]string{`instances[1]`, "malformed id"}, nil},
		{"dsn missing", instanceEntry("rm-x", "MySQL", ""), nil,
			[]string{`instances[1]`, `"rm-x"`, "dsn", "missing"}, nil},
		{"MySQL dsn/unterminated address", instanceEntry("rm-x", "MySQL", "root:"+pw+"@tcp(127.0.0.1:3306/"), nil,
			[]string{`instances[1]`, `"rm-x"`, "dsn", "MySQL"}, nil},
		{"MySQL dsn/no slash", instanceEntry("rm-x", "MySQL", "root:"+pw+"@tcp(127.0.0.1:3306)"), nil,
			[]string{`instances[1]`, "dsn", "MySQL"}, nil},
		{"MySQL dsn/bad param", instanceEntry("rm-x", "MySQL", "root:"+pw+"@tcp(127.0.0.1:3306)/?parseTime=maybe"), nil,
			[]string{`instances[1]`, "dsn", "MySQL"}, nil},
		{"MySQL dsn/password from env", instanceEntry("rm-x", "MySQL", "root:${DB_PASSWORD}@tcp(127.0.0.1:3306"),
			map[string]string{"DB_PASSWORD": pw}, []string{`instances[1]`, "dsn"}, nil},
		// The driver quotes the text after the last '/' as a database name:
		// here that is the end of the password.
		{"MySQL dsn/password with a slash", instanceEntry("rm-x", "MySQL", "root:Sup3r/HiddenTail%zz@tcp(127.0.0.1:3306)"), nil,
			[]string{`instances[1]`, `"rm-x"`, "dsn"}, []string{"HiddenTail"}},
		{"MariaDB dsn", instanceEntry("rm-x", "MariaDB", "root:"+pw+"@tcp(127.0.0.1:3306"), nil,
			[]string{`instances[1]`, `"rm-x"`, "dsn", "MySQL"}, nil},
		{"PostgreSQL dsn/not a URL", instanceEntry("pg-x", "PostgreSQL", "host=db user=u password="+pw), nil,
			[]string{`instances[1]`, `"pg-x"`, "dsn", "PostgreSQL"}, nil},
		{"PostgreSQL dsn/bad port", instanceEntry("pg-x", "PostgreSQL", "postgres://u:"+pw+"@127.0.0.1:notaport/app"), nil,
			[]string{`instances[1]`, `"pg-x"`, "dsn", "PostgreSQL"}, nil},
		{"PostgreSQL dsn/bad option", instanceEntry("pg-x", "PostgreSQL", "postgres://u:"+pw+"@127.0.0.1:5432/app?sslmode=sometimes"), nil,
			[]string{`instances[1]`, `"pg-x"`, "dsn", "PostgreSQL"}, nil},
		{"SQLServer dsn/wrong scheme", instanceEntry("ms-x", "SQLServer", "mssql://sa:"+pw+"@127.0.0.1:1433"), nil,
			[]string{`instances[1]`, `"ms-x"`, "dsn", "SQL Server"}, nil},
		{"SQLServer dsn/no host", instanceEntry("ms-x", "SQLServer", "sqlserver:///?database=app&password="+pw), nil,
			[]string{`instances[1]`, `"ms-x"`, "dsn", "SQL Server"}, nil},
		{"SQLServer dsn/unparsable", instanceEntry("ms-x", "SQLServer", "sqlserver://sa:"+pw+"@127.0.0.1:14x3"), nil,
			[]string{`instances[1]`, `"ms-x"`, "dsn"}, nil},
		{"unknown field", "  - id: rm-x\n    engine: MySQL\n    dsn: 'root:" + pw + "@tcp(h:3306)/'\n    pasword: x\n", nil,
			[]string{"pasword"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stderr := runConfig(t, "instances:\n"+good+tt.entries, tt.env)
			if code != exitFailed {
				t.Errorf("exit code %d, want %d", code, exitFailed)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q: %s", w, stderr)
				}
			}
			for _, secret := range append(tt.secrets, pw) {
				if strings.Contains(stderr, secret) {
					t.Errorf("stderr shows (part of) the DSN password %q: %s", secret, stderr)
				}
			}
		})
	}
}

// TestMetricsListenErrors: a malformed metrics.listen stops the start, and
// so does an address that cannot be listened on, naming metrics.
func TestMetricsListenErrors(t *testing.T) {
	t.Parallel()
	code, stderr := runConfig(t, "metrics:\n  listen: nowhere\n", nil)
	if code != exitFailed || !strings.Contains(stderr, "metrics.listen") {
		t.Errorf("malformed metrics.listen: exit %d: %s", code, stderr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stderr = runConfig(t, "metrics:\n  listen: "+ln.Addr().String()+"\n", nil)
	if code != exitFailed || !strings.Contains(stderr, "listen for metrics") {
		t.Errorf("metrics.listen in use: exit %d: %s", code, stderr)
	}
}

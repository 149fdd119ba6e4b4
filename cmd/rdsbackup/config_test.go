package main

import (
	"strings"
	"testing"
	"time"
)

// TestDefaultConfigComplete: `serve` without --config runs on these, so
// every default a file would get must be there too.
func TestDefaultConfigComplete(t *testing.T) {
	c := DefaultConfig()
	if c.Listen != DefaultListen || c.DataDir != DefaultDataDir || c.Region != DefaultRegion {
		t.Errorf("defaults: %+v", c)
	}
	if time.Duration(c.Backups.TickInterval) <= 0 || c.Backups.MaxConcurrent <= 0 || !c.Backups.Scheduled() {
		t.Errorf("backup defaults: %+v", c.Backups)
	}
	if time.Duration(c.Downloads.LinkTTL) <= 0 {
		t.Errorf("download defaults: %+v", c.Downloads)
	}
	parsed, err := ParseConfig([]byte("{}"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Backups != c.Backups || parsed.Downloads != c.Downloads || parsed.Listen != c.Listen {
		t.Errorf("an empty file and no file differ:\n%+v\n%+v", parsed, c)
	}
}

func TestAuthAndTLSConfig(t *testing.T) {
	env := func(string) string { return "" }
	c, err := ParseConfig([]byte("{}"), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.RatePerKey.Rate != 100 || c.Auth.RatePerKey.Burst != 200 || c.Auth.NonceStore != NonceStoreCatalog || c.TLS.Enabled() {
		t.Errorf("defaults: %+v %+v", c.Auth, c.TLS)
	}
	c, err = ParseConfig([]byte("auth:\n  ratePerKey:\n    rate: 500\n"), env)
	if err != nil || c.Auth.RatePerKey.Burst != 500 {
		t.Errorf("burst follows a higher rate: %+v %v", c, err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"tls:\n  certFile: /x.crt\n", "set both certFile and keyFile"},
		{"tls:\n  keyFile: /x.key\n", "set both certFile and keyFile"},
		{"auth:\n  ratePerKey:\n    rate: -1\n", "auth.ratePerKey.rate"},
		{"auth:\n  ratePerKey:\n    burst: -5\n", "auth.ratePerKey.burst"},
		{"auth:\n  ratePerKey:\n    rps: 5\n", "field rps not found"},
		{"auth:\n  nonceStore: redis\n", `auth.nonceStore "redis": use catalog or memory`},
	} {
		if _, err := ParseConfig([]byte(bad.yaml), env); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

// TestConfigErrorsHideExpandedValues: YAML quotes pieces of the document in
// its errors; values from the environment are shown as ${NAME}. (Found by
// FuzzParseConfig: an anchor name.)
func TestConfigErrorsHideExpandedValues(t *testing.T) {
	const pw = "s3cret-Passw0rd"
	env := func(k string) string {
		if k == "DB_PASSWORD" {
			return pw
		}
		return ""
	}
	for _, doc := range []string{
		"backups:\n  maxConcurrent: ${DB_PASSWORD}\n",
		"*${DB_PASSWORD}00",
		"region: [${DB_PASSWORD}\n",
		"listen: ${DB_PASSWORD}\n",
		"instances:\n  - id: rm-x\n    engine: ${DB_PASSWORD}\n    dsn: x\n",
	} {
		_, err := ParseConfig([]byte(doc), env)
		if err == nil {
			t.Errorf("%q parsed", doc)
		} else if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), pw[:8]) {
			t.Errorf("%q: the error shows the password: %v", doc, err)
		} else if !strings.Contains(err.Error(), "${DB_PASSWORD}") && !strings.Contains(err.Error(), "…") {
			t.Logf("%q: %v", doc, err)
		}
	}
}

func TestClonesConfig(t *testing.T) {
	env := func(string) string { return "" }
	c, err := ParseConfig([]byte("dataDir: /srv/rb\n"), env)
	if err != nil || c.Clones != nil {
		t.Fatalf("clones are off without a clones section: %+v %v", c.Clones, err)
	}
	c, err = ParseConfig([]byte("dataDir: /srv/rb\nclones:\n  ports: \"34000-34009\"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cc := c.Clones; cc.Dir != "/srv/rb/clones" || cc.Bind != "127.0.0.1" || cc.MaxClones != 2 || cc.firstPort != 34000 || cc.lastPort != 34009 {
		t.Errorf("defaults: %+v", cc)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"clones:\n  dir: /x\n", "clones.ports: missing"},
		{"clones:\n  ports: \"34000\"\n", "clones.ports \"34000\""},
		{"clones:\n  ports: \"34009-34000\"\n", "clones.ports"},
		{"clones:\n  ports: \"80-90\"\n", "from 1024 to 65535"},
		{"clones:\n  ports: \"34000-70000\"\n", "clones.ports"},
		{"clones:\n  ports: \"34000-34001\"\n  maxClones: 3\n", "clones.maxClones 3: the range"},
		{"clones:\n  ports: \"34000-34099\"\n  maxClones: 65\n", "clones.maxClones 65: must be 1 to 64"},
		{"clones:\n  ports: \"34000-34099\"\n  bind: localhost\n", "clones.bind \"localhost\""},
		{"clones:\n  ports: \"34000-34099\"\n  max: 3\n", "field max not found"},
	} {
		if _, err := ParseConfig([]byte(bad.yaml), env); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

func TestDrillsConfig(t *testing.T) {
	env := func(string) string { return "" }
	c, err := ParseConfig([]byte("dataDir: /srv/rb\ninstances:\n  - id: rm-a\n    engine: MariaDB\n    dsn: \"u:p@tcp(h:3306)/\"\n    drills:\n      enabled: true\n  - id: rm-b\n    engine: MariaDB\n    dsn: \"u:p@tcp(h:3306)/\"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Drills.Dir != "/srv/rb/drills" || c.Drills.Timeout != Duration(time.Hour) {
		t.Errorf("defaults: %+v", c.Drills)
	}
	if d := c.Instances[0].Drills; d == nil || !d.Enabled || d.Schedule != DrillAfterEachSet {
		t.Errorf("rm-a's drills: %+v", d)
	}
	if c.Instances[1].Drills != nil {
		t.Errorf("rm-b has drills without asking: %+v", c.Instances[1].Drills)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"instances:\n  - id: rm-a\n    engine: MariaDB\n    dsn: \"u:p@tcp(h:3306)/\"\n    drills:\n      schedule: hourly\n", "instances[0].drills.schedule \"hourly\""},
		{"drills:\n  timeout: 10ms\n", "drills.timeout 10ms: must be at least 1s"},
	} {
		if _, err := ParseConfig([]byte(bad.yaml), env); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

// TestNodeConfig: node.id defaults to the hostname and is validated, as is
// node.lease.
func TestNodeConfig(t *testing.T) {
	env := func(string) string { return "" }
	defer func(h func() (string, error)) { hostname = h }(hostname)
	hostname = func() (string, error) { return "db1.example", nil }
	c, err := ParseConfig([]byte("{}"), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.ID != "db1.example" || time.Duration(c.Node.Lease) != 30*time.Second {
		t.Errorf("defaults: %+v", c.Node)
	}
	c, err = ParseConfig([]byte("node:\n  id: node-b\n  lease: 5s\n"), env)
	if err != nil || c.Node.ID != "node-b" || time.Duration(c.Node.Lease) != 5*time.Second {
		t.Errorf("set: %+v %v", c, err)
	}
	hostname = func() (string, error) { return "bad host!", nil }
	for _, bad := range []struct{ yaml, want string }{
		{"{}", `the hostname "bad host!" is not a valid node id: set node.id`},
		{"node:\n  id: -x\n", `node.id "-x": use 1-63 letters`},
		{"node:\n  id: a/b\n", `node.id "a/b"`},
		{"node:\n  id: n1\n  lease: 1s\n", "node.lease 1s: must be between 2s and 10m"},
	} {
		if _, err := ParseConfig([]byte(bad.yaml), env); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

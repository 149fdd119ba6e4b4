package postgres

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn      string
		env      []string
		password string
		database string
	}{
		{"postgres://backup:s%3Ac%40r%2Fet@db.example.com:6543/shop?sslmode=require&application_name=x",
			[]string{"PGAPPNAME=x", "PGHOST=db.example.com", "PGPORT=6543", "PGSSLMODE=require", "PGUSER=backup"}, "s:c@r/et", "shop"},
		{"postgresql://u@h1:5432,h2:5433,[::1]/d%20b?connect_timeout=3",
			[]string{"PGCONNECT_TIMEOUT=3", "PGHOST=h1,h2,::1", "PGPORT=5432,5433,", "PGUSER=u"}, "", "d b"},
		{"postgres://%2Fvar%2Frun%2Fpostgresql/app", []string{"PGHOST=/var/run/postgresql"}, "", "app"},
		{"postgres:///app?host=/tmp&user=me&password=pw&search_path=a%20b&ssl=true",
			[]string{"PGHOST=/tmp", `PGOPTIONS=-c search_path=a\ b`, "PGSSLMODE=require", "PGUSER=me"}, "pw", "app"},
		{"postgres://h/", []string{"PGHOST=h"}, "", ""},
	} {
		p, err := parseDSN(tc.dsn)
		if err != nil {
			t.Errorf("%s: %v", tc.dsn, err)
			continue
		}
		if !slices.Equal(p.env, tc.env) || p.password != tc.password || p.database != tc.database {
			t.Errorf("%s:\n got env %q password %q database %q\nwant env %q password %q database %q",
				tc.dsn, p.env, p.password, p.database, tc.env, tc.password, tc.database)
		}
	}
	for _, bad := range []string{"host=x user=y password=secret", "mysql://u:secret@h/db", "postgres://u:sec%zzret@h/db"} {
		_, err := parseDSN(bad)
		if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sec%zzret") {
			t.Errorf("parseDSN(%q) = %v, want an error without the password", bad, err)
		}
	}
}

func TestPgpassAndConninfo(t *testing.T) {
	if got := pgpassLine(`a:b\c d`); got != "*:*:*:*:a\\:b\\\\c d\n" {
		t.Errorf("pgpassLine = %q", got)
	}
	if got := conninfoDB(`it's a\b`); got != `dbname='it\'s a\\b'` {
		t.Errorf("conninfoDB = %q", got)
	}
}

func TestRedactor(t *testing.T) {
	r := newRedactor("p w/%")
	err := r.err(fmt.Errorf("wrapped: %w", errors.New("bad p w/% and p%20w%2F%25 and p+w%2F%25")))
	if strings.Contains(err.Error(), "p w") || strings.Contains(err.Error(), "p%20w") || strings.Contains(err.Error(), "p+w") {
		t.Errorf("redacted: %v", err)
	}
	if newRedactor("").err(errors.New("x")).Error() != "x" {
		t.Error("empty password changed a message")
	}
}

func TestVersions(t *testing.T) {
	for out, want := range map[string]string{
		"pg_dump (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n": "15",
		"pg_dump (PostgreSQL) 9.6.24\n":                           "9.6",
		"pg_dump (PostgreSQL) 17beta1\n":                          "17",
	} {
		v, err := parseToolVersion(out)
		if err != nil || v.String() != want {
			t.Errorf("parseToolVersion(%q) = %v, %v; want %s", out, v, err, want)
		}
	}
	for num, want := range map[int]string{150010: "15", 90624: "9.6", 100023: "10", 180000: "18"} {
		if v := versionFromNum(num); v.String() != want {
			t.Errorf("versionFromNum(%d) = %s, want %s", num, v, want)
		}
	}
	if versionFromNum(90624) >= versionFromNum(100000) {
		t.Error("9.6 sorts after 10")
	}
}

func TestOwnRoleLines(t *testing.T) {
	re := ownRoleLines("postgres")
	for line, want := range map[string]bool{
		"CREATE ROLE postgres;\n":                               true,
		"ALTER ROLE postgres WITH SUPERUSER PASSWORD 'x';\n":    true,
		`ALTER ROLE "postgres" WITH LOGIN;` + "\n":              true,
		"CREATE ROLE postgres2;\n":                              false,
		"ALTER ROLE postgres SET search_path TO 'x';\n":         false,
		"GRANT pg_read_all_data TO postgres GRANTED BY x;\n":    false,
		"ALTER ROLE postgres_admin WITH SUPERUSER PASSWORD;\n":  false,
		`ALTER ROLE "Post""gres" WITH LOGIN;` + "\n":            false,
		"-- ALTER ROLE postgres WITH SUPERUSER PASSWORD 'x';\n": false,
	} {
		if re.MatchString(line) != want {
			t.Errorf("%q: match %v, want %v", line, !want, want)
		}
	}
	if !ownRoleLines(`Post"gres`).MatchString(`ALTER ROLE "Post""gres" WITH LOGIN;`) {
		t.Error("quoted role not matched")
	}
}

func TestChildEnvMinimal(t *testing.T) {
	t.Setenv("RDSBACKUP_MASTER_KEY", "key")
	t.Setenv("PGPASSWORD", "from-the-service")
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("PATH", "/usr/bin")
	env := childEnv([]string{"PGHOST=db", "PGUSER=backup"}, []string{"PGPASSFILE=/tmp/x/.pgpass"})
	want := map[string]bool{"PATH=/usr/bin": true, "LC_MESSAGES=C": true, "PGHOST=db": true, "PGUSER=backup": true,
		"PGPASSFILE=/tmp/x/.pgpass": true, "PGAPPNAME=rdsbackup": true, "PGCONNECT_TIMEOUT=10": true}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if want[kv] {
			delete(want, kv)
		} else if name != "HOME" && name != "TMPDIR" && name != "TZ" && name != "LANG" && !strings.HasPrefix(name, "LC_") || name == "LC_ALL" {
			t.Errorf("unexpected %s", kv)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing %v from %q", want, env)
	}
}

package mysql_test

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	drv "github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
)

func TestDumpArgs(t *testing.T) {
	const pw = "s3cret-dump-pw"
	args := mysql.DumpArgs("/tmp/x/client.cnf", "-odd db")
	if args[0] != "--defaults-extra-file=/tmp/x/client.cnf" {
		t.Errorf("the option file must come first: %q", args)
	}
	for _, a := range args {
		if strings.Contains(a, pw) || strings.Contains(strings.ToLower(a), "password") {
			t.Errorf("argument %q carries a password", a)
		}
	}
	if slices.Contains(args, "--databases") || slices.Contains(args, "-B") {
		t.Errorf("--databases would tie the dump to its database name: %q", args)
	}
	for _, want := range []string{"--single-transaction", "--quick", "--routines", "--triggers", "--events", "--hex-blob",
		"--default-character-set=utf8mb4", "--skip-dump-date"} {
		if !slices.Contains(args, want) {
			t.Errorf("missing %s in %q", want, args)
		}
	}
	// A database name that looks like an option stays a name.
	if n := len(args); args[n-2] != "--" || args[n-1] != "-odd db" {
		t.Errorf("the database must follow --: %q", args)
	}
}

// TestOptionFileQuoting checks that any password survives the option file:
// my_print_defaults shows what the tools read from it.
func TestOptionFileQuoting(t *testing.T) {
	printer, err := exec.LookPath("my_print_defaults")
	if err != nil {
		t.Skip("my_print_defaults is not installed")
	}
	for _, pw := range []string{
		`mdb pw:@/%'"$`,
		`hash#semi;colon`,
		`back\slash\`,
		`"quoted"`,
		`'single'`,
		" lead and trail ",
		"tab\tnew\nline\rcr",
		`\n not an escape \s \b`,
		"ünïcødé 🎉",
		"",
	} {
		e := &mysql.Engine{Flavor: rdsbackup.EngineMariaDB}
		text, err := e.OptionFileText(dsnWith("us#er", pw, "tcp", "db.example:3307"))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "c.cnf")
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(printer, "--defaults-file="+f, "client").Output()
		if err != nil {
			t.Fatalf("my_print_defaults: %v\n%s", err, text)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n--") {
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "--"), "=")
			got[k] = v
		}
		if got["password"] != pw {
			t.Errorf("password %q reads back as %q from\n%s", pw, got["password"], text)
		}
		if got["host"] != "db.example" || got["port"] != "3307" || got["loose-protocol"] != "TCP" {
			t.Errorf("connection options: %q", got)
		}
	}
}

// dsnWith builds a DSN with the driver's own formatter.
func dsnWith(user, pw, net, addr string) string {
	c := drv.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, pw, net, addr
	return c.FormatDSN()
}

func TestOptionFileConnection(t *testing.T) {
	e := &mysql.Engine{Flavor: rdsbackup.EngineMariaDB}
	text, err := e.OptionFileText("root:pw@unix(/run/my sql/s.sock)/db?tls=true")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`socket="/run/my sql/s.sock"`, `loose-protocol="SOCKET"`, "loose-ssl\n", `loose-ssl-mode="VERIFY_IDENTITY"`, `max-allowed-packet="1G"`} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
	if strings.Contains(text, "host=") || strings.Contains(text, "gtid") {
		t.Errorf("unexpected options in\n%s", text)
	}

	e = &mysql.Engine{Flavor: rdsbackup.EngineMySQL}
	text, err = e.OptionFileText("root:pw@tcp([::1]:3306)/")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`host="::1"`, `port="3306"`, `loose-set-gtid-purged="OFF"`} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s in\n%s", want, text)
		}
	}
	if strings.Contains(text, "ssl") {
		t.Errorf("no TLS option was asked for:\n%s", text)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{
		"10.11.19-MariaDB-0+deb12u1-log": "10.11",
		"8.0.36":                         "8.0",
		"8.4.0-commercial":               "8.4",
		"11.4.2-MariaDB":                 "11.4",
		"5.7.44-log":                     "5.7",
	} {
		if got, err := mysql.ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := mysql.ParseVersion("garbage"); err == nil {
		t.Error("ParseVersion(garbage) succeeded")
	}
}

func TestTail(t *testing.T) {
	if got := mysql.Tail(100, "one\n", "two\n"); got != "one\ntwo" {
		t.Errorf("short: %q", got)
	}
	long := strings.Repeat("x", 50) + "\nfirst kept line\nlast line\n"
	if got := mysql.Tail(30, long); got != "…first kept line\nlast line" {
		t.Errorf("cut at a line: %q", got)
	}
	var chunks []string
	for i := 0; i < 1000; i++ {
		chunks = append(chunks, "line ", strings.Repeat("é", i%7), "\n")
	}
	chunks = append(chunks, "the error\n")
	got := mysql.Tail(64, chunks...)
	if len(got) > 64+len("…") || !strings.HasSuffix(got, "the error") || !strings.HasPrefix(got, "…") {
		t.Errorf("many chunks: %q", got)
	}
	if got := mysql.Tail(4, "ééé"); !strings.HasPrefix(got, "…") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("UTF-8 cut: %q", got)
	}
}

func TestRedact(t *testing.T) {
	if got := mysql.Redact("error near 'hunter2hunter2'", "hunter2hunter2"); strings.Contains(got, "hunter2") {
		t.Errorf("not redacted: %q", got)
	}
	// Short passwords are left alone: blanking them would reveal them.
	if got := mysql.Redact("Access denied for user 'root'", "root"); got != "Access denied for user 'root'" {
		t.Errorf("short password redacted: %q", got)
	}
}

func TestWithHeader(t *testing.T) {
	const header = "HEADER;\n"
	for in, want := range map[string]string{
		"":       header,
		"-- x\n": header + "-- x\n",
		"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump\n": "/*M!999999\\- enable the sandbox mode */ \n" + header + "-- MariaDB dump\n",
		"/*M!999999\\- no newline":                                     "/*M!999999\\- no newline" + header,
		"/*M!9":                                                        header + "/*M!9",
	} {
		// One byte at a time, as a slow pipe might deliver it.
		got, err := io.ReadAll(mysql.WithHeader(iotest.OneByteReader(strings.NewReader(in)), header))
		if err != nil || string(got) != want {
			t.Errorf("withHeader(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// A read error is not swallowed.
	errBroken := errors.New("broken")
	r := mysql.WithHeader(io.MultiReader(strings.NewReader("/*M!999999\\- x"), iotest.ErrReader(errBroken)), header)
	if _, err := io.ReadAll(r); !errors.Is(err, errBroken) {
		t.Errorf("error = %v, want %v", err, errBroken)
	}
}

// TestPhysicalPosition: the binlog_pos line of xtrabackup_info (or of
// mariadb_backup_info, its later name), with or without a GTID; none when
// the binary log was off; an error when the file is missing.
func TestPhysicalPosition(t *testing.T) {
	write := func(name, body string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	info := "tool_name = mariadb-backup\nlock_time = 1796303942\nbinlog_pos = filename 'mariadb-bin.000012', position '803', GTID of the last change '0-5-3,1-5-9'\ninnodb_from_lsn = 0\n"
	cases := []struct {
		dir  string
		want rdsbackup.LogPosition
	}{
		{write("xtrabackup_info", info), rdsbackup.LogPosition{File: "mariadb-bin.000012", Offset: 803, GTID: "0-5-3,1-5-9"}},
		{write("mariadb_backup_info", "binlog_pos = filename 'b.000001', position '4'\n"), rdsbackup.LogPosition{File: "b.000001", Offset: 4}},
		{write("xtrabackup_info", "tool_name = mariadb-backup\ninnodb_from_lsn = 0\n"), rdsbackup.LogPosition{}},
	}
	for i, c := range cases {
		got, err := mysql.PhysicalPosition(c.dir)
		if err != nil || got != c.want {
			t.Errorf("case %d: %+v, %v; want %+v", i, got, err, c.want)
		}
	}
	if _, err := mysql.PhysicalPosition(t.TempDir()); err == nil {
		t.Error("no info file: no error")
	}
}

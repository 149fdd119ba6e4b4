package main

// The aliyun CLI (3.4) as the tests emulate it, for the commands the demo
// and the README print: the words a shell passes it, the HTTP scheme it
// picks, and its --pager loop. The CLI itself is not installed here; the
// behaviour is aliyun-cli v3.4.11's openapi/rpc.go and openapi/pager.go.

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
)

// aliyunCommands returns the aliyun commands in text, each with its
// backslash-continued lines joined.
func aliyunCommands(text string) []string {
	var out []string
	var cur strings.Builder
	in := false
	for l := range strings.Lines(text) {
		l = strings.TrimSpace(l)
		if !in && !strings.HasPrefix(l, "aliyun ") {
			continue
		}
		in = true
		part, more := strings.CutSuffix(l, `\`)
		cur.WriteString(part + " ")
		if !more {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
			in = false
		}
	}
	return out
}

// aliyunCommand is a parsed aliyun command line.
type aliyunCommand struct {
	Line         string
	Product, API string
	Flags        map[string][]string // the CLI's own flags (--endpoint, --pager, …)
	Params       url.Values          // the API's parameters (--DBInstanceId, …)
}

// aliyunSwitches are the CLI flags without a value; --pager takes any
// number of words.
var aliyunSwitches = map[string]bool{"insecure": true, "secure": true}

// shellWord matches words a shell passes on unchanged, or a "$VAR"
// reference (expanded from env).
var shellWord = regexp.MustCompile(`^(?:[A-Za-z0-9._:/=,-]+|"\$[A-Z_]+")$`)

// parseAliyunCommand splits line as a shell would (for the words it
// allows), with "$VAR" taken from env.
func parseAliyunCommand(t testing.TB, line string, env ...string) aliyunCommand {
	t.Helper()
	vars := map[string]string{}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	var words []string
	for _, w := range strings.Fields(line) {
		if !shellWord.MatchString(w) {
			t.Fatalf("the aliyun command has a word a shell would change: %q in %s", w, line)
		}
		if strings.HasPrefix(w, `"$`) {
			name := strings.Trim(w, `"$`)
			v, ok := vars[name]
			if !ok {
				t.Fatalf("the aliyun command refers to $%s, which the test does not set: %s", name, line)
			}
			w = v
		}
		words = append(words, w)
	}
	if len(words) < 3 || words[0] != "aliyun" {
		t.Fatalf("not an aliyun PRODUCT API command: %s", line)
	}
	cmd := aliyunCommand{Line: line, Product: words[1], API: words[2], Flags: map[string][]string{}, Params: url.Values{}}
	for i := 3; i < len(words); i++ {
		name, ok := strings.CutPrefix(words[i], "--")
		if !ok {
			t.Fatalf("the aliyun command has a stray word %q: %s", words[i], line)
		}
		var vals []string
		for i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
			i++
			vals = append(vals, words[i])
		}
		switch {
		case aliyunSwitches[name]:
			if len(vals) > 0 {
				t.Fatalf("--%s takes no value: %s", name, line)
			}
			cmd.Flags[name] = nil
		case name == "pager":
			cmd.Flags[name] = vals
		case len(vals) != 1:
			t.Fatalf("--%s has %d values, want 1: %s", name, len(vals), line)
		case name == "endpoint" || name == "region" || name == "access-key-id" || name == "access-key-secret":
			cmd.Flags[name] = vals
		default:
			cmd.Params[name] = vals
		}
	}
	return cmd
}

// aliyunCall makes the command's call as the CLI does: signed RPC over
// HTTPS unless --insecure (and --secure wins), then, with --pager, the
// pager's loop. It returns the body the CLI would print.
func aliyunCall(t testing.TB, cmd aliyunCommand) []byte {
	t.Helper()
	if cmd.Product != "rds" {
		t.Fatalf("product %s: only rds is emulated", cmd.Product)
	}
	one := func(name string) string { v := cmd.Flags[name]; return strings.Join(v, "") }
	scheme := "https"
	if _, ok := cmd.Flags["insecure"]; ok {
		scheme = "http"
	}
	if _, ok := cmd.Flags["secure"]; ok {
		scheme = "https"
	}
	client, err := rds.NewClientWithAccessKey(one("region"), one("access-key-id"), one("access-key-secret"))
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{}
	for k, v := range cmd.Params {
		params[k] = v[0]
	}
	call := func() []byte {
		t.Helper()
		req := requests.NewCommonRequest()
		req.Method, req.Scheme, req.Domain = "POST", scheme, one("endpoint")
		req.Product, req.Version, req.ApiName = "Rds", "2014-08-15", cmd.API
		for k, v := range params {
			req.QueryParams[k] = v
		}
		resp, err := client.ProcessCommonRequest(req)
		if err != nil {
			t.Fatalf("%s over %s: %v", cmd.Line, scheme, err)
		}
		return resp.GetHttpContentBytes()
	}
	pagerArgs, paged := cmd.Flags["pager"]
	if !paged {
		return call()
	}

	// The pager's fields, with its defaults; "NextToken=" turns the token
	// off, and then it pages by number until ceil(total/size) pages.
	fields := map[string]string{"PageNumber": "PageNumber", "PageSize": "PageSize", "TotalCount": "TotalCount", "NextToken": "NextToken", "path": ""}
	for _, a := range pagerArgs {
		k, v, ok := strings.Cut(a, "=")
		if _, known := fields[k]; !ok || !known {
			t.Fatalf("--pager %s: not FIELD=EXPR with a field of the pager", a)
		}
		fields[k] = v
	}
	var merged []any
	var collection string
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("%s: the pager is still going after 1000 pages", cmd.Line)
		}
		var body map[string]any
		if err := json.Unmarshal(call(), &body); err != nil {
			t.Fatal(err)
		}
		if collection == "" {
			collection = fields["path"]
			if collection == "" {
				collection = firstNestedArray(body)
			}
			if collection == "" {
				t.Fatalf("%s: the pager finds no collection in %v", cmd.Line, body)
			}
		}
		items, ok := jsonAt(body, strings.TrimSuffix(collection, "[]"))
		list, isList := items.([]any)
		if !ok || !isList {
			t.Fatalf("%s: %s is not a list in %v", cmd.Line, collection, body)
		}
		merged = append(merged, list...)
		if fields["NextToken"] != "" {
			token, _ := jsonAt(body, fields["NextToken"])
			s, _ := token.(string)
			if s == "" {
				break
			}
			params[fields["NextToken"]] = s
			continue
		}
		number := func(field string) float64 {
			t.Helper()
			v, ok := jsonAt(body, fields[field])
			switch v := v.(type) {
			case string:
				f, _ := strconv.ParseFloat(v, 64)
				return f
			case float64:
				return v
			}
			// The CLI panics here (a type assertion on nil).
			t.Fatalf("%s: the pager's %s (%s) is %v (present: %v), not a number", cmd.Line, field, fields[field], v, ok)
			return 0
		}
		total, page, size := number("TotalCount"), number("PageNumber"), number("PageSize")
		if page >= math.Ceil(total/size) {
			break
		}
		params[fields["PageNumber"]] = strconv.Itoa(int(page) + 1)
	}
	path := strings.Split(strings.TrimSuffix(collection, "[]"), ".")
	out := map[string]any{path[len(path)-1]: merged}
	if len(path) > 1 {
		out = map[string]any{path[len(path)-2]: out}
	}
	b, _ := json.Marshal(out)
	return b
}

// firstNestedArray is the pager's guess of the collection: the first list
// one object down ("Items.Backup[]").
func firstNestedArray(body map[string]any) string {
	for k, v := range body {
		if m, ok := v.(map[string]any); ok {
			for k2, v2 := range m {
				if _, ok := v2.([]any); ok {
					return k + "." + k2 + "[]"
				}
			}
		}
	}
	return ""
}

// TestREADMEAliyunCommands runs the README's aliyun commands against a
// service with 230 backups of rm-shop: the plain one lists the first page,
// the --pager one all of them, and the CLI's bare --pager (which the README
// warns about) only the first page.
func TestREADMEAliyunCommands(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := bytes.Cut(readme, []byte("\n## Using the aliyun CLI\n"))
	if !ok {
		t.Fatal(`README.md has no "## Using the aliyun CLI" section`)
	}
	section, _, _ = bytes.Cut(section, []byte("\n## "))
	lines := aliyunCommands(string(section))
	if len(lines) != 2 {
		t.Fatalf("%d aliyun commands in the README's CLI section, want 2 (plain and --pager):\n%s", len(lines), section)
	}

	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-shop"), testEnv(nil))
	const sets = 230
	specs := make([]setSpec, sets)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range specs {
		specs[i] = setSpec{ID: int64(1000 + i), Instance: "rm-shop", Start: base.Add(time.Duration(i) * time.Hour), Mode: rdsbackup.BackupManual, Type: rdsbackup.FullBackup}
	}
	insertSets(t, openCatalog(t, dir), specs...)

	run := func(line string) (aliyunCommand, []any) {
		t.Helper()
		cmd := parseAliyunCommand(t, strings.ReplaceAll(line, DefaultListen, s.Addr),
			"ACCESS_KEY_ID", rootKeyID, "ACCESS_KEY_SECRET", rootKeySecret)
		var body map[string]any
		if err := json.Unmarshal(aliyunCall(t, cmd), &body); err != nil {
			t.Fatal(err)
		}
		list, ok := jsonList(body, "Items.Backup")
		if !ok {
			t.Fatalf("%s: no Items.Backup list in the output", line)
		}
		return cmd, list
	}
	if cmd, list := run(lines[0]); len(list) != 30 || cmd.Flags["pager"] != nil {
		t.Errorf("%s: %d backups, want the first page of 30", lines[0], len(list))
	}
	cmd, list := run(lines[1])
	if cmd.Flags["pager"] == nil || len(list) != sets {
		t.Errorf("%s: %d backups, want all %d", lines[1], len(list), sets)
	}
	seen := map[any]bool{}
	for _, b := range list {
		id, _ := jsonAt(b, "BackupId")
		seen[id] = true
	}
	if len(seen) != sets {
		t.Errorf("%s: %d distinct BackupIds among %d", lines[1], len(seen), len(list))
	}

	bare := regexp.MustCompile(` --pager .*$`).ReplaceAllString(lines[1], " --pager")
	if _, list := run(bare); len(list) != 100 {
		t.Errorf("%s: %d backups; the README says the bare --pager stops after the first page (100)", bare, len(list))
	}
}

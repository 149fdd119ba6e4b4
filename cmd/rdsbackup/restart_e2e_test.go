package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// assertNotInFiles fails if any file under dir contains one of secrets, or
// if none contains control (proof that the files were read).
func assertNotInFiles(t testing.TB, dir, control string, secrets ...string) {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		buf, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = found || bytes.Contains(buf, []byte(control))
		for _, s := range secrets {
			if bytes.Contains(buf, []byte(s)) {
				t.Errorf("%s contains the secret %q in plaintext", path, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("no file under %s contains %q", dir, control)
	}
}

func TestRestartKeepsState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := mixedInstancesYAML + instancesYAML("rm-b1")[len("instances:\n"):]
	s := startService(t, dir, cfg, testEnv(nil))
	db := openCatalog(t, dir)
	insertSets(t, db,
		setSpec{ID: 7001, Instance: "rm-a1", Start: filterBase},
		setSpec{ID: 7002, Instance: "rm-a1", Start: filterBase.Add(time.Hour)},
		setSpec{ID: 7003, Instance: "pg-1", Start: filterBase},
	)
	db.Close()
	root := rootClients(t, s)
	ak, secret := createUserWithKey(t, root, "restart-user")
	doc := policyDocument("Allow", "rds:DescribeBackups", "acs:rds:*:*:dbinstance/rm-a*")
	createPolicy(t, root, "restart-policy", doc)
	attachPolicy(t, root, "restart-policy", "Custom", "restart-user")
	before, err := describeOn(t, newClients(t, s.Addr, ak, secret), "rm-a1")
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()

	s2 := startService(t, dir, cfg, testEnv(nil))
	root = rootClients(t, s2)
	user := newClients(t, s2.Addr, ak, secret)

	// Backup sets.
	after, err := describeOn(t, root, "rm-a1")
	if err != nil {
		t.Fatal(err)
	}
	// Download links name the listener, whose port changed: compare the rest.
	for _, r := range []*rds.DescribeBackupsResponse{before, after} {
		for i := range r.Items.Backup {
			b := &r.Items.Backup[i]
			b.BackupDownloadURL, b.BackupIntranetDownloadURL = "", ""
			for j := range b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem {
				l := &b.BackupDownloadLinkByDB.BackupDownloadLinkByDBItem[j]
				l.DownloadLink, l.IntranetDownloadLink = "", ""
			}
		}
	}
	if got := backupIDs(after); !slices.Equal(got, idStrings(7002, 7001)) || !reflect.DeepEqual(before.Items, after.Items) {
		t.Fatalf("sets after restart: %s\nbefore: %s", after.GetHttpContentString(), before.GetHttpContentString())
	}
	if pg, err := describeOn(t, root, "pg-1"); err != nil || !slices.Equal(backupIDs(pg), idStrings(7003)) {
		t.Fatalf("pg-1 after restart: %v %v", pg, err)
	}

	// RAM: the user, its key (which still authenticates), the policy and
	// the attachment.
	gu := ram.CreateGetUserRequest()
	gu.UserName = "restart-user"
	if _, err := root.RAM.GetUser(gu); err != nil {
		t.Fatalf("GetUser after restart: %v", err)
	}
	lk := ram.CreateListAccessKeysRequest()
	lk.UserName = "restart-user"
	if keys, err := root.RAM.ListAccessKeys(lk); err != nil || len(keys.AccessKeys.AccessKey) != 1 || keys.AccessKeys.AccessKey[0].AccessKeyId != ak {
		t.Fatalf("ListAccessKeys after restart: %v %v", keys, err)
	}
	gp := ram.CreateGetPolicyRequest()
	gp.PolicyName, gp.PolicyType = "restart-policy", "Custom"
	if p, err := root.RAM.GetPolicy(gp); err != nil || p.DefaultPolicyVersion.PolicyDocument != doc || p.Policy.AttachmentCount != 1 {
		t.Fatalf("GetPolicy after restart: %v %v", p, err)
	}
	lp := ram.CreateListPoliciesForUserRequest()
	lp.UserName = "restart-user"
	if ps, err := root.RAM.ListPoliciesForUser(lp); err != nil || len(ps.Policies.Policy) != 1 || ps.Policies.Policy[0].PolicyName != "restart-policy" {
		t.Fatalf("ListPoliciesForUser after restart: %v %v", ps, err)
	}
	if resp, err := describeOn(t, user, "rm-a1"); err != nil || resp.TotalRecordCount != "2" {
		t.Fatalf("the user's key after restart: %v %v", resp, err)
	}
	_, err = describeOn(t, user, "rm-b1")
	wantDenied(t, err, "rds:DescribeBackups", "ImplicitDeny")
	_, err = describeOn(t, newClients(t, s2.Addr, ak, secret+"x"), "rm-a1")
	wantServerError(t, err, "SignatureDoesNotMatch", 400)

	// Instances are registered again from the config.
	if insts, err := root.RDS.DescribeDBInstances(rds.CreateDescribeDBInstancesRequest()); err != nil || insts.TotalRecordCount != 5 {
		t.Fatalf("DescribeDBInstances after restart: %v %v", insts, err)
	}

	s2.Stop()
	// Secrets are encrypted at rest and never logged.
	assertNotInFiles(t, dir, "restart-user", secret, rootKeySecret, dsnPassword)
	for _, out := range []string{s.Stdout.String(), s.Stderr.String(), s2.Stdout.String(), s2.Stderr.String()} {
		for _, sec := range []string{secret, rootKeySecret, dsnPassword} {
			if strings.Contains(out, sec) {
				t.Errorf("service output shows a secret: %s", out)
			}
		}
	}
}

var generatedKeyPattern = regexp.MustCompile(`AccessKeyId:\s+(\S+)\s+AccessKeySecret:\s+(\S+)`)

func TestGeneratedRootKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := func(k string) string { // no root key in the environment
		if k == envMasterKey {
			return testMasterKey
		}
		return ""
	}
	s := startService(t, dir, instancesYAML("rm-a1"), env)
	m := generatedKeyPattern.FindStringSubmatch(s.Stdout.String())
	if m == nil {
		t.Fatalf("no generated key on stdout: %q", s.Stdout.String())
	}
	ak, secret := m[1], m[2]
	if n := strings.Count(s.Stdout.String(), "AccessKeySecret"); n != 1 {
		t.Errorf("the secret is printed %d times", n)
	}
	c := newClients(t, s.Addr, ak, secret)
	if _, err := describeOn(t, c, "rm-a1"); err != nil {
		t.Fatalf("the generated key does not work: %v", err)
	}
	// It is the account's key: RAM actions work too.
	cu := ram.CreateCreateUserRequest()
	cu.UserName = "made-by-generated-root"
	if _, err := c.RAM.CreateUser(cu); err != nil {
		t.Fatalf("CreateUser with the generated key: %v", err)
	}
	s.Stop()

	s2 := startService(t, dir, instancesYAML("rm-a1"), env)
	if out := s2.Stdout.String(); strings.Contains(out, "AccessKeySecret") || out != "" {
		t.Errorf("second start printed: %q", out)
	}
	c = newClients(t, s2.Addr, ak, secret)
	if _, err := describeOn(t, c, "rm-a1"); err != nil {
		t.Fatalf("the generated key after restart: %v", err)
	}
	s2.Stop()

	for _, log := range []string{s.Stderr.String(), s2.Stderr.String()} {
		if strings.Contains(log, secret) {
			t.Errorf("the secret is in the log: %s", log)
		}
	}
	if !strings.Contains(s.Stderr.String(), ak) {
		t.Errorf("the log does not name the generated key id: %s", s.Stderr.String())
	}
	assertNotInFiles(t, dir, ak, secret)
}

func TestWrongMasterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-a1"), testEnv(nil))
	createUserWithKey(t, rootClients(t, s), "mk-user")
	s.Stop()

	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndataDir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("A", len(testMasterKey)-1) + "="
	var stdout, stderr syncBuffer
	m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(map[string]string{envMasterKey: other}),
		Ready: func(string) { t.Error("started with the wrong master key") }}
	if code := m.Run(t.Context(), []string{"serve", "--config", cfg}); code != exitFailed {
		t.Errorf("exit code %d, want %d", code, exitFailed)
	}
	if !strings.Contains(stderr.String(), "master key") || strings.Contains(stderr.String(), other) {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestRootKeyFromEnvironment: a new secret for the same key id in the
// environment replaces the stored one.
func TestRootKeyFromEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-a1"), testEnv(nil))
	if _, err := describeOn(t, rootClients(t, s), "rm-a1"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	const newSecret = "rotatedrootsecret0000000000002"
	s = startService(t, dir, instancesYAML("rm-a1"), testEnv(map[string]string{envAccessKeySecret: newSecret}))
	if _, err := describeOn(t, newClients(t, s.Addr, rootKeyID, newSecret), "rm-a1"); err != nil {
		t.Fatalf("the new secret: %v", err)
	}
	_, err := describeOn(t, rootClients(t, s), "rm-a1")
	wantServerError(t, err, "SignatureDoesNotMatch", 400)
	if s.Stdout.String() != "" {
		t.Errorf("stdout: %q", s.Stdout.String())
	}
	s.Stop()
	assertNotInFiles(t, dir, rootKeyID, newSecret, rootKeySecret)
	if strings.Contains(s.Stderr.String(), newSecret) {
		t.Errorf("the secret is in the log: %s", s.Stderr.String())
	}

	// Another key id in the environment retires the previous root key.
	const otherID, otherSecret = "LTAIrootkeyfortests0002", "rootsecretfortests000000000003"
	s = startService(t, dir, instancesYAML("rm-a1"), testEnv(map[string]string{envAccessKeyID: otherID, envAccessKeySecret: otherSecret}))
	if _, err := describeOn(t, newClients(t, s.Addr, otherID, otherSecret), "rm-a1"); err != nil {
		t.Fatalf("the new root key: %v", err)
	}
	_, err = describeOn(t, newClients(t, s.Addr, rootKeyID, newSecret), "rm-a1")
	wantServerError(t, err, "InvalidAccessKeyId.NotFound", 404)
}

// TestRootKeyEnvironmentErrors: the environment's root key must come as a
// pair and must not be a RAM user's key.
func TestRootKeyEnvironmentErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-a1"), testEnv(nil))
	userKey, userSecret := createUserWithKey(t, rootClients(t, s), "not-root")
	s.Stop()

	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndataDir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env map[string]string) (int, string) {
		var stdout, stderr syncBuffer
		m := &Main{Stdout: &stdout, Stderr: &stderr, Getenv: testEnv(env),
			Ready: func(string) { t.Errorf("started with root key env %v", env) }}
		return m.Run(t.Context(), []string{"serve", "--config", cfg}), stderr.String()
	}
	code, stderr := run(map[string]string{envAccessKeyID: userKey, envAccessKeySecret: userSecret})
	if code != exitFailed || !strings.Contains(stderr, "not-root") || strings.Contains(stderr, userSecret) {
		t.Errorf("a RAM user's key as root: exit %d: %s", code, stderr)
	}
	code, stderr = run(map[string]string{envAccessKeySecret: ""})
	if code != exitFailed || !strings.Contains(stderr, envAccessKeySecret) || strings.Contains(stderr, rootKeySecret) {
		t.Errorf("only the key id: exit %d: %s", code, stderr)
	}
}

package main

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// createUserWithKey makes a RAM user and an access key for it, as root.
func createUserWithKey(t testing.TB, root *clients, name string) (ak, secret string) {
	t.Helper()
	u := ram.CreateCreateUserRequest()
	u.UserName = name
	if _, err := root.RAM.CreateUser(u); err != nil {
		t.Fatalf("CreateUser %s: %v", name, err)
	}
	k := ram.CreateCreateAccessKeyRequest()
	k.UserName = name
	resp, err := root.RAM.CreateAccessKey(k)
	if err != nil {
		t.Fatalf("CreateAccessKey %s: %v", name, err)
	}
	if resp.AccessKey.AccessKeyId == "" || resp.AccessKey.AccessKeySecret == "" || resp.AccessKey.Status != "Active" {
		t.Fatalf("CreateAccessKey: %s", resp.GetHttpContentString())
	}
	return resp.AccessKey.AccessKeyId, resp.AccessKey.AccessKeySecret
}

func createPolicy(t testing.TB, root *clients, name, document string) {
	t.Helper()
	p := ram.CreateCreatePolicyRequest()
	p.PolicyName, p.PolicyDocument, p.Description = name, document, "test policy "+name
	if _, err := root.RAM.CreatePolicy(p); err != nil {
		t.Fatalf("CreatePolicy %s: %v", name, err)
	}
}

func attachPolicy(t testing.TB, root *clients, policy, typ, user string) {
	t.Helper()
	a := ram.CreateAttachPolicyToUserRequest()
	a.PolicyName, a.PolicyType, a.UserName = policy, typ, user
	if _, err := root.RAM.AttachPolicyToUser(a); err != nil {
		t.Fatalf("AttachPolicyToUser %s %s: %v", policy, user, err)
	}
}

func detachPolicy(t testing.TB, root *clients, policy, typ, user string) {
	t.Helper()
	d := ram.CreateDetachPolicyFromUserRequest()
	d.PolicyName, d.PolicyType, d.UserName = policy, typ, user
	if _, err := root.RAM.DetachPolicyFromUser(d); err != nil {
		t.Fatalf("DetachPolicyFromUser %s %s: %v", policy, user, err)
	}
}

func policyDocument(effect, action, resource string) string {
	return `{"Version":"1","Statement":[{"Effect":"` + effect + `","Action":"` + action + `","Resource":"` + resource + `"}]}`
}

func describeOn(t testing.TB, c *clients, instance string) (*rds.DescribeBackupsResponse, error) {
	return describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = instance })
}

// wantDenied asserts Forbidden.RAM with its AccessDeniedDetail.
func wantDenied(t testing.TB, err error, action, noPermissionType string) {
	t.Helper()
	se := wantServerError(t, err, "Forbidden.RAM", 403)
	d := se.AccessDeniedDetail()
	if d == nil {
		t.Fatalf("Forbidden.RAM without AccessDeniedDetail: %v", err)
	}
	if d["NoPermissionType"] != noPermissionType || d["AuthAction"] != action || d["AuthPrincipalType"] != "SubUser" {
		t.Errorf("AccessDeniedDetail %v, want NoPermissionType %s, AuthAction %s, AuthPrincipalType SubUser", d, noPermissionType, action)
	}
}

func TestRAMAuthorization(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML("rm-a1", "rm-a2", "rm-b1"), testEnv(nil))
	insertSets(t, openCatalog(t, dir),
		setSpec{Instance: "rm-a1", Start: filterBase},
		setSpec{Instance: "rm-a2", Start: filterBase},
		setSpec{Instance: "rm-b1", Start: filterBase},
	)
	root := rootClients(t, s)

	ak, secret := createUserWithKey(t, root, "alice")
	alice := newClients(t, s.Addr, ak, secret)

	// Without a policy, everything is implicitly denied.
	_, err := describeOn(t, alice, "rm-a1")
	wantDenied(t, err, "rds:DescribeBackups", "ImplicitDeny")

	createPolicy(t, root, "rds-a-backups", policyDocument("Allow", "rds:DescribeBackups", "acs:rds:*:*:dbinstance/rm-a*"))
	attachPolicy(t, root, "rds-a-backups", "Custom", "alice")

	for _, id := range []string{"rm-a1", "rm-a2"} {
		if resp, err := describeOn(t, alice, id); err != nil {
			t.Fatalf("alice on %s: %v", id, err)
		} else if resp.TotalRecordCount != "1" {
			t.Fatalf("alice on %s: %s", id, resp.GetHttpContentString())
		}
	}
	_, err = describeOn(t, alice, "rm-b1")
	wantDenied(t, err, "rds:DescribeBackups", "ImplicitDeny")

	// The raw body has AccessDeniedDetail as a JSON object.
	r := rawCall(t, s.Addr, signV2(http.MethodPost, describeBackupsParams("DBInstanceId", "rm-b1"), ak, secret, time.Now()))
	wantRawError(t, r, "Forbidden.RAM", 403)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatal(err)
	}
	var detail map[string]string
	if err := json.Unmarshal(raw["AccessDeniedDetail"], &detail); err != nil {
		t.Fatalf("AccessDeniedDetail is not an object of strings: %s", r.Body)
	}
	if detail["NoPermissionType"] != "ImplicitDeny" || detail["AuthAction"] != "rds:DescribeBackups" ||
		detail["AuthPrincipalDisplayName"] != "alice" || detail["AuthPrincipalOwnerId"] != "1234567890" {
		t.Errorf("AccessDeniedDetail: %s", raw["AccessDeniedDetail"])
	}

	// … and in XML, as elements.
	r = rawCall(t, s.Addr, signV2(http.MethodPost, describeBackupsParams("DBInstanceId", "rm-b1", "Format", "XML"), ak, secret, time.Now()))
	var xe struct {
		Code               string
		AccessDeniedDetail struct{ NoPermissionType, AuthAction string }
	}
	if err := xml.Unmarshal(r.Body, &xe); err != nil || r.Status != 403 || xe.Code != "Forbidden.RAM" ||
		xe.AccessDeniedDetail.NoPermissionType != "ImplicitDeny" || xe.AccessDeniedDetail.AuthAction != "rds:DescribeBackups" {
		t.Errorf("XML Forbidden.RAM (%v): %s", err, r.Body)
	}

	// The policy allows DescribeBackups only.
	_, err = alice.RDS.DescribeDBInstances(rds.CreateDescribeDBInstancesRequest())
	wantDenied(t, err, "rds:DescribeDBInstances", "ImplicitDeny")
	cu := ram.CreateCreateUserRequest()
	cu.UserName = "mallory"
	_, err = alice.RAM.CreateUser(cu)
	wantDenied(t, err, "ram:CreateUser", "ImplicitDeny")

	// An explicit Deny overrides the Allow, for its resource only.
	createPolicy(t, root, "deny-a1", policyDocument("Deny", "rds:DescribeBackups", "acs:rds:*:*:dbinstance/rm-a1"))
	attachPolicy(t, root, "deny-a1", "Custom", "alice")
	_, err = describeOn(t, alice, "rm-a1")
	wantDenied(t, err, "rds:DescribeBackups", "ExplicitDeny")
	if _, err := describeOn(t, alice, "rm-a2"); err != nil {
		t.Fatalf("rm-a2 after the deny on rm-a1: %v", err)
	}
	detachPolicy(t, root, "deny-a1", "Custom", "alice")
	if _, err := describeOn(t, alice, "rm-a1"); err != nil {
		t.Fatalf("rm-a1 after detaching the deny: %v", err)
	}

	// The system policy AliyunRDSReadOnlyAccess allows Describe* on all instances.
	bak, bsecret := createUserWithKey(t, root, "bob")
	bob := newClients(t, s.Addr, bak, bsecret)
	attachPolicy(t, root, "AliyunRDSReadOnlyAccess", "System", "bob")
	for _, id := range []string{"rm-a1", "rm-b1"} {
		if _, err := describeOn(t, bob, id); err != nil {
			t.Fatalf("bob on %s: %v", id, err)
		}
	}
	if resp, err := bob.RDS.DescribeDBInstances(rds.CreateDescribeDBInstancesRequest()); err != nil || resp.TotalRecordCount != 3 {
		t.Fatalf("bob DescribeDBInstances: %v %v", resp, err)
	}
	attr := rds.CreateDescribeDBInstanceAttributeRequest()
	attr.DBInstanceId = "rm-b1"
	if _, err := bob.RDS.DescribeDBInstanceAttribute(attr); err != nil {
		t.Fatalf("bob DescribeDBInstanceAttribute: %v", err)
	}
	// … but no RAM action.
	_, err = bob.RAM.CreateUser(cu)
	wantDenied(t, err, "ram:CreateUser", "ImplicitDeny")
	_, err = bob.RAM.ListUsers(ram.CreateListUsersRequest())
	wantDenied(t, err, "ram:ListUsers", "ImplicitDeny")
	get := ram.CreateGetUserRequest()
	get.UserName = "mallory"
	if _, err := root.RAM.GetUser(get); err == nil {
		t.Fatal("a denied CreateUser created the user")
	}

	// A disabled key is refused, and works again once reactivated.
	setKeyStatus := func(status string) {
		t.Helper()
		u := ram.CreateUpdateAccessKeyRequest()
		u.UserName, u.UserAccessKeyId, u.Status = "alice", ak, status
		if _, err := root.RAM.UpdateAccessKey(u); err != nil {
			t.Fatalf("UpdateAccessKey %s: %v", status, err)
		}
	}
	setKeyStatus("Inactive")
	_, err = describeOn(t, alice, "rm-a1")
	wantServerError(t, err, "Forbidden.AccessKeyDisabled", 403)
	setKeyStatus("Active")
	if _, err := describeOn(t, alice, "rm-a1"); err != nil {
		t.Fatalf("after reactivation: %v", err)
	}

	// A user with ram:* may manage RAM, but not RDS.
	cak, csecret := createUserWithKey(t, root, "carol")
	carol := newClients(t, s.Addr, cak, csecret)
	createPolicy(t, root, "ram-admin", policyDocument("Allow", "ram:*", "*"))
	attachPolicy(t, root, "ram-admin", "Custom", "carol")
	cu = ram.CreateCreateUserRequest()
	cu.UserName = "dave"
	if _, err := carol.RAM.CreateUser(cu); err != nil {
		t.Fatalf("carol CreateUser: %v", err)
	}
	_, err = describeOn(t, carol, "rm-a1")
	wantDenied(t, err, "rds:DescribeBackups", "ImplicitDeny")
}

func TestRAMMalformedPolicyDocument(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), "", testEnv(nil))
	tests := []struct {
		name, document string
		mention        []string // the message names the problem
	}{
		{"not JSON", `{"Version":"1","Statement":[`, nil},
		{"not an object", `["Allow"]`, []string{"object"}},
		{"wrong version", `{"Version":"2","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, []string{"Version"}},
		{"no version", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, []string{"Version"}},
		{"no statement", `{"Version":"1"}`, []string{"Statement"}},
		{"empty statement list", `{"Version":"1","Statement":[]}`, []string{"Statement"}},
		{"lowercase effect", `{"Version":"1","Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}`, []string{"Effect"}},
		{"no action", `{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}`, []string{"Action"}},
		{"bad action", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"DescribeBackups","Resource":"*"}]}`, []string{"Action", "DescribeBackups"}},
		{"no resource", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*"}]}`, []string{"Resource"}},
		{"bad resource", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*","Resource":"rm-a1"}]}`, []string{"Resource", "rm-a1"}},
		{"unknown element", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*","Resource":"*","Principal":"*"}]}`, []string{"Principal"}},
		{"unknown condition operator", `{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*","Resource":"*","Condition":{"IpAddr":{"acs:SourceIp":"10.0.0.0/8"}}}]}`, []string{"IpAddr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := rootClients(t, s) // an SDK client is not safe for concurrent use
			p := ram.CreateCreatePolicyRequest()
			p.PolicyName, p.PolicyDocument = "bad-"+strings.ReplaceAll(tt.name, " ", "-"), tt.document
			_, err := root.RAM.CreatePolicy(p)
			se := wantServerError(t, err, "MalformedPolicyDocument", 400)
			for _, m := range tt.mention {
				if !strings.Contains(se.Message(), m) {
					t.Errorf("message %q does not mention %q", se.Message(), m)
				}
			}
			g := ram.CreateGetPolicyRequest()
			g.PolicyName, g.PolicyType = p.PolicyName, "Custom"
			_, err = root.RAM.GetPolicy(g)
			wantServerError(t, err, "EntityNotExist.Policy", 404)
		})
	}
}

// TestRAMActions runs every RAM action with its main error codes.
func TestRAMActions(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), "", testEnv(nil))
	root := rootClients(t, s)
	c := root.RAM

	// Users.
	cu := ram.CreateCreateUserRequest()
	cu.UserName, cu.DisplayName, cu.Email, cu.Comments = "erin", "Erin E.", "erin@example.com", "test user"
	created, err := c.CreateUser(cu)
	if err != nil {
		t.Fatal(err)
	}
	checkRequestID(t, created, created.RequestId)
	if created.User.UserName != "erin" || created.User.UserId == "" || created.User.DisplayName != "Erin E." || created.User.CreateDate == "" {
		t.Fatalf("CreateUser: %s", created.GetHttpContentString())
	}
	_, err = c.CreateUser(cu)
	wantServerError(t, err, "EntityAlreadyExists.User", 409)
	bad := ram.CreateCreateUserRequest()
	bad.UserName = "no spaces allowed"
	_, err = c.CreateUser(bad)
	wantServerError(t, err, "InvalidParameter", 400)
	_, err = c.CreateUser(ram.CreateCreateUserRequest())
	wantServerError(t, err, "MissingParameter", 400)

	gu := ram.CreateGetUserRequest()
	gu.UserName = "erin"
	got, err := c.GetUser(gu)
	if err != nil {
		t.Fatal(err)
	}
	if got.User.UserId != created.User.UserId || got.User.Email != "erin@example.com" || got.User.Comments != "test user" {
		t.Fatalf("GetUser: %s", got.GetHttpContentString())
	}
	gu.UserName = "nobody"
	_, err = c.GetUser(gu)
	wantServerError(t, err, "EntityNotExist.User", 404)

	cu2 := ram.CreateCreateUserRequest()
	cu2.UserName = "frank"
	if _, err := c.CreateUser(cu2); err != nil {
		t.Fatal(err)
	}
	lu, err := c.ListUsers(ram.CreateListUsersRequest())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range lu.Users.User {
		names = append(names, u.UserName)
	}
	if !slices.Equal(names, []string{"erin", "frank"}) || lu.IsTruncated {
		t.Fatalf("ListUsers: %s", lu.GetHttpContentString())
	}
	lr := ram.CreateListUsersRequest()
	lr.MaxItems = requests.NewInteger(1)
	page1, err := c.ListUsers(lr)
	if err != nil || len(page1.Users.User) != 1 || !page1.IsTruncated || page1.Marker == "" {
		t.Fatalf("ListUsers page 1: %v %v", page1, err)
	}
	lr = ram.CreateListUsersRequest()
	lr.MaxItems, lr.Marker = requests.NewInteger(1), page1.Marker
	page2, err := c.ListUsers(lr)
	if err != nil || len(page2.Users.User) != 1 || page2.Users.User[0].UserName != "frank" || page2.IsTruncated {
		t.Fatalf("ListUsers page 2: %v %v", page2, err)
	}

	// Access keys.
	ck := ram.CreateCreateAccessKeyRequest()
	ck.UserName = "erin"
	key, err := c.CreateAccessKey(ck)
	if err != nil {
		t.Fatal(err)
	}
	ck.UserName = "nobody"
	_, err = c.CreateAccessKey(ck)
	wantServerError(t, err, "EntityNotExist.User", 404)

	listKeys := func() []ram.AccessKey {
		t.Helper()
		lk := ram.CreateListAccessKeysRequest()
		lk.UserName = "erin"
		resp, err := c.ListAccessKeys(lk)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range resp.AccessKeys.AccessKey {
			if k.AccessKeySecret != "" {
				t.Fatalf("ListAccessKeys shows a secret: %s", resp.GetHttpContentString())
			}
		}
		return resp.AccessKeys.AccessKey
	}
	if ks := listKeys(); len(ks) != 1 || ks[0].AccessKeyId != key.AccessKey.AccessKeyId || ks[0].Status != "Active" {
		t.Fatalf("ListAccessKeys: %+v", ks)
	}
	lk := ram.CreateListAccessKeysRequest()
	lk.UserName = "nobody"
	_, err = c.ListAccessKeys(lk)
	wantServerError(t, err, "EntityNotExist.User", 404)

	uk := ram.CreateUpdateAccessKeyRequest()
	uk.UserName, uk.UserAccessKeyId, uk.Status = "erin", key.AccessKey.AccessKeyId, "Inactive"
	if _, err := c.UpdateAccessKey(uk); err != nil {
		t.Fatal(err)
	}
	if ks := listKeys(); len(ks) != 1 || ks[0].Status != "Inactive" {
		t.Fatalf("after UpdateAccessKey: %+v", ks)
	}
	uk.Status = "Disabled"
	_, err = c.UpdateAccessKey(uk)
	wantServerError(t, err, "InvalidParameter", 400)
	uk.Status, uk.UserAccessKeyId = "Active", "LTAInosuchkey"
	_, err = c.UpdateAccessKey(uk)
	wantServerError(t, err, "EntityNotExist.User.AccessKey", 404)

	du := ram.CreateDeleteUserRequest()
	du.UserName = "erin"
	_, err = c.DeleteUser(du)
	wantServerError(t, err, "DeleteConflict.User.AccessKey", 409)

	// At most two keys per user.
	ck.UserName = "frank"
	for range 2 {
		if _, err := c.CreateAccessKey(ck); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.CreateAccessKey(ck)
	wantServerError(t, err, "LimitExceeded.User.AccessKey", 409)

	// A user with a policy but no key; its fields need percent-encoding.
	gina := ram.CreateCreateUserRequest()
	gina.UserName, gina.DisplayName, gina.Comments = "gina@example", "Gina Ö. *~", "a b+c&d=e%f/g?h;中文"
	if _, err := c.CreateUser(gina); err != nil {
		t.Fatal(err)
	}
	gu.UserName = "gina@example"
	if g, err := c.GetUser(gu); err != nil || g.User.DisplayName != gina.DisplayName || g.User.Comments != gina.Comments {
		t.Fatalf("GetUser gina: %v %v", g, err)
	}
	attachPolicy(t, root, "AliyunRDSReadOnlyAccess", "System", "gina@example")
	du.UserName = "gina@example"
	_, err = c.DeleteUser(du)
	wantServerError(t, err, "DeleteConflict.User.Policy", 409)
	detachPolicy(t, root, "AliyunRDSReadOnlyAccess", "System", "gina@example")
	if _, err := c.DeleteUser(du); err != nil {
		t.Fatal(err)
	}
	du.UserName = "erin"

	// Policies.
	doc := policyDocument("Allow", "rds:Describe*", "*")
	createPolicy(t, root, "describe-all", doc)
	cp := ram.CreateCreatePolicyRequest()
	cp.PolicyName, cp.PolicyDocument = "describe-all", doc
	_, err = c.CreatePolicy(cp)
	wantServerError(t, err, "EntityAlreadyExists.Policy", 409)

	gp := ram.CreateGetPolicyRequest()
	gp.PolicyName, gp.PolicyType = "describe-all", "Custom"
	pol, err := c.GetPolicy(gp)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Policy.PolicyName != "describe-all" || pol.Policy.PolicyType != "Custom" || pol.Policy.Description != "test policy describe-all" ||
		pol.DefaultPolicyVersion.PolicyDocument != doc {
		t.Fatalf("GetPolicy: %s", pol.GetHttpContentString())
	}
	gp.PolicyName = "no-such-policy"
	_, err = c.GetPolicy(gp)
	wantServerError(t, err, "EntityNotExist.Policy", 404)
	gp.PolicyName, gp.PolicyType = "AliyunRDSReadOnlyAccess", "System"
	if sys, err := c.GetPolicy(gp); err != nil || !strings.Contains(sys.DefaultPolicyVersion.PolicyDocument, "rds:Describe*") {
		t.Fatalf("GetPolicy system: %v %v", sys, err)
	}

	listPolicies := func(typ string) []string {
		t.Helper()
		lp := ram.CreateListPoliciesRequest()
		lp.PolicyType = typ
		resp, err := c.ListPolicies(lp)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range resp.Policies.Policy {
			names = append(names, p.PolicyType+":"+p.PolicyName)
		}
		return names
	}
	if got := listPolicies("Custom"); !slices.Equal(got, []string{"Custom:describe-all"}) {
		t.Fatalf("ListPolicies Custom: %v", got)
	}
	if got := listPolicies("System"); !slices.Contains(got, "System:AliyunRDSReadOnlyAccess") || !slices.Contains(got, "System:AdministratorAccess") {
		t.Fatalf("ListPolicies System: %v", got)
	}
	if got := listPolicies(""); !slices.Contains(got, "Custom:describe-all") || !slices.Contains(got, "System:AliyunRDSFullAccess") {
		t.Fatalf("ListPolicies: %v", got)
	}

	// ListPolicies pages with MaxItems and Marker over both types.
	var walked []string
	marker := ""
	for page := 0; ; page++ {
		lp := ram.CreateListPoliciesRequest()
		lp.MaxItems, lp.Marker = requests.NewInteger(2), marker
		resp, err := c.ListPolicies(lp)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range resp.Policies.Policy {
			walked = append(walked, p.PolicyType+":"+p.PolicyName)
		}
		if !resp.IsTruncated {
			break
		}
		if len(resp.Policies.Policy) != 2 || resp.Marker == "" || page > 10 {
			t.Fatalf("ListPolicies page %d: %s", page, resp.GetHttpContentString())
		}
		marker = resp.Marker
	}
	if all := listPolicies(""); !slices.Equal(walked, all) {
		t.Fatalf("ListPolicies pages %v, all %v", walked, all)
	}

	// Attachments.
	attachPolicy(t, root, "describe-all", "Custom", "erin")
	attachPolicy(t, root, "AliyunRDSReadOnlyAccess", "System", "erin")
	ap := ram.CreateAttachPolicyToUserRequest()
	ap.PolicyName, ap.PolicyType, ap.UserName = "no-such-policy", "Custom", "erin"
	_, err = c.AttachPolicyToUser(ap)
	wantServerError(t, err, "EntityNotExist.Policy", 404)
	ap.PolicyName, ap.UserName = "describe-all", "nobody"
	_, err = c.AttachPolicyToUser(ap)
	wantServerError(t, err, "EntityNotExist.User", 404)

	ap.PolicyName, ap.PolicyType, ap.UserName = "describe-all", "Custom", "erin"
	_, err = c.AttachPolicyToUser(ap)
	wantServerError(t, err, "EntityAlreadyExists.User.Policy", 409)
	_, err = c.DeleteUser(du)
	wantServerError(t, err, "DeleteConflict.User.AccessKey", 409) // keys are checked first
	lpu := ram.CreateListPoliciesForUserRequest()
	lpu.UserName = "erin"
	forUser, err := c.ListPoliciesForUser(lpu)
	if err != nil {
		t.Fatal(err)
	}
	var attached []string
	for _, p := range forUser.Policies.Policy {
		attached = append(attached, p.PolicyType+":"+p.PolicyName)
		if p.AttachDate == "" {
			t.Errorf("%s without AttachDate", p.PolicyName)
		}
	}
	slices.Sort(attached)
	if !slices.Equal(attached, []string{"Custom:describe-all", "System:AliyunRDSReadOnlyAccess"}) {
		t.Fatalf("ListPoliciesForUser: %s", forUser.GetHttpContentString())
	}
	lpu.UserName = "nobody"
	_, err = c.ListPoliciesForUser(lpu)
	wantServerError(t, err, "EntityNotExist.User", 404)

	dp := ram.CreateDeletePolicyRequest()
	dp.PolicyName = "describe-all"
	_, err = c.DeletePolicy(dp)
	wantServerError(t, err, "DeleteConflict.Policy.User", 409)

	detachPolicy(t, root, "describe-all", "Custom", "erin")
	detachPolicy(t, root, "AliyunRDSReadOnlyAccess", "System", "erin")
	dt := ram.CreateDetachPolicyFromUserRequest()
	dt.PolicyName, dt.PolicyType, dt.UserName = "describe-all", "Custom", "erin"
	_, err = c.DetachPolicyFromUser(dt)
	wantServerError(t, err, "EntityNotExist.User.Policy", 404)
	lpu.UserName = "erin"
	if forUser, err := c.ListPoliciesForUser(lpu); err != nil || len(forUser.Policies.Policy) != 0 {
		t.Fatalf("ListPoliciesForUser after detach: %v %v", forUser, err)
	}

	if _, err := c.DeletePolicy(dp); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeletePolicy(dp)
	wantServerError(t, err, "EntityNotExist.Policy", 404)
	gp.PolicyName, gp.PolicyType = "describe-all", "Custom"
	_, err = c.GetPolicy(gp)
	wantServerError(t, err, "EntityNotExist.Policy", 404)

	// Delete the key, then the user.
	dk := ram.CreateDeleteAccessKeyRequest()
	dk.UserName, dk.UserAccessKeyId = "erin", key.AccessKey.AccessKeyId
	if _, err := c.DeleteAccessKey(dk); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteAccessKey(dk)
	wantServerError(t, err, "EntityNotExist.User.AccessKey", 404)
	if ks := listKeys(); len(ks) != 0 {
		t.Fatalf("keys after DeleteAccessKey: %+v", ks)
	}
	if _, err := c.DeleteUser(du); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteUser(du)
	wantServerError(t, err, "EntityNotExist.User", 404)
	gu.UserName = "erin"
	_, err = c.GetUser(gu)
	wantServerError(t, err, "EntityNotExist.User", 404)

	// A deleted key no longer authenticates.
	erin := newClients(t, s.Addr, key.AccessKey.AccessKeyId, key.AccessKey.AccessKeySecret)
	_, err = erin.RAM.ListUsers(ram.CreateListUsersRequest())
	wantServerError(t, err, "InvalidAccessKeyId.NotFound", 404)
}

// TestRAMConditionsAndResources evaluates conditions and ARNs end to end:
// each case is a user with one policy and the calls it may or may not make.
func TestRAMConditionsAndResources(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), instancesYAML("rm-a1", "rm-b1"), testEnv(nil))
	stmt := func(effect, action, resource, condition string) string {
		c := ""
		if condition != "" {
			c = `,"Condition":` + condition
		}
		return `{"Effect":"` + effect + `",` + action + `,"Resource":` + resource + c + `}`
	}
	doc := func(statements ...string) string {
		return `{"Version":"1","Statement":[` + strings.Join(statements, ",") + `]}`
	}
	allowAll := stmt("Allow", `"Action":"rds:*"`, `"*"`, "")
	tests := []struct {
		name     string
		document string
		allowed  []string // instances DescribeBackups may read
		denied   []string
		denial   string // NoPermissionType of the denials
	}{
		{"SourceIp loopback", doc(stmt("Allow", `"Action":"rds:DescribeBackups"`, `"*"`, `{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","127.0.0.1"]}}`)),
			[]string{"rm-a1", "rm-b1"}, nil, ""},
		{"SourceIp CIDR", doc(stmt("Allow", `"Action":"rds:DescribeBackups"`, `"*"`, `{"IpAddress":{"acs:SourceIp":"127.0.0.0/8"}}`)),
			[]string{"rm-a1"}, nil, ""},
		{"SourceIp elsewhere", doc(stmt("Allow", `"Action":"rds:DescribeBackups"`, `"*"`, `{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`)),
			nil, []string{"rm-a1"}, "ImplicitDeny"},
		{"NotIpAddress deny", doc(allowAll, stmt("Deny", `"Action":"*"`, `"*"`, `{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}`)),
			nil, []string{"rm-a1"}, "ExplicitDeny"},
		{"deny without TLS", doc(allowAll, stmt("Deny", `"Action":"rds:*"`, `"*"`, `{"Bool":{"acs:SecureTransport":"false"}}`)),
			nil, []string{"rm-a1"}, "ExplicitDeny"},
		{"expired", doc(stmt("Allow", `"Action":"rds:*"`, `"*"`, `{"DateLessThan":{"acs:CurrentTime":"2020-01-01T00:00:00Z"}}`)),
			nil, []string{"rm-a1"}, "ImplicitDeny"},
		{"not yet expired", doc(stmt("Allow", `"Action":"rds:*"`, `"*"`, `{"DateLessThan":{"acs:CurrentTime":"2999-01-01T00:00:00Z"}}`)),
			[]string{"rm-a1"}, nil, ""},
		{"account and region", doc(stmt("Allow", `"Action":"rds:DescribeBackups"`, `"acs:rds:cn-hangzhou:1234567890:dbinstance/rm-a1"`, "")),
			[]string{"rm-a1"}, []string{"rm-b1"}, "ImplicitDeny"},
		{"other account", doc(stmt("Allow", `"Action":"rds:DescribeBackups"`, `"acs:rds:*:999999:dbinstance/*"`, "")),
			nil, []string{"rm-a1"}, "ImplicitDeny"},
		{"other region", doc(stmt("Allow", `"Action":"rds:DescribeBackups"`, `"acs:rds:cn-beijing:*:dbinstance/*"`, "")),
			nil, []string{"rm-a1"}, "ImplicitDeny"},
		{"resource list with ?", doc(stmt("Allow", `"Action":["rds:DescribeBackups"]`, `["acs:rds:*:*:dbinstance/rm-?1"]`, "")),
			[]string{"rm-a1", "rm-b1"}, nil, ""},
		{"NotAction", doc(stmt("Allow", `"NotAction":"rds:DescribeBackups"`, `"*"`, "")),
			nil, []string{"rm-a1"}, "ImplicitDeny"},
		{"NotResource", doc(`{"Effect":"Allow","Action":"rds:DescribeBackups","NotResource":"acs:rds:*:*:dbinstance/rm-b*"}`),
			[]string{"rm-a1"}, []string{"rm-b1"}, "ImplicitDeny"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := rootClients(t, s) // an SDK client is not safe for concurrent use
			user := "cond-" + strconv.Itoa(i)
			ak, secret := createUserWithKey(t, root, user)
			createPolicy(t, root, user, tt.document)
			attachPolicy(t, root, user, "Custom", user)
			c := newClients(t, s.Addr, ak, secret)
			for _, id := range tt.allowed {
				if _, err := describeOn(t, c, id); err != nil {
					t.Errorf("%s refused: %v", id, err)
				}
			}
			for _, id := range tt.denied {
				_, err := describeOn(t, c, id)
				wantDenied(t, err, "rds:DescribeBackups", tt.denial)
			}
		})
	}
}

// TestRAMInstanceListResources: the actions that take a comma-separated
// list of instance ids must authorize every id in it, not the list as one
// resource name (which a policy such as dbinstance/rm-a* matches whole).
func TestRAMInstanceListResources(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), instancesYAML("rm-a1", "rm-a2", "rm-b1"), testEnv(nil))
	root := rootClients(t, s)
	ak, secret := createUserWithKey(t, root, "lister")
	createPolicy(t, root, "describe-a", policyDocument("Allow", "rds:Describe*", "acs:rds:*:*:dbinstance/rm-a*"))
	attachPolicy(t, root, "describe-a", "Custom", "lister")
	c := newClients(t, s.Addr, ak, secret)

	// Allowed: ids all under rm-a*.
	req := rds.CreateDescribeDBInstancesRequest()
	req.DBInstanceId = "rm-a1,rm-a2"
	if resp, err := c.RDS.DescribeDBInstances(req); err != nil || resp.TotalRecordCount != 2 {
		t.Fatalf("rm-a1,rm-a2: %v %v", resp, err)
	}

	// rm-b1 hidden in the list: refused, or at least not shown.
	req = rds.CreateDescribeDBInstancesRequest()
	req.DBInstanceId = "rm-a1,rm-b1"
	if resp, err := c.RDS.DescribeDBInstances(req); err == nil {
		for _, i := range resp.Items.DBInstance {
			if i.DBInstanceId == "rm-b1" {
				t.Errorf("DescribeDBInstances DBInstanceId=rm-a1,rm-b1 shows rm-b1 to a user allowed only rm-a*")
			}
		}
	} else {
		wantDenied(t, err, "rds:DescribeDBInstances", "ImplicitDeny")
	}
	attr := rds.CreateDescribeDBInstanceAttributeRequest()
	attr.DBInstanceId = "rm-a1,rm-b1"
	if resp, err := c.RDS.DescribeDBInstanceAttribute(attr); err == nil {
		for _, i := range resp.Items.DBInstanceAttribute {
			if i.DBInstanceId == "rm-b1" {
				t.Errorf("DescribeDBInstanceAttribute DBInstanceId=rm-a1,rm-b1 shows rm-b1 to a user allowed only rm-a*")
			}
		}
	} else {
		wantDenied(t, err, "rds:DescribeDBInstanceAttribute", "ImplicitDeny")
	}
	attr = rds.CreateDescribeDBInstanceAttributeRequest()
	attr.DBInstanceId = "rm-b1"
	_, err := c.RDS.DescribeDBInstanceAttribute(attr)
	wantDenied(t, err, "rds:DescribeDBInstanceAttribute", "ImplicitDeny")

	// An explicit Deny on rm-b1 is bypassed the same way.
	ak, secret = createUserWithKey(t, root, "denied-b")
	createPolicy(t, root, "deny-b1", `{"Version":"1","Statement":[`+
		`{"Effect":"Allow","Action":"rds:*","Resource":"*"},`+
		`{"Effect":"Deny","Action":"rds:*","Resource":"acs:rds:*:*:dbinstance/rm-b1"}]}`)
	attachPolicy(t, root, "deny-b1", "Custom", "denied-b")
	d := newClients(t, s.Addr, ak, secret)
	attr = rds.CreateDescribeDBInstanceAttributeRequest()
	attr.DBInstanceId = "rm-b1"
	_, err = d.RDS.DescribeDBInstanceAttribute(attr)
	wantDenied(t, err, "rds:DescribeDBInstanceAttribute", "ExplicitDeny")
	// The handlers split on "," and trim spaces; the resource must name
	// what they then read.
	for _, ids := range []string{"rm-a1,rm-b1", " rm-b1", "rm-b1 "} {
		attr = rds.CreateDescribeDBInstanceAttributeRequest()
		attr.DBInstanceId = ids
		if resp, err := d.RDS.DescribeDBInstanceAttribute(attr); err == nil {
			for _, i := range resp.Items.DBInstanceAttribute {
				if i.DBInstanceId == "rm-b1" {
					t.Errorf("DescribeDBInstanceAttribute DBInstanceId=%q shows rm-b1 despite an explicit Deny on it", ids)
				}
			}
		} else {
			wantDenied(t, err, "rds:DescribeDBInstanceAttribute", "ExplicitDeny")
		}
		list := rds.CreateDescribeDBInstancesRequest()
		list.DBInstanceId = ids
		if resp, err := d.RDS.DescribeDBInstances(list); err == nil {
			for _, i := range resp.Items.DBInstance {
				if i.DBInstanceId == "rm-b1" {
					t.Errorf("DescribeDBInstances DBInstanceId=%q shows rm-b1 despite an explicit Deny on it", ids)
				}
			}
		} else {
			wantDenied(t, err, "rds:DescribeDBInstances", "ExplicitDeny")
		}
	}
}

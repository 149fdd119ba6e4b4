package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup/api"
)

// TestRAMActionResources calls every RAM action as a RAM user, with
// UserName naming the caller and with UserName left out, under a policy
// that allows exactly the resources the call acts on and under one that
// denies them. Omitting UserName must not change which resource the policy
// is evaluated on: the key actions then act on the caller, and the others
// need the name.
func TestRAMActionResources(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), instancesYAML("rm-r1"), testEnv(nil))
	root := rootClients(t, s)
	const acct = "acs:ram:*:1234567890:"

	createPolicy(t, root, "p-target", policyDocument("Allow", "rds:DescribeBackups", "*"))
	createPolicy(t, root, "p-free", policyDocument("Allow", "rds:DescribeBackups", "*"))
	// ally may do anything to herself and the two policies, and list; dora
	// may do anything except to herself and p-target, and may not list.
	createPolicy(t, root, "allow-own", `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":"ram:*","Resource":["`+acct+`user/ally","`+acct+`policy/p-target","`+acct+`policy/p-free"]},
		{"Effect":"Allow","Action":["ram:ListUsers","ram:ListPolicies"],"Resource":"`+acct+`*"}]}`)
	createPolicy(t, root, "deny-own", `{"Version":"1","Statement":[
		{"Effect":"Allow","Action":"ram:*","Resource":"*"},
		{"Effect":"Deny","Action":"ram:*","Resource":["`+acct+`user/dora","`+acct+`policy/p-target"]},
		{"Effect":"Deny","Action":["ram:ListUsers","ram:ListPolicies"],"Resource":"`+acct+`*"}]}`)

	type caller struct {
		name, ak, secret string
		allowed          bool
	}
	var callers []caller
	for _, u := range []struct {
		name, policy string
		allowed      bool
	}{{"dora", "deny-own", false}, {"ally", "allow-own", true}} {
		ak, secret := createUserWithKey(t, root, u.name)
		attachPolicy(t, root, u.policy, "Custom", u.name)
		callers = append(callers, caller{u.name, ak, secret, u.allowed})
	}

	// userName says what an action does without UserName: "caller" acts on
	// the caller, "required" refuses, "unused" does not read it.
	doc := policyDocument("Allow", "rds:DescribeBackups", "*")
	actions := []struct {
		action, userName string
		params           []string
	}{
		{"CreateUser", "required", nil},
		{"GetUser", "required", nil},
		{"ListUsers", "unused", nil},
		{"DeleteUser", "required", nil},
		{"CreateAccessKey", "caller", nil},
		{"UpdateAccessKey", "caller", []string{"UserAccessKeyId", "LTAInosuchkey000000000", "Status", "Active"}},
		{"ListAccessKeys", "caller", nil},
		{"DeleteAccessKey", "caller", []string{"UserAccessKeyId", "LTAInosuchkey000000000"}},
		{"CreatePolicy", "unused", []string{"PolicyName", "p-target", "PolicyDocument", doc}},
		{"GetPolicy", "unused", []string{"PolicyName", "p-target", "PolicyType", "Custom"}},
		{"ListPolicies", "unused", nil},
		{"AttachPolicyToUser", "required", []string{"PolicyName", "p-free", "PolicyType", "Custom"}},
		{"DetachPolicyFromUser", "required", []string{"PolicyName", "p-free", "PolicyType", "Custom"}},
		{"ListPoliciesForUser", "required", nil},
		// Last: allowed, it deletes p-target.
		{"DeletePolicy", "unused", []string{"PolicyName", "p-target"}},
	}
	// Every RAM action is in the table.
	listed := map[string]bool{}
	for _, a := range actions {
		listed[a.action] = true
	}
	for _, name := range api.ActionNames(api.VersionRAM) {
		if !listed[name] {
			t.Errorf("RAM action %s is not in the table", name)
		}
	}

	for _, c := range callers {
		for _, a := range actions {
			for _, given := range []bool{true, false} {
				p := url.Values{"Action": {a.action}, "Version": {"2015-05-01"}}
				for i := 0; i+1 < len(a.params); i += 2 {
					p.Set(a.params[i], a.params[i+1])
				}
				if given {
					p.Set("UserName", c.name)
				}
				r := rawCall(t, s.Addr, signV2(http.MethodPost, p, c.ak, c.secret, time.Now()))
				var e apiError
				if r.Status != 200 {
					if err := json.Unmarshal(r.Body, &e); err != nil {
						t.Fatalf("%s: %s", a.action, r.Body)
					}
				}
				what := a.action + " as " + c.name
				if given {
					what += " with UserName"
				} else {
					what += " without UserName"
				}
				switch {
				case !given && a.userName == "required":
					if e.Code != "MissingParameter" {
						t.Errorf("%s: %d %s, want MissingParameter", what, r.Status, r.Body)
					}
				case !c.allowed:
					if e.Code != "Forbidden.RAM" || e.AccessDeniedDetail["NoPermissionType"] != "ExplicitDeny" {
						t.Errorf("%s: %d %s, want Forbidden.RAM (ExplicitDeny)", what, r.Status, r.Body)
					}
				default:
					if e.Code == "Forbidden.RAM" || e.Code == "MissingParameter" || r.Status >= 500 {
						t.Errorf("%s: %d %s, want it allowed", what, r.Status, r.Body)
					}
				}
			}
		}
	}
}

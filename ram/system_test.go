package ram

import "testing"

func TestSystemPolicies(t *testing.T) {
	want := map[string]struct{ allowed, denied string }{
		AdministratorAccess:     {"ecs:DescribeInstances", ""},
		AliyunRDSFullAccess:     {"rds:DeleteBackup", "ecs:DescribeInstances"},
		AliyunRDSReadOnlyAccess: {"rds:DescribeBackups", "rds:DeleteBackup"},
	}
	sps := SystemPolicies()
	if len(sps) != len(want) {
		t.Fatalf("got %d system policies, want %d", len(sps), len(want))
	}
	for _, sp := range sps {
		w, ok := want[sp.Name]
		if !ok {
			t.Errorf("unexpected system policy %q", sp.Name)
			continue
		}
		if sp.Description == "" {
			t.Errorf("%s: no description", sp.Name)
		}
		p, ok := LookupSystemPolicy(sp.Name)
		if !ok || p.Name != sp.Name || p.Type != TypeSystem || p.Document.Text() != sp.Document {
			t.Fatalf("LookupSystemPolicy(%q) = %+v, %v", sp.Name, p, ok)
		}
		if d := Evaluate([]*Policy{p}, Context{Action: w.allowed, Resource: rmA1}); !d.Allowed {
			t.Errorf("%s does not allow %s: %+v", sp.Name, w.allowed, d)
		}
		if w.denied != "" {
			if d := Evaluate([]*Policy{p}, Context{Action: w.denied, Resource: rmA1}); d.Allowed {
				t.Errorf("%s allows %s", sp.Name, w.denied)
			}
		}
	}
	if _, ok := LookupSystemPolicy("administratoraccess"); ok {
		t.Error("system policy names should be case-sensitive")
	}
	sps[0].Name = "changed"
	if SystemPolicies()[0].Name == "changed" {
		t.Error("SystemPolicies returns shared storage")
	}
}

package ram

import (
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzPolicyDocument parses hostile policy documents and evaluates those
// that parse against a request: no panic; an explicit Deny of everything
// added to any document always wins; a document that parses reparses from
// its own text.
func FuzzPolicyDocument(f *testing.F) {
	for _, d := range []string{
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:Describe*","Resource":"acs:rds:*:*:dbinstance/rm-a*"}]}`,
		`{"Version":"1","Statement":[{"Effect":"Deny","NotAction":["ram:*"],"NotResource":"*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","::1"]}}}]}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"true"},"DateLessThan":{"acs:CurrentTime":"2030-01-01T00:00:00Z"},"NumericEquals":{"rds:x":["1","2.5"]},"StringLike":{"rds:ResourceTag/env":"p?o*"}}}]}`,
		`{"Version":"1","Statement":[]}`,
		`{"Version":"1","Statement":{"Effect":"Allow","Action":"rds:*","Resource":"*"}}`,
		`{"Version":"1","Statement":[{"Effect":"Allow","Action":"rds:*","Resource":"*","Effect":"Deny"}]}`,
		`[1,2,{"a":`,
	} {
		f.Add(d, "rds:DescribeBackups", "acs:rds:cn-hangzhou:1234567890:dbinstance/rm-a1", "10.1.2.3")
	}
	deny, err := ParseDocument(`{"Version":"1","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text, action, resource, ip string) {
		doc, err := ParseDocument(text)
		if err != nil {
			if strings.Contains(err.Error(), "panic") {
				t.Fatalf("ParseDocument: %v", err)
			}
			return
		}
		if doc.Text() != text {
			t.Fatalf("Text() differs from the parsed text")
		}
		ctx := Context{Action: action, Resource: resource, SourceIP: net.ParseIP(ip),
			CurrentTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), SecureTransport: len(ip)%2 == 0,
			Values: map[string][]string{"rds:x": {ip}}}
		p := &Policy{Name: "fuzz", Type: TypeCustom, Document: doc}
		d := Evaluate([]*Policy{p}, ctx)
		if d.Allowed && d.NoPermissionType != "" {
			t.Fatalf("allowed with NoPermissionType %q", d.NoPermissionType)
		}
		if d := Evaluate([]*Policy{p, {Name: "deny", Type: TypeCustom, Document: deny}}, ctx); d.Allowed || d.NoPermissionType != ExplicitDeny {
			t.Fatalf("an explicit Deny of everything did not win: %+v", d)
		}
	})
}

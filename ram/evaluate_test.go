package ram

import (
	"net"
	"testing"
	"time"
)

const (
	rmA1 = "acs:rds:cn-hangzhou:1234567890:dbinstance/rm-a1"
	rmB1 = "acs:rds:cn-hangzhou:1234567890:dbinstance/rm-b1"
)

func mustParse(t testing.TB, text string) *Document {
	t.Helper()
	d, err := ParseDocument(text)
	if err != nil {
		t.Fatalf("ParseDocument(%s): %v", text, err)
	}
	return d
}

func custom(t testing.TB, name, text string) *Policy {
	return &Policy{Name: name, Type: TypeCustom, Document: mustParse(t, text)}
}

func system(t testing.TB, name string) *Policy {
	p, ok := LookupSystemPolicy(name)
	if !ok {
		t.Fatalf("no system policy %q", name)
	}
	return p
}

func TestEvaluate(t *testing.T) {
	describeRmA := custom(t, "describe-rm-a", stmt(`{"Effect": "Allow", "Action": "rds:DescribeBackups", "Resource": "acs:rds:*:*:dbinstance/rm-a*"}`))
	denyDelete := custom(t, "deny-delete", stmt(`{"Effect": "Deny", "Action": "rds:Delete*", "Resource": "*"}`))
	notDelete := custom(t, "not-delete", stmt(`{"Effect": "Allow", "NotAction": ["rds:Delete*", "ecs:*"], "Resource": "*"}`))
	notProd := custom(t, "not-prod", stmt(`{"Effect": "Allow", "Action": "rds:*", "NotResource": "acs:rds:*:*:dbinstance/rm-prod*"}`))
	question := custom(t, "question", stmt(`{"Effect": "Allow", "Action": "rds:Describe?ackups", "Resource": "acs:rds:*:*:dbinstance/rm-a?"}`))
	lowerAction := custom(t, "lower", stmt(`{"Effect": "Allow", "Action": "rds:describebackups", "Resource": "*"}`))
	upperResource := custom(t, "upper", stmt(`{"Effect": "Allow", "Action": "*", "Resource": "acs:rds:*:*:dbinstance/RM-A*"}`))
	denyFromOutside := custom(t, "deny-outside", stmt(`{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}`))
	denyThenAllow := custom(t, "deny-then-allow", stmt(
		`{"Effect": "Deny", "Action": "rds:DeleteBackup", "Resource": "`+rmB1+`"}`,
		`{"Effect": "Allow", "Action": "rds:*", "Resource": "*"}`))
	admin := system(t, AdministratorAccess)
	readOnly := system(t, AliyunRDSReadOnlyAccess)
	full := system(t, AliyunRDSFullAccess)

	allowed := func(p *Policy) Decision {
		return Decision{Allowed: true, PolicyName: p.Name, PolicyType: p.Type}
	}
	denied := func(p *Policy) Decision {
		return Decision{NoPermissionType: ExplicitDeny, PolicyName: p.Name, PolicyType: p.Type}
	}
	implicit := Decision{NoPermissionType: ImplicitDeny}

	tests := []struct {
		name     string
		policies []*Policy
		action   string
		resource string
		sourceIP string
		want     Decision
	}{
		{"no policies", nil, "rds:DescribeBackups", rmA1, "", implicit},
		{"nil policy", []*Policy{nil, {Name: "empty"}}, "rds:DescribeBackups", rmA1, "", implicit},
		{"resource wildcard allows", []*Policy{describeRmA}, "rds:DescribeBackups", rmA1, "", allowed(describeRmA)},
		{"resource wildcard denies", []*Policy{describeRmA}, "rds:DescribeBackups", rmB1, "", implicit},
		{"other action", []*Policy{describeRmA}, "rds:DeleteBackup", rmA1, "", implicit},
		{"? in action and resource", []*Policy{question}, "rds:DescribeBackups", rmA1, "", allowed(question)},
		{"? is exactly one char", []*Policy{question}, "rds:DescribeBackups", rmA1 + "2", "", implicit},
		{"action case-insensitive (policy)", []*Policy{lowerAction}, "rds:DescribeBackups", rmA1, "", allowed(lowerAction)},
		{"action case-insensitive (request)", []*Policy{describeRmA}, "RDS:describebackups", rmA1, "", allowed(describeRmA)},
		{"resource case-sensitive", []*Policy{upperResource}, "rds:DescribeBackups", rmA1, "", implicit},
		{"NotAction allows others", []*Policy{notDelete}, "rds:DescribeBackups", rmA1, "", allowed(notDelete)},
		{"NotAction excludes", []*Policy{notDelete}, "rds:DeleteBackup", rmA1, "", implicit},
		{"NotAction excludes second", []*Policy{notDelete}, "ecs:DescribeInstances", "*", "", implicit},
		{"NotResource allows others", []*Policy{notProd}, "rds:DescribeBackups", rmA1, "", allowed(notProd)},
		{"NotResource excludes", []*Policy{notProd}, "rds:DescribeBackups", "acs:rds:cn-hangzhou:1:dbinstance/rm-prod1", "", implicit},
		{"deny over allow", []*Policy{admin, denyDelete}, "rds:DeleteBackup", rmA1, "", denied(denyDelete)},
		{"deny over allow, deny first", []*Policy{denyDelete, admin}, "rds:DeleteBackup", rmA1, "", denied(denyDelete)},
		{"deny not matching", []*Policy{admin, denyDelete}, "rds:DescribeBackups", rmA1, "", allowed(admin)},
		{"deny within one policy", []*Policy{denyThenAllow}, "rds:DeleteBackup", rmB1, "", denied(denyThenAllow)},
		{"allow within one policy", []*Policy{denyThenAllow}, "rds:DeleteBackup", rmA1, "", allowed(denyThenAllow)},
		{"first allowing policy reported", []*Policy{readOnly, full}, "rds:DescribeBackups", rmA1, "", allowed(readOnly)},
		{"read-only refuses writes", []*Policy{readOnly}, "rds:DeleteBackup", rmA1, "", implicit},
		{"full access", []*Policy{full}, "rds:DeleteBackup", rmA1, "", allowed(full)},
		{"full access is rds only", []*Policy{full}, "ecs:DescribeInstances", "*", "", implicit},
		{"admin", []*Policy{admin}, "ecs:DescribeInstances", "*", "", allowed(admin)},
		{"conditional deny applies", []*Policy{admin, denyFromOutside}, "rds:DescribeBackups", rmA1, "192.0.2.1", denied(denyFromOutside)},
		{"conditional deny does not apply", []*Policy{admin, denyFromOutside}, "rds:DescribeBackups", rmA1, "10.1.2.3", allowed(admin)},
		{"conditional deny without source IP", []*Policy{admin, denyFromOutside}, "rds:DescribeBackups", rmA1, "", denied(denyFromOutside)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := Context{Action: tt.action, Resource: tt.resource}
			if tt.sourceIP != "" {
				ctx.SourceIP = net.ParseIP(tt.sourceIP)
			}
			if got := Evaluate(tt.policies, ctx); got != tt.want {
				t.Errorf("Evaluate = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConditions(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tag := func(v ...string) map[string][]string { return map[string][]string{"rds:ResourceTag/env": v} }
	count := func(v string) map[string][]string { return map[string][]string{"rds:Count": {v}} }

	tests := []struct {
		name   string
		block  string // the Condition element
		ip     string
		now    time.Time
		secure bool
		values map[string][]string
		want   bool
	}{
		// String.
		{name: "StringEquals true", block: `{"StringEquals": {"rds:ResourceTag/env": "prod"}}`, values: tag("prod"), want: true},
		{name: "StringEquals false", block: `{"StringEquals": {"rds:ResourceTag/env": "prod"}}`, values: tag("Prod")},
		{name: "StringNotEquals true", block: `{"StringNotEquals": {"rds:ResourceTag/env": "prod"}}`, values: tag("dev"), want: true},
		{name: "StringNotEquals false", block: `{"StringNotEquals": {"rds:ResourceTag/env": "prod"}}`, values: tag("prod")},
		{name: "StringEqualsIgnoreCase true", block: `{"StringEqualsIgnoreCase": {"rds:ResourceTag/env": "PROD"}}`, values: tag("prod"), want: true},
		{name: "StringEqualsIgnoreCase false", block: `{"StringEqualsIgnoreCase": {"rds:ResourceTag/env": "PROD"}}`, values: tag("dev")},
		{name: "StringNotEqualsIgnoreCase true", block: `{"StringNotEqualsIgnoreCase": {"rds:ResourceTag/env": "PROD"}}`, values: tag("dev"), want: true},
		{name: "StringNotEqualsIgnoreCase false", block: `{"StringNotEqualsIgnoreCase": {"rds:ResourceTag/env": "PROD"}}`, values: tag("prod")},
		{name: "StringLike true", block: `{"StringLike": {"rds:ResourceTag/env": "pr?d-*"}}`, values: tag("prod-1"), want: true},
		{name: "StringLike false", block: `{"StringLike": {"rds:ResourceTag/env": "pr?d-*"}}`, values: tag("prod")},
		{name: "StringLike case-sensitive", block: `{"StringLike": {"rds:ResourceTag/env": "prod*"}}`, values: tag("PROD")},
		{name: "StringNotLike true", block: `{"StringNotLike": {"rds:ResourceTag/env": "prod*"}}`, values: tag("dev"), want: true},
		{name: "StringNotLike false", block: `{"StringNotLike": {"rds:ResourceTag/env": "prod*"}}`, values: tag("prod-2")},
		{name: "string on global key", block: `{"StringEquals": {"acs:SourceIp": "192.0.2.1"}}`, ip: "192.0.2.1", want: true},

		// Numeric: "<request> op <policy>".
		{name: "NumericEquals true", block: `{"NumericEquals": {"rds:Count": 10}}`, values: count("10.0"), want: true},
		{name: "NumericEquals false", block: `{"NumericEquals": {"rds:Count": "10"}}`, values: count("11")},
		{name: "NumericEquals unparsable request", block: `{"NumericEquals": {"rds:Count": "10"}}`, values: count("ten")},
		{name: "NumericNotEquals true", block: `{"NumericNotEquals": {"rds:Count": 10}}`, values: count("11"), want: true},
		{name: "NumericNotEquals false", block: `{"NumericNotEquals": {"rds:Count": 10}}`, values: count("10")},
		{name: "NumericLessThan true", block: `{"NumericLessThan": {"rds:Count": 10}}`, values: count("9.5"), want: true},
		{name: "NumericLessThan false", block: `{"NumericLessThan": {"rds:Count": 10}}`, values: count("10")},
		{name: "NumericLessThanEquals true", block: `{"NumericLessThanEquals": {"rds:Count": 10}}`, values: count("10"), want: true},
		{name: "NumericLessThanEquals false", block: `{"NumericLessThanEquals": {"rds:Count": 10}}`, values: count("11")},
		{name: "NumericGreaterThan true", block: `{"NumericGreaterThan": {"rds:Count": 10}}`, values: count("11"), want: true},
		{name: "NumericGreaterThan false", block: `{"NumericGreaterThan": {"rds:Count": 10}}`, values: count("10")},
		{name: "NumericGreaterThanEquals true", block: `{"NumericGreaterThanEquals": {"rds:Count": -1}}`, values: count("-1"), want: true},
		{name: "NumericGreaterThanEquals false", block: `{"NumericGreaterThanEquals": {"rds:Count": -1}}`, values: count("-2")},

		// Date, against acs:CurrentTime = 2024-01-01T00:00:00Z.
		{name: "DateEquals true", block: `{"DateEquals": {"acs:CurrentTime": "2024-01-01T08:00:00+08:00"}}`, now: now, want: true},
		{name: "DateEquals epoch", block: `{"DateEquals": {"acs:CurrentTime": 1704067200}}`, now: now, want: true},
		{name: "DateEquals false", block: `{"DateEquals": {"acs:CurrentTime": "2024-01-01T00:00:01Z"}}`, now: now},
		{name: "DateNotEquals true", block: `{"DateNotEquals": {"acs:CurrentTime": "2024-01-01T00:00:01Z"}}`, now: now, want: true},
		{name: "DateNotEquals false", block: `{"DateNotEquals": {"acs:CurrentTime": "2024-01-01"}}`, now: now},
		{name: "DateLessThan true", block: `{"DateLessThan": {"acs:CurrentTime": "2024-01-01T00:00:00.5Z"}}`, now: now, want: true},
		{name: "DateLessThan false", block: `{"DateLessThan": {"acs:CurrentTime": "2024-01-01T00:00:00Z"}}`, now: now},
		{name: "DateLessThanEquals true", block: `{"DateLessThanEquals": {"acs:CurrentTime": "2024-01-01T00:00:00Z"}}`, now: now, want: true},
		{name: "DateLessThanEquals false", block: `{"DateLessThanEquals": {"acs:CurrentTime": "2023-12-31T23:59:59Z"}}`, now: now},
		{name: "DateGreaterThan true", block: `{"DateGreaterThan": {"acs:CurrentTime": "2023-12-31T23:59:59Z"}}`, now: now, want: true},
		{name: "DateGreaterThan false", block: `{"DateGreaterThan": {"acs:CurrentTime": "2024-01-01T00:00:00Z"}}`, now: now},
		{name: "DateGreaterThanEquals true", block: `{"DateGreaterThanEquals": {"acs:CurrentTime": "2024-01-01T00:00:00Z"}}`, now: now, want: true},
		{name: "DateGreaterThanEquals false", block: `{"DateGreaterThanEquals": {"acs:CurrentTime": "2024-01-01T00:00:01Z"}}`, now: now},
		{name: "Date on a request value", block: `{"DateLessThan": {"rds:Expiry": "2030-01-01T00:00:00Z"}}`, values: map[string][]string{"rds:Expiry": {"2029-06-01T00:00:00Z"}}, want: true},

		// Bool.
		{name: "Bool true", block: `{"Bool": {"acs:SecureTransport": "true"}}`, secure: true, want: true},
		{name: "Bool false", block: `{"Bool": {"acs:SecureTransport": true}}`, secure: false},
		{name: "Bool matches false", block: `{"Bool": {"acs:SecureTransport": "false"}}`, secure: false, want: true},
		{name: "MFAPresent is false", block: `{"Bool": {"acs:MFAPresent": false}}`, want: true},
		{name: "MFAPresent never true", block: `{"Bool": {"acs:MFAPresent": "true"}}`},
		{name: "Bool on a request value", block: `{"Bool": {"rds:Flag": "true"}}`, values: map[string][]string{"rds:Flag": {"true"}}, want: true},

		// IP.
		{name: "IpAddress CIDR", block: `{"IpAddress": {"acs:SourceIp": ["192.168.0.0/16", "172.16.215.218"]}}`, ip: "192.168.3.4", want: true},
		{name: "IpAddress single", block: `{"IpAddress": {"acs:SourceIp": ["192.168.0.0/16", "172.16.215.218"]}}`, ip: "172.16.215.218", want: true},
		{name: "IpAddress false", block: `{"IpAddress": {"acs:SourceIp": ["192.168.0.0/16", "172.16.215.218"]}}`, ip: "172.16.215.219"},
		{name: "IpAddress IPv6", block: `{"IpAddress": {"acs:SourceIp": "2001:db8::/32"}}`, ip: "2001:db8::1", want: true},
		{name: "IpAddress IPv6 false", block: `{"IpAddress": {"acs:SourceIp": "2001:db8::/32"}}`, ip: "2001:db9::1"},
		{name: "IpAddress v4 policy, v6 request", block: `{"IpAddress": {"acs:SourceIp": "0.0.0.0/0"}}`, ip: "2001:db8::1"},
		{name: "IpAddress mapped policy", block: `{"IpAddress": {"acs:SourceIp": "::ffff:10.0.0.0/104"}}`, ip: "10.1.2.3", want: true},
		{name: "NotIpAddress true", block: `{"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}`, ip: "192.0.2.1", want: true},
		{name: "NotIpAddress false", block: `{"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}`, ip: "10.9.9.9"},
		{name: "IpAddress on a request value", block: `{"IpAddress": {"rds:ClientIp": "10.0.0.0/8"}}`, values: map[string][]string{"rds:ClientIp": {"10.0.0.1"}}, want: true},

		// Combination rules.
		{name: "values ORed", block: `{"StringEquals": {"rds:ResourceTag/env": ["dev", "prod"]}}`, values: tag("prod"), want: true},
		{name: "request values ORed", block: `{"StringEquals": {"rds:ResourceTag/env": "prod"}}`, values: tag("dev", "prod"), want: true},
		{name: "keys ANDed, both true", block: `{"IpAddress": {"acs:SourceIp": "10.0.0.0/8", "rds:ClientIp": "10.0.0.0/8"}}`, ip: "10.0.0.1", values: map[string][]string{"rds:ClientIp": {"10.0.0.2"}}, want: true},
		{name: "keys ANDed, one false", block: `{"IpAddress": {"acs:SourceIp": "10.0.0.0/8", "rds:ClientIp": "10.0.0.0/8"}}`, ip: "10.0.0.1", values: map[string][]string{"rds:ClientIp": {"192.0.2.1"}}},
		{name: "operators ANDed, both true", block: `{"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}, "Bool": {"acs:SecureTransport": "true"}}`, ip: "10.0.0.1", secure: true, want: true},
		{name: "operators ANDed, one false", block: `{"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}, "Bool": {"acs:SecureTransport": "true"}}`, ip: "10.0.0.1", secure: false},

		// Key names are case-insensitive on both sides.
		{name: "policy key case", block: `{"IpAddress": {"ACS:SOURCEIP": "10.0.0.0/8"}}`, ip: "10.0.0.1", want: true},
		{name: "request key case", block: `{"StringEquals": {"rds:ResourceTag/env": "prod"}}`, values: map[string][]string{"RDS:RESOURCETAG/ENV": {"prod"}}, want: true},
		{name: "globals ignore Values", block: `{"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}`, values: map[string][]string{"acs:SourceIp": {"10.0.0.1"}}},

		// Absent keys: positive operators false, negated operators true.
		{name: "absent StringEquals", block: `{"StringEquals": {"rds:ResourceTag/env": "prod"}}`},
		{name: "absent StringLike", block: `{"StringLike": {"rds:ResourceTag/env": "*"}}`},
		{name: "absent empty values", block: `{"StringLike": {"rds:ResourceTag/env": "*"}}`, values: tag()},
		{name: "absent NumericEquals", block: `{"NumericEquals": {"rds:Count": 1}}`},
		{name: "absent DateLessThan", block: `{"DateLessThan": {"acs:CurrentTime": "2100-01-01T00:00:00Z"}}`},
		{name: "absent IpAddress", block: `{"IpAddress": {"acs:SourceIp": "0.0.0.0/0"}}`},
		{name: "absent Bool", block: `{"Bool": {"rds:Flag": "false"}}`},
		{name: "absent StringNotEquals", block: `{"StringNotEquals": {"rds:ResourceTag/env": "prod"}}`, want: true},
		{name: "absent StringNotEqualsIgnoreCase", block: `{"StringNotEqualsIgnoreCase": {"rds:ResourceTag/env": "prod"}}`, want: true},
		{name: "absent StringNotLike", block: `{"StringNotLike": {"rds:ResourceTag/env": "*"}}`, want: true},
		{name: "absent NumericNotEquals", block: `{"NumericNotEquals": {"rds:Count": 1}}`, want: true},
		{name: "absent DateNotEquals", block: `{"DateNotEquals": {"acs:CurrentTime": "2024-01-01T00:00:00Z"}}`, want: true},
		{name: "absent NotIpAddress", block: `{"NotIpAddress": {"acs:SourceIp": "0.0.0.0/0"}}`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := custom(t, "p", cond(tt.block))
			ctx := Context{
				Action:          "rds:DescribeBackups",
				Resource:        rmA1,
				CurrentTime:     tt.now,
				SecureTransport: tt.secure,
				Values:          tt.values,
			}
			if tt.ip != "" {
				ctx.SourceIP = net.ParseIP(tt.ip)
			}
			if got := Evaluate([]*Policy{p}, ctx).Allowed; got != tt.want {
				t.Errorf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkEvaluate(b *testing.B) {
	policies := []*Policy{
		system(b, AliyunRDSReadOnlyAccess),
		custom(b, "ops", stmt(
			`{"Effect": "Allow", "Action": ["rds:CreateBackup", "rds:DeleteBackup", "rds:ModifyBackupPolicy"], "Resource": ["acs:rds:*:*:dbinstance/rm-a*", "acs:rds:cn-shanghai:*:dbinstance/rm-s?"],
			  "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}, "Bool": {"acs:SecureTransport": "true"}}}`,
			`{"Effect": "Deny", "Action": "rds:Delete*", "Resource": "acs:rds:*:*:dbinstance/rm-prod*"}`,
			`{"Effect": "Deny", "NotAction": "rds:Describe*", "Resource": "*", "Condition": {"DateGreaterThan": {"acs:CurrentTime": "2030-01-01T00:00:00Z"}}}`)),
	}
	base := Context{
		SourceIP:        net.ParseIP("10.1.2.3"),
		CurrentTime:     time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		SecureTransport: true,
	}
	cases := []struct {
		name, action, resource string
		allowed                bool
	}{
		{"allow", "rds:DeleteBackup", rmA1, true},
		{"explicit-deny", "rds:DeleteBackup", "acs:rds:cn-hangzhou:1234567890:dbinstance/rm-prod1", false},
		{"implicit-deny", "rds:DeleteBackup", rmB1, false},
	}
	for _, c := range cases {
		ctx := base
		ctx.Action, ctx.Resource = c.action, c.resource
		if got := Evaluate(policies, ctx).Allowed; got != c.allowed {
			b.Fatalf("%s: Allowed = %v", c.name, got)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Evaluate(policies, ctx)
			}
		})
	}
}

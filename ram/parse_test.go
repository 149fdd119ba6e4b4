package ram

import (
	"errors"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

// stmt wraps statement bodies into a version-1 document.
func stmt(bodies ...string) string {
	return `{"Version": "1", "Statement": [` + strings.Join(bodies, ",") + `]}`
}

// cond is a statement allowing everything under the given Condition block.
func cond(block string) string {
	return stmt(`{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": ` + block + `}`)
}

const allowAll = `{"Effect": "Allow", "Action": "*", "Resource": "*"}`

func TestParseDocumentValid(t *testing.T) {
	tests := []struct {
		name, text string
		statements int
	}{
		{"minimal", stmt(allowAll), 1},
		{"single statement object", `{"Version": "1", "Statement": ` + allowAll + `}`, 1},
		{"arrays", stmt(`{"Effect": "Deny", "Action": ["rds:Delete*", "rds:Modify?"], "Resource": ["acs:rds:*:*:dbinstance/rm-a*", "acs:rds:cn-hangzhou:123:dbinstance/rm-b1"]}`), 1},
		{"NotAction NotResource", stmt(`{"Effect": "Allow", "NotAction": "rds:Delete*", "NotResource": "acs:rds:*:*:dbinstance/rm-prod*"}`), 1},
		{"empty region ARN", stmt(`{"Effect": "Allow", "Action": "ram:GetUser", "Resource": "acs:ram::123:user/*"}`), 1},
		{"mixed-case action", stmt(`{"Effect": "Allow", "Action": "RDS:describebackups", "Resource": "*"}`), 1},
		{"empty Condition", cond(`{}`), 1},
		{"all operators", cond(`{
			"StringEquals": {"rds:ResourceTag/env": "prod"},
			"StringNotEquals": {"rds:ResourceTag/env": ["a", "b"]},
			"StringEqualsIgnoreCase": {"rds:ResourceTag/env": "PROD"},
			"StringNotEqualsIgnoreCase": {"rds:ResourceTag/env": "x"},
			"StringLike": {"rds:ResourceTag/env": "pr?d*"},
			"StringNotLike": {"rds:ResourceTag/env": "*x"},
			"NumericEquals": {"rds:Count": 10},
			"NumericNotEquals": {"rds:Count": "10.5"},
			"NumericLessThan": {"rds:Count": -1},
			"NumericLessThanEquals": {"rds:Count": 1e3},
			"NumericGreaterThan": {"rds:Count": "0"},
			"NumericGreaterThanEquals": {"rds:Count": 0},
			"DateEquals": {"acs:CurrentTime": "2012-11-11T23:59:59Z"},
			"DateNotEquals": {"acs:CurrentTime": "2012-11-11T23:59:59.5+08:00"},
			"DateLessThan": {"acs:CurrentTime": "2012-11-11"},
			"DateLessThanEquals": {"acs:CurrentTime": 1352678399},
			"DateGreaterThan": {"acs:CurrentTime": "1352678399"},
			"DateGreaterThanEquals": {"acs:CurrentTime": "2012-11-11T23:59:59Z"},
			"Bool": {"acs:SecureTransport": "true", "acs:MFAPresent": false},
			"IpAddress": {"acs:SourceIp": ["192.168.0.0/16", "172.16.215.218", "2001:db8::/32", "::1"]},
			"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}
		}`), 1},
		{"two statements", stmt(allowAll, `{"Effect": "Deny", "Action": "rds:DeleteBackup", "Resource": "*"}`), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDocument(tt.text)
			if err != nil {
				t.Fatalf("ParseDocument: %v", err)
			}
			if len(d.statements) != tt.statements {
				t.Errorf("got %d statements, want %d", len(d.statements), tt.statements)
			}
			if d.Text() != tt.text {
				t.Errorf("Text() does not return the input")
			}
		})
	}
}

func TestParseDocumentMalformed(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // substring of the message
	}{
		// JSON level.
		{"syntax", `{"Version": "1",}`, "invalid JSON at line 1, column 17: invalid character '}'"},
		{"syntax multi-line", "{\n  \"Version\": \"1\"\n  \"Statement\": []\n}", "invalid JSON at line 3, column 3"},
		{"empty", ``, "invalid JSON"},
		{"trailing data", stmt(allowAll) + ` x`, "invalid JSON at line 1"},
		{"not UTF-8", "{\"Version\": \"\xff\"}", "not valid UTF-8"},
		{"not an object", `["Version"]`, "must be a JSON object, got an array"},
		{"duplicate element", stmt(`{"Effect": "Allow", "Effect": "Deny", "Action": "*", "Resource": "*"}`), `Statement[0]: duplicate element "Effect"`},
		{"duplicate top-level", `{"Version": "1", "Version": "1", "Statement": []}`, `duplicate element "Version"`},

		// Top level.
		{"version 2", `{"Version": "2", "Statement": [` + allowAll + `]}`, `Version must be "1", got "2"`},
		{"version number", `{"Version": 1, "Statement": [` + allowAll + `]}`, `Version must be "1", got 1`},
		{"version missing", `{"Statement": [` + allowAll + `]}`, `Version must be "1"`},
		{"unknown top-level", `{"Version": "1", "Id": "x", "Statement": [` + allowAll + `]}`, `unknown element "Id"`},
		{"top-level case", `{"version": "1", "Statement": [` + allowAll + `]}`, `unknown element "version" (element names are case-sensitive; did you mean "Version"?)`},
		{"statement missing", `{"Version": "1"}`, "Statement is required"},
		{"statement string", `{"Version": "1", "Statement": "x"}`, `Statement: must be an array of statements, got "x"`},
		{"statement empty", `{"Version": "1", "Statement": []}`, "Statement: must contain at least one statement"},
		{"statement not object", stmt(allowAll, `"x"`), `Statement[1]: must be an object, got "x"`},

		// Statement elements.
		{"effect case", stmt(allowAll, `{"Effect": "allow", "Action": "*", "Resource": "*"}`), `Statement[1].Effect: must be "Allow" or "Deny", got "allow"`},
		{"effect missing", stmt(`{"Action": "*", "Resource": "*"}`), `Statement[0]: Effect is required`},
		{"effect type", stmt(`{"Effect": true, "Action": "*", "Resource": "*"}`), `Statement[0].Effect: must be "Allow" or "Deny", got true`},
		{"unknown statement element", stmt(`{"Sid": "1", "Effect": "Allow", "Action": "*", "Resource": "*"}`), `Statement[0]: unknown element "Sid"`},
		{"statement element case", stmt(`{"Effect": "Allow", "action": "*", "Resource": "*"}`), `Statement[0]: unknown element "action" (element names are case-sensitive; did you mean "Action"?)`},
		{"action and notaction", stmt(`{"Effect": "Allow", "Action": "*", "NotAction": "rds:*", "Resource": "*"}`), "Statement[0]: Action and NotAction are mutually exclusive"},
		{"resource and notresource", stmt(`{"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"}`), "Statement[0]: Resource and NotResource are mutually exclusive"},
		{"action missing", stmt(`{"Effect": "Allow", "Resource": "*"}`), "Statement[0]: Action or NotAction is required"},
		{"resource missing", stmt(`{"Effect": "Allow", "Action": "*"}`), "Statement[0]: Resource is required"},
		{"action empty list", stmt(`{"Effect": "Allow", "Action": [], "Resource": "*"}`), "Statement[0].Action: must not be an empty list"},
		{"notaction empty list", stmt(`{"Effect": "Allow", "NotAction": [], "Resource": "*"}`), "Statement[0].NotAction: must not be an empty list"},
		{"resource empty list", stmt(`{"Effect": "Allow", "Action": "*", "Resource": []}`), "Statement[0].Resource: must not be an empty list"},
		{"action no service", stmt(`{"Effect": "Allow", "Action": "DescribeBackups", "Resource": "*"}`), `Statement[0].Action: "DescribeBackups" is not "*" or of the form "<service>:<Action>"`},
		{"action in list", stmt(`{"Effect": "Allow", "Action": ["rds:A", "rds:"], "Resource": "*"}`), `Statement[0].Action[1]: "rds:" is not`},
		{"action bad char", stmt(`{"Effect": "Allow", "Action": "rds:Describe Backups", "Resource": "*"}`), `"rds:Describe Backups" is not`},
		{"action empty string", stmt(`{"Effect": "Allow", "Action": "", "Resource": "*"}`), `Statement[0].Action: "" is not`},
		{"action number", stmt(`{"Effect": "Allow", "Action": 5, "Resource": "*"}`), "Statement[0].Action: must be a string or an array of strings, got 5"},
		{"action list item type", stmt(`{"Effect": "Allow", "Action": ["rds:A", null], "Resource": "*"}`), "Statement[0].Action[1]: must be a string, got null"},
		{"resource not ARN", stmt(`{"Effect": "Allow", "Action": "*", "Resource": "rm-a1"}`), `Statement[0].Resource: "rm-a1" is not "*" or of the form "acs:<service>:<region>:<account-id>:<relative-id>"`},
		{"resource short ARN", stmt(`{"Effect": "Allow", "Action": "*", "Resource": ["*", "acs:rds:*:*"]}`), `Statement[0].Resource[1]: "acs:rds:*:*" is not`},

		// Conditions.
		{"condition not object", cond(`[]`), "Statement[0].Condition: must be an object, got an array"},
		{"unknown operator", cond(`{"StringEqual": {"acs:SourceIp": "x"}}`), `Statement[0].Condition: unknown operator "StringEqual"`},
		{"operator case", cond(`{"stringequals": {"acs:SourceIp": "x"}}`), `unknown operator "stringequals" (operator names are case-sensitive; did you mean "StringEquals"?)`},
		{"operator block type", cond(`{"StringEquals": "x"}`), `Statement[0].Condition.StringEquals: must be an object of condition keys, got "x"`},
		{"operator block empty", cond(`{"StringEquals": {}}`), "Statement[0].Condition.StringEquals: must contain at least one condition key"},
		{"values empty", cond(`{"StringEquals": {"rds:ResourceTag/env": []}}`), "Statement[0].Condition.StringEquals.rds:ResourceTag/env: must have at least one value"},
		{"key without prefix", cond(`{"StringEquals": {"SourceIp": "x"}}`), `condition key "SourceIp" is not of the form "<prefix>:<name>"`},
		{"string value null", cond(`{"StringEquals": {"rds:ResourceTag/env": null}}`), "must be a string, number or boolean, got null"},
		{"string value object", cond(`{"StringLike": {"rds:ResourceTag/env": ["a", {}]}}`), "Statement[0].Condition.StringLike.rds:ResourceTag/env[1]: must be a string, number or boolean, got an object"},
		{"bad IP", cond(`{"IpAddress": {"acs:SourceIp": "10.0.0.300"}}`), `Statement[0].Condition.IpAddress.acs:SourceIp: "10.0.0.300" is not an IP address or CIDR`},
		{"bad CIDR", cond(`{"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "10.0.0.0/33"]}}`), `Statement[0].Condition.NotIpAddress.acs:SourceIp[1]: "10.0.0.0/33" is not an IP address or CIDR`},
		{"IP with zone", cond(`{"IpAddress": {"acs:SourceIp": "fe80::1%eth0"}}`), `"fe80::1%eth0" is not an IP address or CIDR`},
		{"IP number", cond(`{"IpAddress": {"acs:SourceIp": 10}}`), `10 is not an IP address or CIDR`},
		{"bad date", cond(`{"DateLessThan": {"acs:CurrentTime": "2012-13-01T00:00:00Z"}}`), `Statement[0].Condition.DateLessThan.acs:CurrentTime: "2012-13-01T00:00:00Z" is not a date`},
		{"date word", cond(`{"DateGreaterThan": {"acs:CurrentTime": "yesterday"}}`), `"yesterday" is not a date`},
		{"non-numeric", cond(`{"NumericLessThan": {"rds:Count": "abc"}}`), `Statement[0].Condition.NumericLessThan.rds:Count: "abc" is not a number`},
		{"NaN", cond(`{"NumericEquals": {"rds:Count": "NaN"}}`), `"NaN" is not a number`},
		{"numeric bool", cond(`{"NumericEquals": {"rds:Count": true}}`), `true is not a number`},
		{"non-bool", cond(`{"Bool": {"acs:SecureTransport": "yes"}}`), `Statement[0].Condition.Bool.acs:SecureTransport: "yes" is not a boolean`},
		{"bool case", cond(`{"Bool": {"acs:SecureTransport": "True"}}`), `"True" is not a boolean`},
		{"bool number", cond(`{"Bool": {"acs:SecureTransport": 1}}`), `1 is not a boolean`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDocument(tt.text)
			if err == nil {
				t.Fatalf("ParseDocument succeeded (%d statements), want error containing %q", len(d.statements), tt.want)
			}
			var e *rdsbackup.Error
			if !errors.As(err, &e) || e.Code != rdsbackup.EInvalidPolicyDocument {
				t.Fatalf("error %v (%T), want *rdsbackup.Error with code %s", err, err, rdsbackup.EInvalidPolicyDocument)
			}
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q\ndoes not contain %q", e.Message, tt.want)
			}
		})
	}
}

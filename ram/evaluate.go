package ram

import (
	"net"
	"strings"
	"time"
)

// Policy types, as RAM reports them.
const (
	TypeSystem = "System"
	TypeCustom = "Custom"
)

// NoPermissionType values of a denied Decision, as in RAM's
// AccessDeniedDetail.
const (
	ExplicitDeny = "ExplicitDeny"
	ImplicitDeny = "ImplicitDeny"
)

// Policy is a named policy document attached to the identity under
// evaluation.
type Policy struct {
	Name     string
	Type     string // TypeSystem or TypeCustom
	Document *Document
}

// Context is what a request is evaluated against.
type Context struct {
	Action   string // e.g. "rds:DescribeBackups"
	Resource string // e.g. "acs:rds:cn-hangzhou:1234567890:dbinstance/rm-a1"

	// Global condition keys. A nil SourceIP or a zero CurrentTime means the
	// key is absent: Evaluate does not read the clock itself, so that the
	// caller decides what "now" is (and tests can fix it).
	SourceIP        net.IP    // acs:SourceIp
	CurrentTime     time.Time // acs:CurrentTime
	SecureTransport bool      // acs:SecureTransport
	// acs:MFAPresent is always false: this service has no MFA.

	// Values holds other condition keys, e.g. "rds:ResourceTag/env". Map keys
	// match policy keys case-insensitively. Entries for the global keys above
	// are ignored, even when the field is unset, so that values derived from
	// request data can never impersonate them. A key with no values is absent.
	Values map[string][]string
}

// lookup returns the request values of a non-global key.
func (ctx *Context) lookup(c *condition) []string {
	if len(ctx.Values) == 0 {
		return nil
	}
	// Exact spellings first: they are map lookups, the scan is the fallback.
	if v, ok := ctx.Values[c.key]; ok {
		return v
	}
	if v, ok := ctx.Values[c.lower]; ok {
		return v
	}
	for k, v := range ctx.Values {
		if strings.EqualFold(k, c.key) {
			return v
		}
	}
	return nil
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allowed          bool
	NoPermissionType string // "" when allowed, else ExplicitDeny or ImplicitDeny
	PolicyName       string // the policy whose statement decided; "" for ImplicitDeny
	PolicyType       string // TypeSystem or TypeCustom of that policy
}

// Evaluate decides a request against the policies attached to the caller:
// a matching Deny statement in any policy wins, then a matching Allow, and
// otherwise the request is implicitly denied. When several Allows match, the
// first policy in the slice is reported. Nil policies are skipped.
func Evaluate(policies []*Policy, ctx Context) Decision {
	var allow *Policy
	for _, p := range policies {
		if p == nil || p.Document == nil {
			continue
		}
		for i := range p.Document.statements {
			s := &p.Document.statements[i]
			if !s.deny && allow != nil {
				continue // only a Deny can still change the outcome
			}
			if !s.matches(&ctx) {
				continue
			}
			if s.deny {
				return Decision{NoPermissionType: ExplicitDeny, PolicyName: p.Name, PolicyType: p.Type}
			}
			allow = p
		}
	}
	if allow != nil {
		return Decision{Allowed: true, PolicyName: allow.Name, PolicyType: allow.Type}
	}
	return Decision{NoPermissionType: ImplicitDeny}
}

// matches reports whether the statement applies to the request, checking
// the cheap pattern elements before the conditions.
func (s *statement) matches(ctx *Context) bool {
	if anyMatch(s.actions, ctx.Action) == s.notAction {
		return false
	}
	if anyMatch(s.resources, ctx.Resource) == s.notResource {
		return false
	}
	for i := range s.conditions {
		if !s.conditions[i].eval(ctx) {
			return false
		}
	}
	return true
}

func anyMatch(globs []glob, s string) bool {
	for i := range globs {
		if globs[i].match(s) {
			return true
		}
	}
	return false
}

package ram

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// category is the family of a condition operator; it decides how the
// policy's values are parsed and how request values are compared.
type category uint8

const (
	catString category = iota
	catStringFold
	catStringLike
	catNumeric
	catDate
	catBool
	catIP
)

// cmpOp is the comparison of Numeric* and Date* operators, read as
// "<request value> cmp <policy value>".
type cmpOp uint8

const (
	cmpEq cmpOp = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

type operator struct {
	cat    category
	cmp    cmpOp
	negate bool // the result of the positive form, inverted
}

// operators maps the case-sensitive operator names of RAM to their meaning.
var operators = map[string]operator{
	"StringEquals":              {cat: catString},
	"StringNotEquals":           {cat: catString, negate: true},
	"StringEqualsIgnoreCase":    {cat: catStringFold},
	"StringNotEqualsIgnoreCase": {cat: catStringFold, negate: true},
	"StringLike":                {cat: catStringLike},
	"StringNotLike":             {cat: catStringLike, negate: true},
	"NumericEquals":             {cat: catNumeric, cmp: cmpEq},
	"NumericNotEquals":          {cat: catNumeric, cmp: cmpEq, negate: true},
	"NumericLessThan":           {cat: catNumeric, cmp: cmpLt},
	"NumericLessThanEquals":     {cat: catNumeric, cmp: cmpLe},
	"NumericGreaterThan":        {cat: catNumeric, cmp: cmpGt},
	"NumericGreaterThanEquals":  {cat: catNumeric, cmp: cmpGe},
	"DateEquals":                {cat: catDate, cmp: cmpEq},
	"DateNotEquals":             {cat: catDate, cmp: cmpEq, negate: true},
	"DateLessThan":              {cat: catDate, cmp: cmpLt},
	"DateLessThanEquals":        {cat: catDate, cmp: cmpLe},
	"DateGreaterThan":           {cat: catDate, cmp: cmpGt},
	"DateGreaterThanEquals":     {cat: catDate, cmp: cmpGe},
	"Bool":                      {cat: catBool},
	"IpAddress":                 {cat: catIP},
	"NotIpAddress":              {cat: catIP, negate: true},
}

// operatorNames lists the operators for the "did you mean" hint.
var operatorNames = func() []string {
	names := make([]string, 0, len(operators))
	for n := range operators {
		names = append(names, n)
	}
	return names
}()

// Global condition keys, as RAM documents them. Policies may spell them in
// any case.
const (
	KeySourceIP        = "acs:SourceIp"
	KeyCurrentTime     = "acs:CurrentTime"
	KeySecureTransport = "acs:SecureTransport"
	KeyMFAPresent      = "acs:MFAPresent"
)

type globalKey uint8

const (
	notGlobal globalKey = iota
	globalSourceIP
	globalCurrentTime
	globalSecureTransport
	globalMFAPresent
)

var globalKeys = map[string]globalKey{
	strings.ToLower(KeySourceIP):        globalSourceIP,
	strings.ToLower(KeyCurrentTime):     globalCurrentTime,
	strings.ToLower(KeySecureTransport): globalSecureTransport,
	strings.ToLower(KeyMFAPresent):      globalMFAPresent,
}

// condition is one key under one operator, with its values pre-parsed into
// the operator's type so evaluation does no parsing of policy data.
type condition struct {
	op     operator
	key    string // as written
	lower  string // lower-case, for case-insensitive lookup
	global globalKey

	strs  []string // catString, catStringFold
	globs []glob   // catStringLike
	nums  []float64
	times []time.Time
	bools []bool
	nets  []netip.Prefix
}

// parseConditionBlock parses {"<Operator>": {"<key>": value(s)}, ...}.
func parseConditionBlock(v any, path string) ([]condition, error) {
	block, ok := v.(object)
	if !ok {
		return nil, malformed("%s: must be an object, got %s", path, describe(v))
	}
	var conds []condition
	for _, m := range block {
		op, ok := operators[m.key]
		if !ok {
			return nil, malformed("%s: %v", path, checkName(m.key, operatorNames, "operator", "operator names"))
		}
		opPath := path + "." + m.key
		keys, ok := m.val.(object)
		if !ok {
			return nil, malformed("%s: must be an object of condition keys, got %s", opPath, describe(m.val))
		}
		if len(keys) == 0 {
			// An empty operator would be vacuously true, silently widening an Allow.
			return nil, malformed("%s: must contain at least one condition key", opPath)
		}
		for _, k := range keys {
			c, err := parseCondition(op, k.key, k.val, opPath+"."+k.key)
			if err != nil {
				return nil, err
			}
			conds = append(conds, c)
		}
	}
	return conds, nil
}

func parseCondition(op operator, key string, v any, path string) (condition, error) {
	prefix, name, ok := strings.Cut(key, ":")
	if !ok || prefix == "" || name == "" {
		return condition{}, malformed(`%s: condition key %q is not of the form "<prefix>:<name>" (e.g. "acs:SourceIp")`, path, key)
	}
	c := condition{op: op, key: key, lower: strings.ToLower(key)}
	c.global = globalKeys[c.lower]

	var items []any
	single := false
	switch v := v.(type) {
	case []any:
		if len(v) == 0 {
			return condition{}, malformed("%s: must have at least one value", path)
		}
		items = v
	default:
		items, single = []any{v}, true
	}
	for i, it := range items {
		p := path
		if !single {
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		if err := c.addValue(it); err != nil {
			return condition{}, malformed("%s: %v", p, err)
		}
	}
	return c, nil
}

// addValue parses one policy value for the condition's operator.
func (c *condition) addValue(v any) error {
	if c.op.cat == catBool {
		switch v {
		case true, "true":
			c.bools = append(c.bools, true)
		case false, "false":
			c.bools = append(c.bools, false)
		default:
			return fmt.Errorf(`%s is not a boolean (true or "true", false or "false")`, describe(v))
		}
		return nil
	}
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = string(v)
	case bool:
		s = strconv.FormatBool(v)
	default:
		return fmt.Errorf("must be a string, number or boolean, got %s", describe(v))
	}
	switch c.op.cat {
	case catString, catStringFold:
		c.strs = append(c.strs, s)
	case catStringLike:
		c.globs = append(c.globs, compileGlob(s, false))
	case catNumeric:
		n, ok := parseNumber(s)
		if !ok {
			return fmt.Errorf("%s is not a number", describe(v))
		}
		c.nums = append(c.nums, n)
	case catDate:
		t, ok := parseDate(s)
		if !ok {
			return fmt.Errorf("%s is not a date (ISO 8601 such as \"2012-11-11T23:59:59Z\", or epoch seconds)", describe(v))
		}
		c.times = append(c.times, t)
	case catIP:
		p, ok := parsePrefix(s)
		if !ok {
			return fmt.Errorf("%s is not an IP address or CIDR", describe(v))
		}
		c.nets = append(c.nets, p)
	}
	return nil
}

func parseNumber(s string) (float64, bool) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

// parseDate accepts RFC 3339 (the ISO 8601 profile RAM documents, with
// optional fractional seconds), a bare date meaning midnight UTC, and
// integer epoch seconds.
func parseDate(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), true
	}
	return time.Time{}, false
}

// parsePrefix accepts an address (a one-address prefix) or a CIDR, IPv4 or
// IPv6. IPv4-mapped IPv6 forms are unmapped so that they match the plain
// IPv4 request addresses Evaluate compares them with.
func parsePrefix(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// eval reports whether the condition holds for the request. A key absent
// from the request fails every positive operator and so satisfies every
// negated one (see the package comment).
func (c *condition) eval(ctx *Context) bool {
	matched, present := c.test(ctx)
	if !present {
		return c.op.negate
	}
	return matched != c.op.negate
}

// test evaluates the positive form of the operator: whether any request
// value of the key matches any policy value.
func (c *condition) test(ctx *Context) (matched, present bool) {
	switch c.global {
	case globalSourceIP:
		a, ok := netip.AddrFromSlice(ctx.SourceIP)
		if !ok {
			return false, false
		}
		a = a.Unmap()
		if c.op.cat == catIP {
			return c.matchAddr(a), true
		}
		return c.matchString(a.String()), true
	case globalCurrentTime:
		if ctx.CurrentTime.IsZero() {
			return false, false
		}
		if c.op.cat == catDate {
			return c.matchTime(ctx.CurrentTime), true
		}
		return c.matchString(ctx.CurrentTime.UTC().Format(time.RFC3339)), true
	case globalSecureTransport:
		return c.matchBoolOrString(ctx.SecureTransport), true
	case globalMFAPresent:
		return c.matchBoolOrString(false), true // no MFA in this service
	}
	vals := ctx.lookup(c)
	if len(vals) == 0 {
		return false, false
	}
	for _, v := range vals {
		if c.matchString(v) {
			return true, true
		}
	}
	return false, true
}

func (c *condition) matchBoolOrString(b bool) bool {
	if c.op.cat == catBool {
		for _, p := range c.bools {
			if p == b {
				return true
			}
		}
		return false
	}
	return c.matchString(strconv.FormatBool(b))
}

// matchString compares one request value, given as text, with the policy
// values. A value that does not parse as the operator's type matches none.
func (c *condition) matchString(v string) bool {
	switch c.op.cat {
	case catString:
		for _, p := range c.strs {
			if v == p {
				return true
			}
		}
	case catStringFold:
		for _, p := range c.strs {
			if strings.EqualFold(v, p) {
				return true
			}
		}
	case catStringLike:
		for i := range c.globs {
			if c.globs[i].match(v) {
				return true
			}
		}
	case catNumeric:
		if n, ok := parseNumber(v); ok {
			for _, p := range c.nums {
				if compare(cmpFloat(n, p), c.op.cmp) {
					return true
				}
			}
		}
	case catDate:
		if t, ok := parseDate(v); ok {
			return c.matchTime(t)
		}
	case catBool:
		switch v {
		case "true":
			return c.matchBoolOrString(true)
		case "false":
			return c.matchBoolOrString(false)
		}
	case catIP:
		if a, err := netip.ParseAddr(v); err == nil {
			return c.matchAddr(a.Unmap())
		}
	}
	return false
}

func (c *condition) matchTime(t time.Time) bool {
	for _, p := range c.times {
		if compare(t.Compare(p), c.op.cmp) {
			return true
		}
	}
	return false
}

func (c *condition) matchAddr(a netip.Addr) bool {
	for _, p := range c.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare turns a three-way comparison result into the operator's verdict.
func compare(r int, op cmpOp) bool {
	switch op {
	case cmpEq:
		return r == 0
	case cmpLt:
		return r < 0
	case cmpLe:
		return r <= 0
	case cmpGt:
		return r > 0
	case cmpGe:
		return r >= 0
	}
	return false
}

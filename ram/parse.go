package ram

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rdsbackup/rdsbackup"
)

// Document is a parsed, validated policy document.
type Document struct {
	text       string
	statements []statement
}

// Text returns the document exactly as it was given to ParseDocument.
func (d *Document) Text() string { return d.text }

type statement struct {
	deny        bool
	notAction   bool // actions lists what the statement does NOT apply to
	actions     []glob
	notResource bool
	resources   []glob
	conditions  []condition
}

// Element names. They are case-sensitive, as in RAM.
const (
	elemVersion     = "Version"
	elemStatement   = "Statement"
	elemEffect      = "Effect"
	elemAction      = "Action"
	elemNotAction   = "NotAction"
	elemResource    = "Resource"
	elemNotResource = "NotResource"
	elemCondition   = "Condition"
)

var (
	topElements       = []string{elemVersion, elemStatement}
	statementElements = []string{elemEffect, elemAction, elemNotAction, elemResource, elemNotResource, elemCondition}
)

// ParseDocument parses and validates a policy document. Errors are
// *rdsbackup.Error with code rdsbackup.EInvalidPolicyDocument whose message
// names the offending element by its path, e.g. "Statement[1].Effect".
func ParseDocument(text string) (*Document, error) {
	if !utf8.ValidString(text) {
		return nil, malformed("the document is not valid UTF-8")
	}
	// Unmarshal validates the whole input first, which gives syntax errors
	// an offset; the token walk below then cannot fail on syntax.
	if err := json.Unmarshal([]byte(text), new(json.RawMessage)); err != nil {
		return nil, syntaxError(text, err)
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	root, err := readValue(dec, "")
	if err != nil {
		return nil, err
	}
	top, ok := root.(object)
	if !ok {
		return nil, malformed("the document must be a JSON object, got %s", describe(root))
	}
	if err := checkElements(top, "", topElements); err != nil {
		return nil, err
	}

	switch v, ok := top.get(elemVersion); {
	case !ok:
		return nil, malformed(`Version must be "1" and is missing`)
	case v != "1":
		return nil, malformed(`Version must be "1", got %s`, describe(v))
	}

	sv, ok := top.get(elemStatement)
	if !ok {
		return nil, malformed("Statement is required")
	}
	var list []any
	switch sv := sv.(type) {
	case []any:
		list = sv
	case object:
		list = []any{sv} // a lone statement; RAM itself accepts this too
	default:
		return nil, malformed("Statement: must be an array of statements, got %s", describe(sv))
	}
	if len(list) == 0 {
		return nil, malformed("Statement: must contain at least one statement")
	}
	doc := &Document{text: text, statements: make([]statement, len(list))}
	for i, v := range list {
		if err := parseStatement(&doc.statements[i], v, fmt.Sprintf("Statement[%d]", i)); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func parseStatement(st *statement, v any, path string) error {
	obj, ok := v.(object)
	if !ok {
		return malformed("%s: must be an object, got %s", path, describe(v))
	}
	if err := checkElements(obj, path, statementElements); err != nil {
		return err
	}

	switch e, ok := obj.get(elemEffect); {
	case !ok:
		return malformed(`%s: Effect is required and must be "Allow" or "Deny"`, path)
	case e == "Allow":
	case e == "Deny":
		st.deny = true
	default:
		return malformed(`%s.Effect: must be "Allow" or "Deny", got %s`, path, describe(e))
	}

	name, v, err := exclusive(obj, path, elemAction, elemNotAction)
	if err != nil {
		return err
	}
	if v == nil {
		return malformed("%s: Action or NotAction is required", path)
	}
	st.notAction = name == elemNotAction
	if st.actions, err = patterns(v, path+"."+name, checkAction, true); err != nil {
		return err
	}

	name, v, err = exclusive(obj, path, elemResource, elemNotResource)
	if err != nil {
		return err
	}
	if v == nil {
		return malformed(`%s: Resource is required (use "*" for all resources)`, path)
	}
	st.notResource = name == elemNotResource
	if st.resources, err = patterns(v, path+"."+name, checkResource, false); err != nil {
		return err
	}

	if c, ok := obj.get(elemCondition); ok {
		if st.conditions, err = parseConditionBlock(c, path+"."+elemCondition); err != nil {
			return err
		}
	}
	return nil
}

// exclusive returns which of two mutually exclusive elements obj has, and its
// value; v is nil when it has neither.
func exclusive(obj object, path, a, b string) (name string, v any, err error) {
	va, okA := obj.get(a)
	vb, okB := obj.get(b)
	switch {
	case okA && okB:
		return "", nil, malformed("%s: %s and %s are mutually exclusive", path, a, b)
	case okA:
		return a, va, nil
	case okB:
		return b, vb, nil
	}
	return "", nil, nil
}

// patterns compiles an Action or Resource value: one string or a non-empty
// array of strings.
func patterns(v any, path string, check func(string) error, fold bool) ([]glob, error) {
	var items []any
	single := false
	switch v := v.(type) {
	case string:
		items, single = []any{v}, true
	case []any:
		if len(v) == 0 {
			return nil, malformed("%s: must not be an empty list", path)
		}
		items = v
	default:
		return nil, malformed("%s: must be a string or an array of strings, got %s", path, describe(v))
	}
	globs := make([]glob, len(items))
	for i, it := range items {
		p := path
		if !single {
			p = fmt.Sprintf("%s[%d]", path, i)
		}
		s, ok := it.(string)
		if !ok {
			return nil, malformed("%s: must be a string, got %s", p, describe(it))
		}
		if err := check(s); err != nil {
			return nil, malformed("%s: %v", p, err)
		}
		globs[i] = compileGlob(s, fold)
	}
	return globs, nil
}

// checkAction accepts "*" and "<service>:<ApiName pattern>".
func checkAction(s string) error {
	if s == "*" {
		return nil
	}
	svc, api, ok := strings.Cut(s, ":")
	if !ok || svc == "" || api == "" || !allBytes(svc, isServiceByte) || !allBytes(api, isActionByte) {
		return fmt.Errorf(`%q is not "*" or of the form "<service>:<Action>" (e.g. "rds:Describe*")`, s)
	}
	return nil
}

// checkResource accepts "*" and ARNs "acs:<service>:<region>:<account-id>:<relative-id>".
// Region may be empty (global services such as RAM); the relative ID may
// itself contain colons.
func checkResource(s string) error {
	if s == "*" {
		return nil
	}
	f := strings.SplitN(s, ":", 5)
	if len(f) != 5 || f[0] != "acs" || f[1] == "" || f[4] == "" || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf(`%q is not "*" or of the form "acs:<service>:<region>:<account-id>:<relative-id>"`, s)
	}
	return nil
}

func isServiceByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func isActionByte(c byte) bool {
	return isServiceByte(c) || c == '*' || c == '?' || c == '.'
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// checkElements rejects element names outside known, pointing out a wrong
// case because that is the usual mistake.
func checkElements(obj object, path string, known []string) error {
	for _, m := range obj {
		if err := checkName(m.key, known, "element", "element names"); err != nil {
			if path == "" {
				return malformed("%v", err)
			}
			return malformed("%s: %v", path, err)
		}
	}
	return nil
}

func checkName(name string, known []string, what, plural string) error {
	for _, k := range known {
		if name == k {
			return nil
		}
	}
	for _, k := range known {
		if strings.EqualFold(name, k) {
			return fmt.Errorf("unknown %s %q (%s are case-sensitive; did you mean %q?)", what, name, plural, k)
		}
	}
	return fmt.Errorf("unknown %s %q", what, name)
}

func malformed(format string, args ...any) *rdsbackup.Error {
	return rdsbackup.Errorf(rdsbackup.EInvalidPolicyDocument, format, args...)
}

// syntaxError reports a JSON syntax error with a line and column, which is
// what a person editing a policy needs to find it.
func syntaxError(text string, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return malformed("invalid JSON: %v", err)
	}
	// Offset counts the bytes read, including the offending one.
	off := int(min(max(se.Offset-1, 0), int64(len(text))))
	line := 1 + strings.Count(text[:off], "\n")
	col := 1 + utf8.RuneCountInString(text[strings.LastIndexByte(text[:off], '\n')+1:off])
	return malformed("invalid JSON at line %d, column %d: %v", line, col, se)
}

// object is a JSON object that keeps its members in document order, so that
// errors are reported in reading order and duplicates can be refused.
type object []member

type member struct {
	key string
	val any
}

func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

// readValue reads one JSON value from dec, which holds valid JSON. Values are
// object, []any, string, json.Number, bool or nil. Duplicate member names are
// refused: encoding/json would silently keep the last one, making a
// document mean something other than what a reader sees first.
func readValue(dec *json.Decoder, path string) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, malformed("invalid JSON: %v", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		var obj object
		seen := make(map[string]bool)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return nil, malformed("invalid JSON: %v", err)
			}
			key, _ := tok.(string)
			if seen[key] {
				if path == "" {
					return nil, malformed("duplicate element %q", key)
				}
				return nil, malformed("%s: duplicate element %q", path, key)
			}
			seen[key] = true
			child := key
			if path != "" {
				child = path + "." + key
			}
			v, err := readValue(dec, child)
			if err != nil {
				return nil, err
			}
			obj = append(obj, member{key, v})
		}
		if _, err := dec.Token(); err != nil {
			return nil, malformed("invalid JSON: %v", err)
		}
		return obj, nil
	default: // '['
		arr := []any{}
		for i := 0; dec.More(); i++ {
			v, err := readValue(dec, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, malformed("invalid JSON: %v", err)
		}
		return arr, nil
	}
}

// describe renders a JSON value for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case json.Number:
		return string(v)
	case bool:
		return strconv.FormatBool(v)
	case object:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%v", v)
}

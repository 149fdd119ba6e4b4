package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

var testNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

const (
	testAK     = "LTAItestkey"
	testSecret = "s3cr3t"
)

func newTestAuth() *Authenticator {
	keys := map[string]struct {
		secret string
		active bool
	}{
		testAK:     {testSecret, true},
		"disabled": {"dsecret", false},
		"other":    {"osecret", true},
	}
	return &Authenticator{
		Lookup: func(_ context.Context, ak string) (Key, error) {
			if ak == "broken" {
				return Key{}, errors.New("database is down")
			}
			k, ok := keys[ak]
			if !ok {
				return Key{}, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no such key")
			}
			return Key{Secret: k.secret, Active: k.active}, nil
		},
		Nonces: NewNonceCache(15*time.Minute, 1000),
		Now:    func() time.Time { return testNow },
	}
}

func v2Params(ak, nonce string, ts time.Time) url.Values {
	return url.Values{
		"Action":           {"DescribeBackups"},
		"Version":          {"2014-08-15"},
		"Format":           {"JSON"},
		"RegionId":         {"cn-hangzhou"},
		"DBInstanceId":     {"rm-1 2*3~"},
		"AccessKeyId":      {ak},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureVersion": {"1.0"},
		"SignatureNonce":   {nonce},
		"SignatureType":    {""},
		"Timestamp":        {ts.UTC().Format("2006-01-02T15:04:05Z")},
	}
}

// v2Request signs params and sends them as GO-V1 does: all in the query.
func v2Request(method string, params url.Values, secret string) *http.Request {
	params.Set("Signature", SignV2(secret, StringToSignV2(method, params)))
	return httptest.NewRequest(method, "http://rds.example.com/?"+params.Encode(), nil)
}

func mustParse(t *testing.T, r *http.Request) *Request {
	t.Helper()
	req, err := ParseRequest(r, 0)
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	return req
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := rdsbackup.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestAuthenticateV2(t *testing.T) {
	ctx := context.Background()
	a := newTestAuth()

	// GET, everything in the query.
	req := mustParse(t, v2Request("GET", v2Params(testAK, "n1", testNow), testSecret))
	if req.SignatureVersion != 2 || req.AccessKeyID != testAK {
		t.Fatalf("SignatureVersion %d, AccessKeyID %q", req.SignatureVersion, req.AccessKeyID)
	}
	if err := a.Authenticate(ctx, req); err != nil {
		t.Fatalf("GET: %v", err)
	}

	// POST with the parameters split between query and form body.
	p := v2Params(testAK, "n2", testNow.Add(-14*time.Minute))
	p.Set("Signature", SignV2(testSecret, StringToSignV2("POST", p)))
	q, form := url.Values{}, url.Values{}
	for k, v := range p {
		if strings.HasPrefix(k, "Signature") {
			form[k] = v
		} else {
			q[k] = v
		}
	}
	r := httptest.NewRequest("POST", "/?"+q.Encode(), strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if err := a.Authenticate(ctx, mustParse(t, r)); err != nil {
		t.Fatalf("POST form: %v", err)
	}

	// Replay, then the same nonce under another key.
	err := a.Authenticate(ctx, mustParse(t, v2Request("GET", v2Params(testAK, "n1", testNow), testSecret)))
	wantCode(t, err, rdsbackup.ENonceUsed)
	if msg := rdsbackup.ErrorMessage(err); msg != "Specified signature nonce was used already." {
		t.Errorf("nonce message %q", msg)
	}
	if err := a.Authenticate(ctx, mustParse(t, v2Request("GET", v2Params("other", "n1", testNow), "osecret"))); err != nil {
		t.Errorf("same nonce, other key: %v", err)
	}

	// A timestamp with fractional seconds and an offset is accepted too.
	p = v2Params(testAK, "n3", testNow)
	p.Set("Timestamp", testNow.In(time.FixedZone("", 8*3600)).Add(500*time.Millisecond).Format(time.RFC3339Nano))
	if err := a.Authenticate(ctx, mustParse(t, v2Request("GET", p, testSecret))); err != nil {
		t.Errorf("RFC 3339 timestamp: %v", err)
	}
}

func TestAuthenticateV2Errors(t *testing.T) {
	ctx := context.Background()
	type tc struct {
		name   string
		params func() url.Values
		secret string
		code   string
		msg    string
		// unsigned sends the parameters without signing them.
		unsigned bool
	}
	base := func() url.Values { return v2Params(testAK, "nonce", testNow) }
	with := func(k, v string) func() url.Values {
		return func() url.Values { p := base(); p.Set(k, v); return p }
	}
	without := func(k string) func() url.Values {
		return func() url.Values { p := base(); p.Del(k); return p }
	}
	cases := []tc{
		{"method", with("SignatureMethod", "HMAC-SHA256"), testSecret, rdsbackup.EUnsupportedSignature, "", false},
		{"version", with("SignatureVersion", "2.0"), testSecret, rdsbackup.EUnsupportedSignature, "", false},
		{"bearer", with("SignatureType", "BEARERTOKEN"), testSecret, rdsbackup.EUnsupportedSignature, "", false},
		{"timestamp format", with("Timestamp", "2024-05-06 07:08:09"), testSecret, rdsbackup.ETimestampFormat, "", false},
		{"timestamp past", with("Timestamp", testNow.Add(-16*time.Minute).Format(time.RFC3339)), testSecret,
			rdsbackup.ETimestampExpired, "Specified time stamp or date value is expired.", false},
		{"timestamp future", with("Timestamp", testNow.Add(16*time.Minute).Format(time.RFC3339)), testSecret,
			rdsbackup.ETimestampExpired, "Specified time stamp or date value is expired.", false},
		{"unknown key", with("AccessKeyId", "nobody"), testSecret, rdsbackup.EAccessKeyNotFound, "Specified access key is not found.", false},
		{"disabled key", with("AccessKeyId", "disabled"), "dsecret", rdsbackup.EAccessKeyDisabled, "The Access Key is disabled.", false},
		{"lookup failure", with("AccessKeyId", "broken"), testSecret, rdsbackup.EINTERNAL, "", false},
	}
	for _, name := range []string{"AccessKeyId", "Signature", "SignatureNonce", "Timestamp", "SignatureMethod", "SignatureVersion"} {
		cases = append(cases, tc{"missing " + name, without(name), testSecret, rdsbackup.EMissingParameter,
			rdsbackup.MissingParameter(name).Message, name == "Signature"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.params()
			r := httptest.NewRequest("GET", "/?"+p.Encode(), nil)
			if !c.unsigned {
				r = v2Request("GET", p, c.secret)
			}
			err := newTestAuth().Authenticate(ctx, mustParse(t, r))
			wantCode(t, err, c.code)
			if _, ok := errors.AsType[*rdsbackup.Error](err); !ok && c.code != rdsbackup.EINTERNAL {
				t.Errorf("%T is not *rdsbackup.Error", err)
			}
			if c.msg != "" && rdsbackup.ErrorMessage(err) != c.msg {
				t.Errorf("message %q, want %q", rdsbackup.ErrorMessage(err), c.msg)
			}
		})
	}
}

func TestAuthenticateV2Mismatch(t *testing.T) {
	ctx := context.Background()
	a := newTestAuth()
	check := func(r *http.Request) {
		t.Helper()
		req := mustParse(t, r)
		err := a.Authenticate(ctx, req)
		wantCode(t, err, rdsbackup.ESignatureDoesNotMatch)
		want := "Specified signature is not matched with our calculation. server string to sign is:" +
			StringToSignV2(r.Method, req.Params)
		if msg := rdsbackup.ErrorMessage(err); msg != want {
			t.Errorf("message\n%s\nwant\n%s", msg, want)
		}
	}
	check(v2Request("GET", v2Params(testAK, "m1", testNow), "wrong secret"))

	// A parameter changed after signing.
	r := v2Request("GET", v2Params(testAK, "m2", testNow), testSecret)
	q := r.URL.Query()
	q.Set("DBInstanceId", "rm-other")
	r.URL.RawQuery = q.Encode()
	check(r)

	// The method is signed too.
	r = v2Request("GET", v2Params(testAK, "m3", testNow), testSecret)
	r.Method = "POST"
	check(r)

	// Failed attempts do not burn the nonce.
	if err := a.Authenticate(ctx, mustParse(t, v2Request("GET", v2Params(testAK, "m1", testNow), testSecret))); err != nil {
		t.Errorf("nonce of a failed request: %v", err)
	}
	if n := a.Nonces.(*NonceCache).Len(); n != 1 {
		t.Errorf("nonce cache holds %d, want 1", n)
	}
}

func TestAuthenticateNeedsNonces(t *testing.T) {
	a := newTestAuth()
	a.Nonces = nil
	err := a.Authenticate(context.Background(), mustParse(t, v2Request("GET", v2Params(testAK, "x", testNow), testSecret)))
	wantCode(t, err, rdsbackup.EINTERNAL)
}

// brokenNonces is a replay memory that cannot answer (its catalog is down).
type brokenNonces struct{}

func (brokenNonces) UseNonce(context.Context, string, bool, string, time.Time, time.Time) error {
	return errors.New("catalog unreachable")
}

func (brokenNonces) NonceCount(context.Context, time.Time) (int, error) { return 0, nil }

// A request whose nonce cannot be recorded is refused, as an internal
// error: it must not run unprotected.
func TestAuthenticateNonceStoreDown(t *testing.T) {
	a := newTestAuth()
	a.Nonces = brokenNonces{}
	err := a.Authenticate(context.Background(), mustParse(t, v2Request("GET", v2Params(testAK, "x", testNow), testSecret)))
	wantCode(t, err, rdsbackup.EINTERNAL)
	if !strings.Contains(err.Error(), "replay protection") || !strings.Contains(err.Error(), "catalog unreachable") {
		t.Errorf("error %v", err)
	}
}

// v3Request builds a request the way the Tea SDK does and signs it.
type v3Req struct {
	method, target, contentType string
	body                        []byte
	ak, secret, nonce           string
	date                        time.Time
	omitSigned                  string // a header to leave out of SignedHeaders
	edit                        func(*http.Request)
}

func (v v3Req) build() *http.Request {
	if v.method == "" {
		v.method = "POST"
	}
	if v.target == "" {
		v.target = "http://rds.example.com/?DBInstanceId=rm-1&Empty="
	}
	if v.ak == "" {
		v.ak, v.secret = testAK, testSecret
	}
	if v.date.IsZero() {
		v.date = testNow
	}
	r := httptest.NewRequest(v.method, v.target, bytes.NewReader(v.body))
	sum := sha256.Sum256(v.body)
	h := r.Header
	h.Set("x-acs-action", "DescribeBackups")
	h.Set("x-acs-version", "2014-08-15")
	h.Set("x-acs-date", v.date.UTC().Format("2006-01-02T15:04:05Z"))
	h.Set("x-acs-signature-nonce", v.nonce)
	h.Set("x-acs-content-sha256", hex.EncodeToString(sum[:]))
	h.Set("Accept", "application/json")
	h.Set("User-Agent", "AlibabaCloud test")
	if v.contentType != "" {
		h.Set("Content-Type", v.contentType)
	}
	signed := slices.DeleteFunc(SignedHeadersV3(h), func(s string) bool { return s == v.omitSigned })
	cr := CanonicalRequestV3(r.Method, r.URL.Path, r.URL.Query(), h, r.Host, signed, hex.EncodeToString(sum[:]))
	h.Set("Authorization", Authorization{
		Algorithm:     AlgorithmV3,
		AccessKeyID:   v.ak,
		SignedHeaders: signed,
		Signature:     SignV3(v.secret, StringToSignV3(cr)),
	}.String())
	if v.edit != nil {
		v.edit(r)
	}
	return r
}

func TestAuthenticateV3(t *testing.T) {
	ctx := context.Background()
	a := newTestAuth()

	req := mustParse(t, v3Req{nonce: "a"}.build())
	if req.SignatureVersion != 3 || req.AccessKeyID != testAK || req.Action != "DescribeBackups" ||
		req.Version != "2014-08-15" || req.Format != FormatJSON {
		t.Fatalf("parsed %+v", req)
	}
	if err := a.Authenticate(ctx, req); err != nil {
		t.Fatalf("V3: %v", err)
	}

	form := []byte("PageSize=30&StartTime=2024-01-01T00%3A00Z")
	req = mustParse(t, v3Req{nonce: "b", body: form, contentType: "application/x-www-form-urlencoded"}.build())
	if err := a.Authenticate(ctx, req); err != nil {
		t.Fatalf("V3 with form body: %v", err)
	}
	if req.Param("PageSize") != "30" || req.Param("DBInstanceId") != "rm-1" {
		t.Errorf("params %v", req.Params)
	}

	req = mustParse(t, v3Req{nonce: "c", method: "GET"}.build())
	if err := a.Authenticate(ctx, req); err != nil {
		t.Fatalf("V3 GET: %v", err)
	}

	wantCode(t, a.Authenticate(ctx, mustParse(t, v3Req{nonce: "a"}.build())), rdsbackup.ENonceUsed)
}

func TestAuthenticateV3Errors(t *testing.T) {
	ctx := context.Background()
	setHeader := func(k, v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set(k, v) }
	}
	delHeader := func(k string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Del(k) }
	}
	cases := []struct {
		name string
		v    v3Req
		code string
	}{
		{"malformed authorization", v3Req{edit: setHeader("Authorization", "ACS3-HMAC-SHA256 Credential=x")}, rdsbackup.EIncompleteSignature},
		{"algorithm", v3Req{edit: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), AlgorithmV3, "ACS3-HMAC-SM3", 1))
		}}, rdsbackup.EUnsupportedSignature},
		{"missing date", v3Req{edit: delHeader("x-acs-date")}, rdsbackup.EMissingParameter},
		{"missing nonce", v3Req{edit: delHeader("x-acs-signature-nonce")}, rdsbackup.EMissingParameter},
		{"missing content hash", v3Req{edit: delHeader("x-acs-content-sha256")}, rdsbackup.EMissingParameter},
		{"host unsigned", v3Req{omitSigned: "host"}, rdsbackup.EIncompleteSignature},
		{"action unsigned", v3Req{omitSigned: "x-acs-action"}, rdsbackup.EIncompleteSignature},
		{"version unsigned", v3Req{omitSigned: "x-acs-version"}, rdsbackup.EIncompleteSignature},
		{"date unsigned", v3Req{omitSigned: "x-acs-date"}, rdsbackup.EIncompleteSignature},
		{"nonce unsigned", v3Req{omitSigned: "x-acs-signature-nonce"}, rdsbackup.EIncompleteSignature},
		{"hash unsigned", v3Req{omitSigned: "x-acs-content-sha256"}, rdsbackup.EIncompleteSignature},
		{"content-type unsigned", v3Req{omitSigned: "content-type", body: []byte("a=b"),
			contentType: "application/x-www-form-urlencoded"}, rdsbackup.EIncompleteSignature},
		{"date format", v3Req{edit: setHeader("x-acs-date", "yesterday")}, rdsbackup.ETimestampFormat},
		{"date expired", v3Req{date: testNow.Add(-20 * time.Minute)}, rdsbackup.ETimestampExpired},
		{"date future", v3Req{date: testNow.Add(20 * time.Minute)}, rdsbackup.ETimestampExpired},
		{"unknown key", v3Req{ak: "nobody", secret: "x"}, rdsbackup.EAccessKeyNotFound},
		{"disabled key", v3Req{ak: "disabled", secret: "dsecret"}, rdsbackup.EAccessKeyDisabled},
		{"wrong secret", v3Req{ak: testAK, secret: "wrong"}, rdsbackup.ESignatureDoesNotMatch},
		{"signed header changed", v3Req{edit: setHeader("x-acs-action", "DeleteBackup")}, rdsbackup.ESignatureDoesNotMatch},
		{"query changed", v3Req{edit: func(r *http.Request) { r.URL.RawQuery = "DBInstanceId=rm-2&Empty=" }}, rdsbackup.ESignatureDoesNotMatch},
		{"host changed", v3Req{edit: func(r *http.Request) { r.Host = "evil.example.com" }}, rdsbackup.ESignatureDoesNotMatch},
		{"body changed", v3Req{body: []byte("a=b"), edit: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader("a=c"))
		}}, rdsbackup.ESignatureDoesNotMatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.v.nonce = "n-" + c.name
			req := mustParse(t, c.v.build())
			if req.SignatureVersion != 3 {
				t.Fatalf("SignatureVersion %d", req.SignatureVersion)
			}
			a := newTestAuth()
			err := a.Authenticate(ctx, req)
			wantCode(t, err, c.code)
			if c.code == rdsbackup.ESignatureDoesNotMatch && !strings.HasPrefix(rdsbackup.ErrorMessage(err), SignatureMismatchPrefix+AlgorithmV3+"\n") {
				t.Errorf("message %q", rdsbackup.ErrorMessage(err))
			}
			if a.Nonces.(*NonceCache).Len() != 0 {
				t.Errorf("a rejected request used a nonce")
			}
		})
	}
}

// TestAuthenticateThrottles: a RAM user's key over its rate is refused
// before its nonce is recorded, root keys are not limited, and a request
// that does not verify does not use the key's allowance.
func TestAuthenticateThrottles(t *testing.T) {
	ctx := context.Background()
	a := newTestAuth()
	a.Rates = NewKeyRates(0.001, 2)
	lookup := a.Lookup
	a.Lookup = func(ctx context.Context, ak string) (Key, error) {
		k, err := lookup(ctx, ak)
		k.Root = ak == "other"
		return k, err
	}
	call := func(ak, secret, nonce string) error {
		return a.Authenticate(ctx, mustParse(t, v2Request("GET", v2Params(ak, nonce, testNow), secret)))
	}
	wantCode(t, call(testAK, "wrong", "w1"), rdsbackup.ESignatureDoesNotMatch)
	wantCode(t, call(testAK, "wrong", "w2"), rdsbackup.ESignatureDoesNotMatch)
	for _, n := range []string{"n1", "n2"} {
		if err := call(testAK, testSecret, n); err != nil {
			t.Fatalf("within the burst: %v", err)
		}
	}
	err := call(testAK, testSecret, "n3")
	wantCode(t, err, rdsbackup.EThrottling)
	if !strings.Contains(rdsbackup.ErrorMessage(err), "flow control") || a.Nonces.(*NonceCache).Held(testAK) != 2 {
		t.Errorf("message %q, %d nonces held", rdsbackup.ErrorMessage(err), a.Nonces.(*NonceCache).Held(testAK))
	}
	for i := range 5 {
		if err := call("other", "osecret", fmt.Sprint("r", i)); err != nil {
			t.Fatalf("root key %d: %v", i, err)
		}
	}
}

package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

// FuzzParseRequest feeds hostile queries, form bodies and V3 headers to
// ParseRequest and Authenticate: nothing may panic, an accepted request has
// only well-formed parameter names, and a request whose signature is not
// made with the key's secret is never authenticated.
func FuzzParseRequest(f *testing.F) {
	f.Add("POST", "Action=DescribeBackups&Version=2014-08-15&DBInstanceId=rm-1", []byte("PageSize=30"),
		"application/x-www-form-urlencoded", "", "")
	f.Add("GET", "Format=json&AccessKeyId=LTAItestkey&Signature=abc&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=n&Timestamp=2024-05-06T07:08:09Z", []byte(nil), "", "", "")
	f.Add("POST", "DBInstanceId=rm-1", []byte("a=b"), "application/x-www-form-urlencoded",
		"ACS3-HMAC-SHA256 Credential=LTAItestkey,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=00", "DescribeBackups")
	f.Add("POST", "a%3Db%26c=1&%zz", []byte("\x00=\xff"), "application/x-www-form-urlencoded; charset=x", "ACS3-", "")
	f.Add("POST", strings.Repeat("&", 10001), []byte(strings.Repeat("a=1&", 100)), "application/x-www-form-urlencoded", "ACS3-HMAC-SHA256 ,,,", "x")
	f.Fuzz(func(t *testing.T, method, rawQuery string, body []byte, contentType, authorization, action string) {
		if method != "GET" {
			method = "POST"
		}
		r := httptest.NewRequest(method, "http://rds.example.com/", bytes.NewReader(body))
		r.URL.RawQuery = rawQuery
		r.Header.Set("Content-Type", contentType)
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
			r.Header.Set("x-acs-action", action)
			r.Header.Set("x-acs-version", "2014-08-15")
			r.Header.Set("x-acs-date", testNow.Format("2006-01-02T15:04:05Z"))
			r.Header.Set("x-acs-signature-nonce", "nonce")
			sum := sha256.Sum256(body)
			r.Header.Set("x-acs-content-sha256", hex.EncodeToString(sum[:]))
		}
		req, err := ParseRequest(r, 1<<16)
		if req == nil || req.RequestID == "" || (req.Format != FormatJSON && req.Format != FormatXML) {
			t.Fatalf("ParseRequest returned %+v", req)
		}
		if err != nil {
			if rdsbackup.ErrorCode(err) == rdsbackup.EINTERNAL {
				t.Fatalf("internal error: %v", err)
			}
			return
		}
		for name := range req.Params {
			if CheckParamName(name) != nil {
				t.Fatalf("accepted parameter name %q", name)
			}
		}
		// The signatures here are not made with the secret: never accepted.
		if err := newTestAuth().Authenticate(context.Background(), req); err == nil {
			t.Fatalf("a request not signed with the secret was authenticated: %q %q", rawQuery, authorization)
		}
	})
}

// FuzzSignatures signs arbitrary parameters the way the SDKs do, V2 and V3,
// and checks that the service's canonicalisation verifies them, and that
// changing any one value breaks the signature.
func FuzzSignatures(f *testing.F) {
	f.Add("DBInstanceId", "rm-1 2*3~", "StartTime", "2024-01-01T00:00Z", "POST")
	f.Add("Tag.1.Key", "é/ü?&=", "PolicyDocument", `{"Version":"1","Statement":[]}`, "GET")
	f.Add("a", "", "b", "%2F%", "POST")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, method string) {
		if method != "GET" {
			method = "POST"
		}
		if CheckParamName(k1) != nil || CheckParamName(k2) != nil || k1 == k2 {
			return // refused before any signature check (FuzzParseRequest)
		}
		for _, reserved := range []string{k1, k2} {
			switch reserved {
			case "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
				"SignatureNonce", "Timestamp", "SignatureType":
				return
			}
		}
		// V2: parameters in the query, signed over the percent-encoded pairs.
		p := v2Params(testAK, "v2-nonce", testNow)
		p.Set(k1, v1)
		p.Set(k2, v2)
		req := mustParse(t, v2Request(method, p, testSecret))
		if err := newTestAuth().Authenticate(context.Background(), req); err != nil {
			t.Fatalf("V2 %q=%q %q=%q: %v", k1, v1, k2, v2, err)
		}
		tampered := url.Values{}
		for k, vs := range req.Params {
			tampered[k] = vs
		}
		tampered.Set(k1, v1+"x")
		tr := httptest.NewRequest(method, "http://rds.example.com/?"+tampered.Encode(), nil)
		if err := newTestAuth().Authenticate(context.Background(), mustParse(t, tr)); rdsbackup.ErrorCode(err) != rdsbackup.ESignatureDoesNotMatch {
			t.Fatalf("V2 tampered value accepted: %v", err)
		}

		// V3: the query signed in the Authorization header.
		q := url.Values{k1: {v1}, k2: {v2}}
		v := v3Req{method: method, target: "http://rds.example.com/?" + q.Encode(), nonce: "v3-nonce"}
		if err := newTestAuth().Authenticate(context.Background(), mustParse(t, v.build())); err != nil {
			t.Fatalf("V3 %q=%q %q=%q: %v", k1, v1, k2, v2, err)
		}
		v.nonce = "v3-nonce-2"
		v.edit = func(r *http.Request) {
			q := r.URL.Query()
			q.Set(k2, v2+"x")
			r.URL.RawQuery = q.Encode()
		}
		if err := newTestAuth().Authenticate(context.Background(), mustParse(t, v.build())); rdsbackup.ErrorCode(err) != rdsbackup.ESignatureDoesNotMatch {
			t.Fatalf("V3 tampered value accepted: %v", err)
		}
	})
}

// FuzzParseAuthorization: no panic, and what parses prints back to itself.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("ACS3-HMAC-SHA256 Credential=LTAI,SignedHeaders=host;x-acs-date,Signature=abc")
	f.Add("ACS3-HMAC-SHA256 Credential=,SignedHeaders=;;,Signature=,Signature=")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := ParseAuthorization(h)
		if err != nil {
			return
		}
		b, err := ParseAuthorization(a.String())
		if err != nil || b.AccessKeyID != a.AccessKeyID || b.Signature != a.Signature || b.Algorithm != a.Algorithm {
			t.Fatalf("%q parsed as %+v, printed %q, reparsed %+v %v", h, a, a.String(), b, err)
		}
	})
}

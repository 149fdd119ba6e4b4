package rpc

import (
	"crypto/tls"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

func TestParseRequestBasics(t *testing.T) {
	r := httptest.NewRequest("POST", "https://rds.example.com/?Action=DescribeBackups&Version=2014-08-15&A=q",
		strings.NewReader("A=form&B=2"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	r.Header.Set("x-acs-action", "DeleteBackup") // unsigned in V2: ignored
	r.RemoteAddr = "[::ffff:10.0.0.2]:5555"
	r.TLS = &tls.ConnectionState{}
	req := mustParse(t, r)

	if req.Action != "DescribeBackups" || req.Version != "2014-08-15" {
		t.Errorf("Action %q Version %q", req.Action, req.Version)
	}
	if got := req.Params["A"]; len(got) != 2 || got[0] != "q" || got[1] != "form" {
		t.Errorf("A = %q, want query then form", got)
	}
	if req.Param("A") != "q" || req.Param("B") != "2" || req.Param("C") != "" {
		t.Errorf("Param: %v", req.Params)
	}
	if string(req.Body) != "A=form&B=2" {
		t.Errorf("Body %q", req.Body)
	}
	if !req.SourceIP.Equal(net.ParseIP("10.0.0.2")) || len(req.SourceIP) != 4 {
		t.Errorf("SourceIP %v", req.SourceIP)
	}
	if !req.Secure {
		t.Error("Secure is false")
	}
	if req.SignatureVersion != 0 || req.Format != FormatXML {
		t.Errorf("SignatureVersion %d Format %s", req.SignatureVersion, req.Format)
	}
	if !regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$`).MatchString(req.RequestID) {
		t.Errorf("RequestID %q", req.RequestID)
	}
	if again := mustParse(t, httptest.NewRequest("GET", "/", nil)); again.RequestID == req.RequestID {
		t.Error("RequestID reused")
	}
}

func TestParseRequestNotForm(t *testing.T) {
	r := httptest.NewRequest("POST", "/?Action=X", strings.NewReader(`{"Action":"Y"}`))
	r.Header.Set("Content-Type", "application/json")
	req := mustParse(t, r)
	if req.Action != "X" || len(req.Params) != 1 {
		t.Errorf("Params %v", req.Params)
	}
	// GET bodies are kept (V3 hashes them) but not parsed.
	req = mustParse(t, httptest.NewRequest("GET", "/", strings.NewReader("Action=Z")))
	if req.Action != "" || string(req.Body) != "Action=Z" {
		t.Errorf("GET: Action %q Body %q", req.Action, req.Body)
	}
}

func TestParseRequestSourceIP(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.1:80":      "192.0.2.1",
		"[2001:db8::1]:443": "2001:db8::1",
		"[fe80::1%eth0]:80": "fe80::1",
		"192.0.2.9":         "192.0.2.9",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		if got := mustParse(t, r).SourceIP; !got.Equal(net.ParseIP(want)) {
			t.Errorf("%s: SourceIP %v, want %s", addr, got, want)
		}
	}
}

func TestParseRequestBodyLimit(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		r := httptest.NewRequest("POST", "/?Format=json", strings.NewReader("0123456789x"))
		if chunked {
			r.ContentLength = -1
		}
		req, err := ParseRequest(r, 10)
		wantCode(t, err, rdsbackup.EINVALID)
		if req == nil || req.RequestID == "" || req.Format != FormatJSON {
			t.Errorf("chunked=%v: request %+v", chunked, req)
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader("0123456789"))
	if _, err := ParseRequest(r, 10); err != nil {
		t.Errorf("body at the limit: %v", err)
	}
}

func TestParseRequestMalformed(t *testing.T) {
	req, err := ParseRequest(httptest.NewRequest("GET", "/?Format=JSON&a=%zz", nil), 0)
	wantCode(t, err, rdsbackup.EINVALID)
	if req.Format != FormatJSON {
		t.Errorf("Format %s: the error should still be written as JSON", req.Format)
	}

	r := httptest.NewRequest("POST", "/", strings.NewReader("a=%zz"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err = ParseRequest(r, 0)
	wantCode(t, err, rdsbackup.EINVALID)
}

func TestFormat(t *testing.T) {
	cases := []struct {
		name, query, accept string
		v3                  bool
		want, code          string
	}{
		{"v2 default", "", "", false, FormatXML, ""},
		{"v2 ignores Accept", "", "application/json", false, FormatXML, ""},
		{"param JSON", "Format=JSON", "", false, FormatJSON, ""},
		{"param lowercase", "Format=json", "", false, FormatJSON, ""},
		{"param xml", "Format=xml", "application/json", true, FormatXML, ""},
		{"v3 accept json", "", "text/plain, Application/JSON;q=0.9", true, FormatJSON, ""},
		{"v3 no accept", "", "", true, FormatXML, ""},
		{"invalid", "Format=yaml", "", false, FormatXML, rdsbackup.EInvalidFormat},
		{"invalid v3", "Format=yaml", "application/json", true, FormatJSON, rdsbackup.EInvalidFormat},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/?AccessKeyId=x&"+c.query, nil)
		if c.accept != "" {
			r.Header.Set("Accept", c.accept)
		}
		if c.v3 {
			r.Header.Set("Authorization", "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=x")
			r.Header.Set("x-acs-action", "DescribeBackups")
		}
		req, err := ParseRequest(r, 0)
		if c.code == "" && err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if c.code != "" {
			if got := rdsbackup.ErrorCode(err); got != c.code {
				t.Errorf("%s: code %q, want %q", c.name, got, c.code)
			} else if !strings.Contains(rdsbackup.ErrorMessage(err), `"Format"`) {
				t.Errorf("%s: message %q does not name Format", c.name, rdsbackup.ErrorMessage(err))
			}
		}
		if req.Format != c.want {
			t.Errorf("%s: Format %s, want %s", c.name, req.Format, c.want)
		}
		if c.v3 && (req.SignatureVersion != 3 || req.Action != "DescribeBackups" || req.AccessKeyID != "ak") {
			t.Errorf("%s: V3 request %+v", c.name, req)
		}
		if !c.v3 && (req.SignatureVersion != 2 || req.AccessKeyID != "x") {
			t.Errorf("%s: V2 request %+v", c.name, req)
		}
	}
}

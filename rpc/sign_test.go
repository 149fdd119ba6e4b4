package rpc

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

func TestPercentEncode(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"AZaz09-_.~":       "AZaz09-_.~",
		"a b":              "a%20b",
		"a*b":              "a%2Ab",
		"a+b/c=d&e":        "a%2Bb%2Fc%3Dd%26e",
		"中":                "%E4%B8%AD",
		"%":                "%25",
		"2006-01-02T15:04": "2006-01-02T15%3A04",
	} {
		if got := PercentEncode(in); got != want {
			t.Errorf("PercentEncode(%q) = %q, want %q", in, got, want)
		}
	}
}

// Vector from the aliyun Go SDK v1 (spec §3.3).
func TestSignV2Vector(t *testing.T) {
	params := url.Values{
		"AccessKeyId":      {"accessKeyId"},
		"Action":           {""},
		"Format":           {"JSON"},
		"RegionId":         {"regionId"},
		"SignatureMethod":  {"HMAC-SHA1"},
		"SignatureNonce":   {"MOCK_UUID"},
		"SignatureType":    {""},
		"SignatureVersion": {"1.0"},
		"Timestamp":        {"mock date"},
		"Version":          {""},
		"Signature":        {"ignored"},
	}
	const wantSTS = "GET&%2F&AccessKeyId%3DaccessKeyId%26Action%3D%26Format%3DJSON%26RegionId%3DregionId%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3DMOCK_UUID%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3Dmock%2520date%26Version%3D"
	sts := StringToSignV2("GET", params)
	if sts != wantSTS {
		t.Fatalf("StringToSignV2 =\n%s\nwant\n%s", sts, wantSTS)
	}
	if got := SignV2("accessKeySecret", sts); got != "7loPmFjvDnzOVnQeQNj85S6nFGY=" {
		t.Errorf("SignV2 = %s", got)
	}
	params.Set("SecurityToken", "accessKeyStsToken")
	if got := SignV2("accessKeySecret", StringToSignV2("GET", params)); got != "5Nxdcler+ihqWqv0Hr2On4PsBf4=" {
		t.Errorf("SignV2 with SecurityToken = %s", got)
	}
}

// Vector from darabonba-openapi-util Test_GetAuthorization (spec §3.4).
func TestSignV3Vector(t *testing.T) {
	query := url.Values{"test": {"ok"}, "empty": {""}}
	// A raw map, not canonicalized, as the Tea SDK has it.
	headers := http.Header{"x-acs-test": {"http"}, "x-acs-TEST": {"https"}}
	signed := SignedHeadersV3(headers)
	signed = slices.DeleteFunc(signed, func(s string) bool { return s == "host" }) // the vector has no host
	if want := []string{"x-acs-test"}; !slices.Equal(signed, want) {
		t.Fatalf("signed headers = %q, want %q", signed, want)
	}
	cr := CanonicalRequestV3("", "", query, headers, "", signed,
		"55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23")
	wantCR := "\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
	if cr != wantCR {
		t.Fatalf("canonical request =\n%q\nwant\n%q", cr, wantCR)
	}
	auth := Authorization{
		Algorithm:     AlgorithmV3,
		AccessKeyID:   "acesskey",
		SignedHeaders: signed,
		Signature:     SignV3("secret", StringToSignV3(cr)),
	}
	const want = "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,Signature=4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3"
	if got := auth.String(); got != want {
		t.Errorf("Authorization =\n%s\nwant\n%s", got, want)
	}
}

func TestCanonicalRequestV3Host(t *testing.T) {
	h := http.Header{}
	h.Set("X-Acs-Date", " 2024-01-01T00:00:00Z ")
	cr := CanonicalRequestV3("POST", "/a b/", url.Values{"k": {"a b"}}, h, "example.com:8080",
		[]string{"X-Acs-Date", "host", "host"}, "h")
	want := "POST\n/a%20b/\nk=a%20b\nhost:example.com:8080\nx-acs-date:2024-01-01T00:00:00Z\n\nhost;x-acs-date\nh"
	if cr != want {
		t.Errorf("got\n%q\nwant\n%q", cr, want)
	}
}

func TestParseAuthorization(t *testing.T) {
	a, err := ParseAuthorization("ACS3-HMAC-SHA256 Credential=ak1,SignedHeaders=host;x-acs-date,Signature=abc")
	if err != nil {
		t.Fatal(err)
	}
	want := Authorization{Algorithm: AlgorithmV3, AccessKeyID: "ak1", SignedHeaders: []string{"host", "x-acs-date"}, Signature: "abc"}
	if a.Algorithm != want.Algorithm || a.AccessKeyID != want.AccessKeyID || a.Signature != want.Signature ||
		!slices.Equal(a.SignedHeaders, want.SignedHeaders) {
		t.Errorf("got %+v, want %+v", a, want)
	}
	if a.String() != "ACS3-HMAC-SHA256 Credential=ak1,SignedHeaders=host;x-acs-date,Signature=abc" {
		t.Errorf("String() = %s", a)
	}
	if a, err := ParseAuthorization("ACS3-HMAC-SM3 Credential=ak,SignedHeaders=host,Signature=x"); err != nil || a.Algorithm != "ACS3-HMAC-SM3" {
		t.Errorf("other algorithm: %+v, %v", a, err)
	}

	for _, bad := range []string{
		"",
		"ACS3-HMAC-SHA256",
		"ACS3-HMAC-SHA256 ",
		"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host",
		"ACS3-HMAC-SHA256 SignedHeaders=host,Signature=x",
		"ACS3-HMAC-SHA256 Credential=ak,Signature=x",
		"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=,Signature=x",
		"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=",
		"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=x,Signature=y",
		"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=x,Extra=1",
		"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature",
	} {
		_, err := ParseAuthorization(bad)
		if e, ok := errors.AsType[*rdsbackup.Error](err); !ok || e.Code != rdsbackup.EIncompleteSignature {
			t.Errorf("ParseAuthorization(%q) = %v, want IncompleteSignature", bad, err)
		}
	}
}

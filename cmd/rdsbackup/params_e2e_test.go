package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// TestParamNamesV3Tampering puts a man in the middle between the Tea SDK
// (V3 signatures) and the service, who merges two parameters into one
// name. The V3 canonical query does not escape names, so the signature
// still verifies; the service must refuse the name instead of answering
// 200 and dropping the change.
func TestParamNamesV3Tampering(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	target, _ := url.Parse("http://" + s.Addr)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // signed
		r.Out.URL.RawQuery = strings.Replace(r.Out.URL.RawQuery, "BackupRetentionPeriod=730&Category=Standard",
			url.QueryEscape("BackupRetentionPeriod=730&Category")+"=Standard", 1)
	}}
	mitm := httptest.NewServer(proxy)
	defer mitm.Close()
	addr := strings.TrimPrefix(mitm.URL, "http://")

	o := v3Call(t, addr, rootKeyID, rootKeySecret, "", "ModifyBackupPolicy", "2014-08-15",
		"DBInstanceId=rm-a1", "BackupRetentionPeriod=730", "Category=Standard")
	wantV3Error(t, o, "InvalidParameter", 400)
	if !strings.Contains(o.Message, `"BackupRetentionPeriod=730&Category"`) {
		t.Errorf("the message does not name the parameter: %q", o.Message)
	}
	resp, err := rootClients(t, s).RDS.DescribeBackupPolicy(func() *rds.DescribeBackupPolicyRequest {
		r := rds.CreateDescribeBackupPolicyRequest()
		r.DBInstanceId = "rm-a1"
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	if resp.BackupRetentionPeriod == 730 {
		t.Errorf("the tampered request changed the retention")
	}

	// Untampered, through the same proxy: applied.
	o = v3Call(t, addr, rootKeyID, rootKeySecret, "", "ModifyBackupPolicy", "2014-08-15",
		"DBInstanceId=rm-a1", "BackupRetentionPeriod=729")
	if !o.OK {
		t.Fatalf("untampered ModifyBackupPolicy: %+v", o)
	}
}

// TestParamNames sends V2-signed requests with malformed parameter names
// (the V2 signature escapes names, so they verify), an unknown well-formed
// name, a huge value and too many parameters.
func TestParamNames(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	call := func(extra url.Values) *rawResponse {
		p := describeBackupsParams("DBInstanceId", "rm-a1")
		for k, vs := range extra {
			p[k] = vs
		}
		return rawCall(t, s.Addr, rootSigned(p))
	}
	for _, name := range []string{"Page Size", "a=b&c", "PageSize\x00", "名前", "x;y", strings.Repeat("A", 129)} {
		e := wantRawError(t, call(url.Values{name: {"1"}}), "InvalidParameter", 400)
		if !strings.Contains(e.Message, "parameter name") || !strings.Contains(e.Message, strconv.Quote(name)[:min(20, len(strconv.Quote(name)))]) {
			t.Errorf("name %q: message %q", name, e.Message)
		}
	}
	// Unknown names that are well formed are accepted (Terraform sends
	// parameters no SDK declares), and so is an empty name (its delete of
	// a clone sends one).
	for _, name := range []string{"ResourceGroupId", "Tag.1.Key", "x-y_z.0", strings.Repeat("A", 128), ""} {
		if r := call(url.Values{name: {"1"}}); r.Status != 200 {
			t.Errorf("name %q: %d %s", name, r.Status, r.Body)
		}
	}

	t.Run("huge value", func(t *testing.T) {
		huge := strings.Repeat("x", 900<<10)
		p := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "PageSize", huge))
		r := formCall(t, s.Addr, p)
		e := wantRawError(t, r, "InvalidMaxRecordsPerPage.Malformed", 403)
		if len(r.Body) > 2048 || !strings.Contains(e.Message, strconv.Itoa(len(huge))+" bytes") {
			t.Errorf("%d-byte error body: %.300s", len(r.Body), r.Body)
		}
	})

	t.Run("huge names in RAM calls", func(t *testing.T) {
		huge := strings.Repeat("u", 200<<10)
		for _, action := range []string{"GetUser", "DeleteUser", "ListPoliciesForUser"} {
			p := rootSigned(url.Values{"Action": {action}, "Version": {"2015-05-01"}, "UserName": {huge}})
			r := formCall(t, s.Addr, p)
			e := wantRawError(t, r, "EntityNotExist.User", 404)
			if len(r.Body) > 2048 || !strings.Contains(e.Message, strconv.Itoa(len(huge))+" bytes") {
				t.Errorf("%s: %d-byte error body: %.300s", action, len(r.Body), r.Body)
			}
		}
	})

	t.Run("too many parameters", func(t *testing.T) {
		extra := url.Values{}
		for i := range 10001 {
			extra.Set("P"+strconv.Itoa(i), "1")
		}
		p := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1"))
		r := formCall(t, s.Addr, p, extra)
		e := wantRawError(t, r, "InvalidParameter", 400)
		if !strings.Contains(e.Message, "at most 10000") {
			t.Errorf("message %q", e.Message)
		}
		// Query and body together count.
		for k := range extra {
			if len(extra) <= 9995 {
				break
			}
			delete(extra, k)
		}
		e = wantRawError(t, formCall(t, s.Addr, p, extra), "InvalidParameter", 400)
		if !strings.Contains(e.Message, "at most 10000") {
			t.Errorf("query and body together: %q", e.Message)
		}
	})
}

// formCall POSTs signed params as a form body, with unsigned params in the
// query (they are refused before the signature is checked).
func formCall(t *testing.T, addr string, signed url.Values, query ...url.Values) *rawResponse {
	t.Helper()
	target := "http://" + addr + "/"
	if len(query) > 0 {
		target += "?" + query[0].Encode()
	}
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(signed.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return sendRaw(t, req)
}

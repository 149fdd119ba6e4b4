package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"
)

// The tests below drive the darabonba OpenAPI client
// (github.com/alibabacloud-go/darabonba-openapi/v2), the core of the current
// Alibaba Cloud Tea SDKs, which sign V3 by default.

// v3Outcome is the result of one v3Call.
type v3Outcome struct {
	OK                 bool
	StatusCode         int
	Body               map[string]any
	Headers            map[string]string // lower-case names
	Code               string
	Message            string
	RequestID          string
	AccessDeniedDetail map[string]any
}

// v3Call makes one RPC call with CallApi; alg "" signs V3, "v2" signs V2.
// Parameters prefixed with "body:" travel in the form body, the others in
// the query. A service error is returned in the outcome, any other error
// fails the test.
func v3Call(t *testing.T, addr, ak, secret, alg, action, version string, params ...string) v3Outcome {
	t.Helper()
	query := map[string]*string{}
	var body map[string]any
	for _, kv := range params {
		k, v, _ := strings.Cut(kv, "=")
		if name, ok := strings.CutPrefix(k, "body:"); ok {
			if body == nil {
				body = map[string]any{}
			}
			body[name] = v
		} else {
			query[k] = tea.String(v)
		}
	}
	cfg := &openapi.Config{
		AccessKeyId:     tea.String(ak),
		AccessKeySecret: tea.String(secret),
		RegionId:        tea.String("cn-hangzhou"),
		Endpoint:        tea.String(addr),
		Protocol:        tea.String("HTTP"),
	}
	if alg != "" {
		cfg.SignatureAlgorithm = tea.String(alg)
	}
	client, err := openapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("openapi.NewClient: %v", err)
	}
	p := &openapi.Params{
		Action:      tea.String(action),
		Version:     tea.String(version),
		Protocol:    tea.String("HTTP"),
		Pathname:    tea.String("/"),
		Method:      tea.String("POST"),
		AuthType:    tea.String("AK"),
		Style:       tea.String("RPC"),
		ReqBodyType: tea.String("formData"),
		BodyType:    tea.String("json"),
	}
	res, err := client.CallApi(p, &openapi.OpenApiRequest{Query: query, Body: body}, &dara.RuntimeOptions{})

	var o v3Outcome
	// CallApi wraps the client's ClientError/ServerError in *tea.SDKError,
	// as the generated SDKs return them (unless DisableSDKError is set).
	var te *tea.SDKError
	var ce *openapi.ClientError
	var se *openapi.ServerError
	switch {
	case err == nil:
		o.OK = true
		fmt.Sscan(fmt.Sprint(res["statusCode"]), &o.StatusCode) // an int of some width
		// The SDK decodes numbers as json.Number: normalize to float64.
		if b, ok := res["body"].(map[string]any); ok {
			o.Body = jsonMap(t, b)
		}
		o.Headers = map[string]string{}
		switch h := res["headers"].(type) {
		case map[string]*string:
			for k, v := range h {
				o.Headers[strings.ToLower(k)] = tea.StringValue(v)
			}
		case map[string]any:
			for k, v := range h {
				o.Headers[strings.ToLower(k)] = fmt.Sprint(v)
			}
		}
	case errors.As(err, &te):
		o.StatusCode, o.Code, o.Message = tea.IntValue(te.StatusCode), tea.StringValue(te.Code), tea.StringValue(te.Message)
		o.AccessDeniedDetail = jsonMap(t, te.AccessDeniedDetail)
		var data struct{ RequestId string }
		json.Unmarshal([]byte(tea.StringValue(te.Data)), &data)
		o.RequestID = data.RequestId
	case errors.As(err, &ce):
		o.StatusCode, o.Code, o.Message = tea.IntValue(ce.StatusCode), tea.StringValue(ce.Code), tea.StringValue(ce.Message)
		o.RequestID, o.AccessDeniedDetail = tea.StringValue(ce.RequestId), jsonMap(t, ce.AccessDeniedDetail)
	case errors.As(err, &se):
		o.StatusCode, o.Code, o.Message = tea.IntValue(se.StatusCode), tea.StringValue(se.Code), tea.StringValue(se.Message)
		o.RequestID = tea.StringValue(se.RequestId)
	default:
		t.Fatalf("CallApi %s: %v", action, err)
	}
	return o
}

// jsonMap returns v, a JSON object as decoded by the SDK (or nil), with its
// numbers as float64, as encoding/json decodes them.
func jsonMap(t *testing.T, v any) map[string]any {
	t.Helper()
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encode %T: %v", v, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func wantV3Error(t *testing.T, o v3Outcome, code string, status int) {
	t.Helper()
	if o.OK || o.Code != code || o.StatusCode != status {
		t.Fatalf("want %s (%d), got ok=%v %s (%d): %s", code, status, o.OK, o.Code, o.StatusCode, o.Message)
	}
	if o.RequestID == "" {
		t.Errorf("error without RequestId")
	}
}

func TestTeaSDKCallApi(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	root := rootClients(t, s)
	ak, secret := createUserWithKey(t, root, "tea-user")
	createPolicy(t, root, "tea-a", policyDocument("Allow", "rds:DescribeBackups", "acs:rds:*:*:dbinstance/rm-a*"))
	attachPolicy(t, root, "tea-a", "Custom", "tea-user")

	for _, alg := range []string{"", "v2"} {
		name := "V3"
		if alg != "" {
			name = "SignatureAlgorithm=" + alg
		}
		t.Run(name+"/DescribeBackups", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, rootKeyID, rootKeySecret, alg, "DescribeBackups", "2014-08-15",
				"DBInstanceId=rm-a1", "PageSize=30", "BackupStatus=Success")
			if !o.OK || o.StatusCode != 200 {
				t.Fatalf("%+v", o)
			}
			b := o.Body
			if b["PageNumber"] != "1" || b["PageRecordCount"] != "3" || b["TotalRecordCount"] != "3" || b["PageSize"] != float64(30) {
				t.Errorf("counters: %v", b)
			}
			if id, _ := b["RequestId"].(string); id == "" || o.Headers["x-acs-request-id"] != id {
				t.Errorf("RequestId %v, x-acs-request-id %q", b["RequestId"], o.Headers["x-acs-request-id"])
			}
			if ct := o.Headers["content-type"]; ct != "application/json;charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			items, _ := b["Items"].(map[string]any)
			list, _ := items["Backup"].([]any)
			if len(list) != 3 {
				t.Fatalf("Items.Backup: %v", b["Items"])
			}
			for i, want := range idStrings(104, 103, 101) {
				set, _ := list[i].(map[string]any)
				if set["BackupId"] != want || set["BackupStatus"] != "Success" || set["IsAvail"] != float64(1) ||
					set["Encryption"] != "{}" || set["BackupSize"] != float64(2167808) {
					t.Errorf("backup %d: %v", i, set)
				}
			}
		})
		t.Run(name+"/wrong secret", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, rootKeyID, "wrong-secret", alg, "DescribeBackups", "2014-08-15", "DBInstanceId=rm-a1")
			wantV3Error(t, o, "SignatureDoesNotMatch", 400)
		})
		t.Run(name+"/unknown key", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, "LTAInosuchkey000000000", rootKeySecret, alg, "DescribeBackups", "2014-08-15", "DBInstanceId=rm-a1")
			wantV3Error(t, o, "InvalidAccessKeyId.NotFound", 404)
		})
		t.Run(name+"/bad PageSize", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, rootKeyID, rootKeySecret, alg, "DescribeBackups", "2014-08-15", "DBInstanceId=rm-a1", "PageSize=20")
			wantV3Error(t, o, "InvalidMaxRecordsPerPage.Malformed", 403)
		})
		t.Run(name+"/RAM denied", func(t *testing.T) {
			t.Parallel()
			if o := v3Call(t, s.Addr, ak, secret, alg, "DescribeBackups", "2014-08-15", "DBInstanceId=rm-a1"); !o.OK {
				t.Fatalf("allowed call refused: %+v", o)
			}
			o := v3Call(t, s.Addr, ak, secret, alg, "DescribeBackups", "2014-08-15", "DBInstanceId=rm-b1")
			wantV3Error(t, o, "Forbidden.RAM", 403)
			if o.AccessDeniedDetail["NoPermissionType"] != "ImplicitDeny" || o.AccessDeniedDetail["AuthAction"] != "rds:DescribeBackups" {
				t.Errorf("AccessDeniedDetail %v", o.AccessDeniedDetail)
			}
		})
		t.Run(name+"/RAM ListUsers", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, rootKeyID, rootKeySecret, alg, "ListUsers", "2015-05-01")
			users, _ := o.Body["Users"].(map[string]any)
			list, _ := users["User"].([]any)
			found := false
			for _, u := range list {
				found = found || u.(map[string]any)["UserName"] == "tea-user"
			}
			if !o.OK || !found {
				t.Fatalf("%+v", o)
			}
		})
		t.Run(name+"/form body", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, rootKeyID, rootKeySecret, alg, "DescribeBackups", "2014-08-15",
				"body:DBInstanceId=rm-a1", "body:BackupStatus=Failed", "PageSize=50")
			if !o.OK || o.Body["TotalRecordCount"] != "2" || o.Body["PageSize"] != float64(50) {
				t.Fatalf("%+v", o)
			}
		})
		t.Run(name+"/parameter encoding", func(t *testing.T) {
			t.Parallel()
			user := "tea-enc" + alg
			display, comments := "Zoë *~ x+y (ü)", "a b*~+&=%/?;中文"
			o := v3Call(t, s.Addr, rootKeyID, rootKeySecret, alg, "CreateUser", "2015-05-01",
				"UserName="+user, "DisplayName="+display, "body:Comments="+comments)
			if !o.OK {
				t.Fatalf("CreateUser: %+v", o)
			}
			get := ram.CreateGetUserRequest()
			get.UserName = user
			u, err := rootClients(t, s).RAM.GetUser(get)
			if err != nil {
				t.Fatal(err)
			}
			if u.User.DisplayName != display || u.User.Comments != comments {
				t.Errorf("DisplayName %q Comments %q, want %q %q", u.User.DisplayName, u.User.Comments, display, comments)
			}
		})
		t.Run(name+"/InvalidVersion", func(t *testing.T) {
			t.Parallel()
			o := v3Call(t, s.Addr, rootKeyID, rootKeySecret, alg, "DescribeBackups", "2013-01-01", "DBInstanceId=rm-a1")
			wantV3Error(t, o, "InvalidVersion", 400)
		})
	}
}

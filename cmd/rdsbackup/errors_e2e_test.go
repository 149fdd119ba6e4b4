package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// TestDescribeBackupsErrors sends each bad input through the SDK and checks
// the code, the HTTP status and, where it matters, the message.
func TestDescribeBackupsErrors(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	tests := []struct {
		name    string
		setup   func(*rds.DescribeBackupsRequest)
		code    string
		status  int
		message string // a substring of the message, when set
	}{
		{"PageSize=20", func(r *rds.DescribeBackupsRequest) { r.PageSize = requests.NewInteger(20) }, "InvalidMaxRecordsPerPage.Malformed", 403, ""},
		{"PageSize=abc", func(r *rds.DescribeBackupsRequest) { r.PageSize = "abc" }, "InvalidMaxRecordsPerPage.Malformed", 403, ""},
		{"PageSize=0", func(r *rds.DescribeBackupsRequest) { r.PageSize = "0" }, "InvalidMaxRecordsPerPage.Malformed", 403, ""},
		{"PageSize=101", func(r *rds.DescribeBackupsRequest) { r.PageSize = "101" }, "InvalidMaxRecordsPerPage.Malformed", 403, ""},
		{"PageNumber=0", func(r *rds.DescribeBackupsRequest) { r.PageNumber = "0" }, "InvalidPageNumbers.Malformed", 400, ""},
		{"PageNumber=-1", func(r *rds.DescribeBackupsRequest) { r.PageNumber = "-1" }, "InvalidPageNumbers.Malformed", 400, ""},
		{"PageNumber=abc", func(r *rds.DescribeBackupsRequest) { r.PageNumber = "abc" }, "InvalidPageNumbers.Malformed", 400, ""},
		{"PageNumber=overflow", func(r *rds.DescribeBackupsRequest) { r.PageNumber = "99999999999" }, "InvalidPageNumbers.Malformed", 400, ""},
		{"StartTime=date only", func(r *rds.DescribeBackupsRequest) { r.StartTime = "2026-01-10" }, "InvalidStartTime.Format", 400, ""},
		{"StartTime=garbage", func(r *rds.DescribeBackupsRequest) { r.StartTime = "yesterday" }, "InvalidStartTime.Format", 400, ""},
		{"StartTime=no zone", func(r *rds.DescribeBackupsRequest) { r.StartTime = "2026-01-10T01:00" }, "InvalidStartTime.Format", 400, ""},
		{"EndTime=date only", func(r *rds.DescribeBackupsRequest) { r.EndTime = "2026-01-10" }, "InvalidEndTime.Format", 400, ""},
		{"EndTime=garbage", func(r *rds.DescribeBackupsRequest) { r.EndTime = "tomorrow" }, "InvalidEndTime.Format", 400, ""},
		{"EndTime==StartTime", func(r *rds.DescribeBackupsRequest) {
			r.StartTime, r.EndTime = "2026-01-10T01:00Z", "2026-01-10T01:00Z"
		}, "InvalidParameterCombination", 400, ""},
		{"EndTime<StartTime", func(r *rds.DescribeBackupsRequest) {
			r.StartTime, r.EndTime = "2026-01-10T02:00Z", "2026-01-10T01:00Z"
		}, "InvalidParameterCombination", 400, ""},
		{"DBInstanceId unknown", func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "rm-zz" }, "InvalidDBInstanceId.NotFound", 400, ""},
		{"DBInstanceId missing", func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "" }, "MissingParameter", 400, "DBInstanceId"},
		{"BackupStatus=Running", func(r *rds.DescribeBackupsRequest) { r.BackupStatus = "Running" }, "InvalidParameter", 400, "BackupStatus"},
		{"BackupStatus=success", func(r *rds.DescribeBackupsRequest) { r.BackupStatus = "success" }, "InvalidParameter", 400, "BackupStatus"},
		{"BackupMode=auto", func(r *rds.DescribeBackupsRequest) { r.BackupMode = "auto" }, "InvalidParameter", 400, "BackupMode"},
		{"BackupType=Full", func(r *rds.DescribeBackupsRequest) { r.BackupType = "Full" }, "InvalidParameter", 400, "BackupType"},
		{"BackupId=abc", func(r *rds.DescribeBackupsRequest) { r.BackupId = "abc" }, "InvalidParameter", 400, "BackupId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := rootClients(t, s) // an SDK client is not safe for concurrent use
			_, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
				r.DBInstanceId = "rm-a1"
				tt.setup(r)
			})
			se := wantServerError(t, err, tt.code, tt.status)
			if !strings.Contains(se.Message(), tt.message) {
				t.Errorf("message %q does not name %q", se.Message(), tt.message)
			}
		})
	}
}

// TestProtocolErrors covers the codes of routing and authentication.
func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)

	t.Run("InvalidAction.NotFound", func(t *testing.T) {
		t.Parallel()
		req := requests.NewCommonRequest()
		req.Product, req.Version, req.ApiName = "Rds", "2014-08-15", "DescribeNoSuchThing"
		req.QueryParams["DBInstanceId"] = "rm-a1"
		_, err := rootClients(t, s).RDS.ProcessCommonRequest(req)
		wantServerError(t, err, "InvalidAction.NotFound", 404)
	})
	t.Run("InvalidAction.NotFound/RAM action on RDS version", func(t *testing.T) {
		t.Parallel()
		req := requests.NewCommonRequest()
		req.Product, req.Version, req.ApiName = "Rds", "2014-08-15", "CreateUser"
		req.QueryParams["UserName"] = "nobody"
		_, err := rootClients(t, s).RDS.ProcessCommonRequest(req)
		wantServerError(t, err, "InvalidAction.NotFound", 404)
	})
	t.Run("InvalidVersion", func(t *testing.T) {
		t.Parallel()
		req := requests.NewCommonRequest()
		req.Product, req.Version, req.ApiName = "Rds", "2099-01-01", "DescribeBackups"
		req.QueryParams["DBInstanceId"] = "rm-a1"
		_, err := rootClients(t, s).RDS.ProcessCommonRequest(req)
		wantServerError(t, err, "InvalidVersion", 400)
	})
	t.Run("InvalidAccessKeyId.NotFound", func(t *testing.T) {
		t.Parallel()
		c := newClients(t, s.Addr, "LTAInosuchkey000000000", rootKeySecret)
		_, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) { r.DBInstanceId = "rm-a1" })
		wantServerError(t, err, "InvalidAccessKeyId.NotFound", 404)
	})
	t.Run("SignatureDoesNotMatch", func(t *testing.T) {
		t.Parallel()
		c := newClients(t, s.Addr, rootKeyID, "not-the-secret")
		_, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
			r.DBInstanceId, r.StartTime = "rm-a1", "2026-01-10T01:00Z" // a value that needs encoding
		})
		se := wantServerError(t, err, "SignatureDoesNotMatch", 400)
		// The SDK compares its string to sign with the server's and, when
		// they are equal, blames the secret.
		if !strings.Contains(se.Message(), "server string to sign is:") {
			t.Errorf("message without the server string to sign: %q", se.Message())
		}
		if !strings.Contains(se.Recommend(), "InvalidAccessKeySecret") || !strings.Contains(err.Error(), "InvalidAccessKeySecret") {
			t.Errorf("the SDK does not report a wrong secret: %v", err)
		}
		if strings.Contains(se.Message(), rootKeySecret) {
			t.Errorf("message shows the secret")
		}
	})
	t.Run("SignatureDoesNotMatch/raw tampered", func(t *testing.T) {
		t.Parallel()
		p := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1"))
		p.Set("DBInstanceId", "rm-b1") // changed after signing
		r := rawCall(t, s.Addr, p)
		wantRawError(t, r, "SignatureDoesNotMatch", 400)
	})
	t.Run("InvalidTimeStamp.Expired/past", func(t *testing.T) {
		t.Parallel()
		p := signV2(http.MethodPost, describeBackupsParams("DBInstanceId", "rm-a1"), rootKeyID, rootKeySecret, time.Now().Add(-16*time.Minute))
		wantRawError(t, rawCall(t, s.Addr, p), "InvalidTimeStamp.Expired", 400)
	})
	t.Run("InvalidTimeStamp.Expired/future", func(t *testing.T) {
		t.Parallel()
		p := signV2(http.MethodPost, describeBackupsParams("DBInstanceId", "rm-a1"), rootKeyID, rootKeySecret, time.Now().Add(16*time.Minute))
		wantRawError(t, rawCall(t, s.Addr, p), "InvalidTimeStamp.Expired", 400)
	})
	t.Run("Timestamp 14 minutes old is accepted", func(t *testing.T) {
		t.Parallel()
		p := signV2(http.MethodPost, describeBackupsParams("DBInstanceId", "rm-a1"), rootKeyID, rootKeySecret, time.Now().Add(-14*time.Minute))
		if r := rawCall(t, s.Addr, p); r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
	})
	t.Run("InvalidTimeStamp.Format", func(t *testing.T) {
		t.Parallel()
		p := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "Timestamp", "26/11/2026 10:00"))
		wantRawError(t, rawCall(t, s.Addr, p), "InvalidTimeStamp.Format", 400)
	})
	t.Run("SignatureNonceUsed", func(t *testing.T) {
		t.Parallel()
		p := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1"))
		if r := rawCall(t, s.Addr, p); r.Status != 200 {
			t.Fatalf("first request: status %d: %s", r.Status, r.Body)
		}
		wantRawError(t, rawCall(t, s.Addr, p), "SignatureNonceUsed", 400)
	})
	t.Run("SignatureNonceUsed/same nonce other params", func(t *testing.T) {
		t.Parallel()
		first := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1"))
		if r := rawCall(t, s.Addr, first); r.Status != 200 {
			t.Fatalf("first request: status %d: %s", r.Status, r.Body)
		}
		p := describeBackupsParams("DBInstanceId", "rm-b1", "SignatureNonce", first.Get("SignatureNonce"))
		wantRawError(t, rawCall(t, s.Addr, rootSigned(p)), "SignatureNonceUsed", 400)
	})
	t.Run("MissingParameter/Action", func(t *testing.T) {
		t.Parallel()
		p := describeBackupsParams("DBInstanceId", "rm-a1")
		p.Del("Action")
		e := wantRawError(t, rawCall(t, s.Addr, rootSigned(p)), "MissingParameter", 400)
		if !strings.Contains(e.Message, "Action") {
			t.Errorf("message %q does not name Action", e.Message)
		}
	})
	t.Run("malformed query", func(t *testing.T) {
		t.Parallel()
		resp, err := rawHTTP.Post("http://"+s.Addr+"/?Action=DescribeBackups&Version=2014-08-15&Format=JSON&DBInstanceId=%zz",
			"application/x-www-form-urlencoded", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apiError
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 400 || e.Code == "" || e.RequestId == "" || resp.Header.Get("x-acs-request-id") != e.RequestId {
			t.Errorf("status %d, x-acs-request-id %q: %+v", resp.StatusCode, resp.Header.Get("x-acs-request-id"), e)
		}
	})
	t.Run("GET is accepted", func(t *testing.T) {
		t.Parallel()
		p := signV2(http.MethodGet, describeBackupsParams("DBInstanceId", "rm-a1"), rootKeyID, rootKeySecret, time.Now())
		resp, err := rawHTTP.Get("http://" + s.Addr + "/?" + p.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET: status %d", resp.StatusCode)
		}
	})
}

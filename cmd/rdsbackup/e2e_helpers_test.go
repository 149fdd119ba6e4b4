package main

// Shared helpers of the end-to-end tests: SDK clients, a raw V2-signed
// request, error assertions and backup-set fixtures.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/responses"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/ram"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/rpc"
)

const testRegion = "cn-hangzhou"

// clients are the Go SDK v1 clients of one caller (access key) against one
// service. CommonRequests go through RDS, which embeds sdk.Client. An SDK
// client is not safe for concurrent use (sdk.Client.setTimeout writes shared
// fields on every call), so each parallel subtest makes its own.
type clients struct {
	RDS *rds.Client
	RAM *ram.Client
}

// newClients is the one SDK client constructor of the tests.
func newClients(t testing.TB, addr, ak, secret string) *clients {
	t.Helper()
	rc, err := rds.NewClientWithAccessKey(testRegion, ak, secret)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := ram.NewClientWithAccessKey(testRegion, ak, secret)
	if err != nil {
		t.Fatal(err)
	}
	rc.Domain, mc.Domain = addr, addr
	return &clients{RDS: rc, RAM: mc}
}

// rootClients are the account's clients.
func rootClients(t testing.TB, s *testService) *clients {
	return newClients(t, s.Addr, rootKeyID, rootKeySecret)
}

// wantServerError asserts that err is an SDK server error with code and
// HTTP status, whose RequestId matches the x-acs-request-id header.
func wantServerError(t testing.TB, err error, code string, status int) *sdkerrors.ServerError {
	t.Helper()
	var se *sdkerrors.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("want server error %s (%d), got %v", code, status, err)
	}
	if se.ErrorCode() != code || se.HttpStatus() != status {
		t.Fatalf("want %s (%d), got %s (%d): %s", code, status, se.ErrorCode(), se.HttpStatus(), se.Message())
	}
	if hdr := headerValue(se.RespHeaders, "x-acs-request-id"); hdr == "" || hdr != se.RequestId() {
		t.Errorf("x-acs-request-id %q, body RequestId %q", hdr, se.RequestId())
	}
	return se
}

func headerValue(h map[string][]string, name string) string {
	return http.Header(h).Get(name)
}

// checkRequestID asserts that an SDK response carries x-acs-request-id
// equal to its body's RequestId.
func checkRequestID(t testing.TB, resp responses.AcsResponse, bodyID string) {
	t.Helper()
	if hdr := headerValue(resp.GetHttpHeaders(), "x-acs-request-id"); bodyID == "" || hdr != bodyID {
		t.Errorf("x-acs-request-id %q, body RequestId %q", hdr, bodyID)
	}
}

// nonce returns a fresh random signature nonce.
func nonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// signV2 returns params completed with the V2 common parameters that are
// missing (Format JSON, the RDS version, a fresh nonce, Timestamp at) and
// signed with secret for an HTTP request with method. It is the one raw
// request signer of the tests.
func signV2(method string, params url.Values, ak, secret string, at time.Time) url.Values {
	p := url.Values{}
	for k, vs := range params {
		p[k] = slices.Clone(vs)
	}
	defaults := map[string]string{
		"Format":           "JSON",
		"Version":          "2014-08-15",
		"AccessKeyId":      ak,
		"SignatureMethod":  "HMAC-SHA1",
		"SignatureVersion": "1.0",
		"SignatureNonce":   nonce(),
		"Timestamp":        at.UTC().Format("2006-01-02T15:04:05Z"),
	}
	for k, v := range defaults {
		if !p.Has(k) {
			p.Set(k, v)
		}
	}
	p.Del("Signature")
	p.Set("Signature", rpc.SignV2(secret, rpc.StringToSignV2(method, p)))
	return p
}

// rootSigned signs params with the root key, now.
func rootSigned(params url.Values) url.Values {
	return signV2(http.MethodPost, params, rootKeyID, rootKeySecret, time.Now())
}

// rawResponse is an HTTP response with its body read.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

var rawHTTP = &http.Client{Timeout: 20 * time.Second}

// rawCall POSTs already signed params in the query with an empty body, as
// the Go SDK does, and checks that x-acs-request-id equals the body's
// RequestId (JSON or XML, success or error).
func rawCall(t testing.TB, addr string, params url.Values) *rawResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := sendRaw(t, req)
	var id struct {
		RequestId string `json:"RequestId" xml:"RequestId"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml") {
		err = xml.Unmarshal(r.Body, &id)
	} else {
		err = json.Unmarshal(r.Body, &id)
	}
	if err != nil {
		t.Fatalf("undecodable body (%s): %v\n%s", r.Header.Get("Content-Type"), err, r.Body)
	}
	if hdr := r.Header.Get("x-acs-request-id"); id.RequestId == "" || hdr != id.RequestId {
		t.Errorf("x-acs-request-id %q, body RequestId %q", hdr, id.RequestId)
	}
	return r
}

// sendRaw sends req and reads the whole answer.
func sendRaw(t testing.TB, req *http.Request) *rawResponse {
	t.Helper()
	resp, err := rawHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// apiError is an error body.
type apiError struct {
	RequestId          string         `json:"RequestId" xml:"RequestId"`
	HostId             string         `json:"HostId" xml:"HostId"`
	Code               string         `json:"Code" xml:"Code"`
	Message            string         `json:"Message" xml:"Message"`
	Recommend          string         `json:"Recommend" xml:"Recommend"`
	AccessDeniedDetail map[string]any `json:"AccessDeniedDetail" xml:"-"`
}

// wantRawError asserts a JSON error body with code and status.
func wantRawError(t testing.TB, r *rawResponse, code string, status int) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, r.Body)
	}
	if e.Code != code || r.Status != status {
		t.Fatalf("want %s (%d), got %s (%d): %s", code, status, e.Code, r.Status, r.Body)
	}
	return e
}

// describeBackupsParams are the parameters of a raw DescribeBackups call.
func describeBackupsParams(kv ...string) url.Values {
	p := url.Values{"Action": {"DescribeBackups"}, "Version": {"2014-08-15"}}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Set(kv[i], kv[i+1])
	}
	return p
}

// describeBackups calls DescribeBackups through the SDK after setup has
// filled the request, and checks the request id header.
func describeBackups(t testing.TB, c *clients, setup func(*rds.DescribeBackupsRequest)) (*rds.DescribeBackupsResponse, error) {
	t.Helper()
	req := rds.CreateDescribeBackupsRequest()
	setup(req)
	resp, err := c.RDS.DescribeBackups(req)
	if err == nil {
		checkRequestID(t, resp, resp.RequestId)
	}
	return resp, err
}

// backupIDs lists the BackupIds of a response, in order.
func backupIDs(resp *rds.DescribeBackupsResponse) []string {
	ids := make([]string, 0, len(resp.Items.Backup))
	for _, b := range resp.Items.Backup {
		ids = append(ids, b.BackupId)
	}
	return ids
}

func idStrings(ids ...int64) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, strconv.FormatInt(id, 10))
	}
	return out
}

// pageSize reads the PageSize field of a DescribeBackups JSON body, which
// the SDK's response struct does not have.
func pageSize(t testing.TB, resp *rds.DescribeBackupsResponse) int {
	t.Helper()
	var v struct{ PageSize *int }
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &v); err != nil || v.PageSize == nil {
		t.Fatalf("no numeric PageSize in %s (%v)", resp.GetHttpContentString(), err)
	}
	return *v.PageSize
}

// setSpec describes a backup set to insert; zero fields take sampleSet's.
type setSpec struct {
	ID       int64
	Instance string
	Start    time.Time
	Status   rdsbackup.BackupStatus
	Mode     rdsbackup.BackupMode
	Type     rdsbackup.BackupType
}

func (sp setSpec) set() *rdsbackup.BackupSet {
	s := sampleSet(sp.Instance, sp.Start)
	s.ID = sp.ID
	if sp.Status != "" {
		s.Status = sp.Status
	}
	if s.Status == rdsbackup.BackupFailed {
		s.Available, s.ObjectKey, s.Artifacts, s.MetaStatus = false, "", nil, "EMPTY"
		s.FailureReason = "test failure"
	}
	if sp.Mode != "" {
		s.Mode = sp.Mode
		if sp.Mode == rdsbackup.BackupAutomated {
			s.Initiator = rdsbackup.InitiatorSystem
		}
	}
	if sp.Type != "" {
		s.Type = sp.Type
	}
	return s
}

// insertSets stores sets through the catalog's own interface.
func insertSets(t testing.TB, db *sqlite.DB, specs ...setSpec) {
	t.Helper()
	for _, sp := range specs {
		if err := db.CreateBackupSet(t.Context(), sp.set()); err != nil {
			t.Fatalf("create set %+v: %v", sp, err)
		}
	}
}

// minute formats t as a DescribeBackups time bound (yyyy-MM-ddTHH:mmZ).
func minute(t time.Time) string { return t.UTC().Format("2006-01-02T15:04Z") }

package rpc

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rdsbackup/rdsbackup"
)

type testItem struct {
	BackupId string `json:"BackupId" xml:"BackupId"`
	IsAvail  int    `json:"IsAvail" xml:"IsAvail"`
}

type testResponse struct {
	RequestId  string `json:"RequestId" xml:"RequestId"`
	PageNumber string `json:"PageNumber" xml:"PageNumber"`
	Items      struct {
		Backup []testItem `json:"Backup" xml:"Backup"`
	} `json:"Items" xml:"Items"`
}

type testDetail struct {
	AuthAction       string `json:"AuthAction" xml:"AuthAction"`
	NoPermissionType string `json:"NoPermissionType" xml:"NoPermissionType"`
}

func testRequest(format, action string) *Request {
	return &Request{
		HTTP:      httptest.NewRequest("POST", "/", nil),
		Format:    format,
		Action:    action,
		RequestID: "01A0F19D-0000-4000-8000-000000000000",
	}
}

func newTestResponse(id string) testResponse {
	v := testResponse{RequestId: id, PageNumber: "1"}
	v.Items.Backup = []testItem{{"321020562", 1}, {"a&b<c>", 0}}
	return v
}

func TestWriteJSON(t *testing.T) {
	req := testRequest(FormatJSON, "DescribeBackups")
	w := httptest.NewRecorder()
	(&Responder{HostID: "rdsbackup"}).Write(w, req, newTestResponse(req.RequestID))

	if w.Code != 200 {
		t.Errorf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json;charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if id := w.Header().Get("x-acs-request-id"); id != req.RequestID {
		t.Errorf("x-acs-request-id %q", id)
	}
	var got testResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	if fmt.Sprint(got) != fmt.Sprint(newTestResponse(req.RequestID)) {
		t.Errorf("round trip: %+v", got)
	}
}

func TestWriteXML(t *testing.T) {
	for action, root := range map[string]string{"DescribeBackups": "DescribeBackupsResponse", "": "Response", "a<b": "Response"} {
		req := testRequest(FormatXML, action)
		w := httptest.NewRecorder()
		(&Responder{}).Write(w, req, newTestResponse(req.RequestID))

		if w.Code != 200 {
			t.Errorf("status %d", w.Code)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/xml;charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if w.Header().Get("x-acs-request-id") != req.RequestID {
			t.Error("no x-acs-request-id")
		}
		body := w.Body.String()
		if !strings.HasPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`) {
			t.Errorf("no XML declaration: %s", body)
		}
		if !strings.Contains(body, "<"+root+"><RequestId>") || !strings.HasSuffix(body, "</"+root+">") {
			t.Errorf("root is not %s: %s", root, body)
		}
		var got testResponse
		if err := xml.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if fmt.Sprint(got) != fmt.Sprint(newTestResponse(req.RequestID)) {
			t.Errorf("round trip: %+v", got)
		}
	}
}

func TestWriteEncodeFailure(t *testing.T) {
	var logs bytes.Buffer
	w := httptest.NewRecorder()
	req := testRequest(FormatJSON, "DescribeBackups")
	(&Responder{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}).Write(w, req, map[string]any{"x": make(chan int)})
	if w.Code != 500 || !strings.Contains(w.Body.String(), `"Code":"InternalError"`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "unsupported type") {
		t.Errorf("log: %s", logs.String())
	}
}

// errorFields decodes a JSON error body and checks every field is a string,
// as the aliyun Go SDK v1 requires.
func errorFields(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for _, k := range []string{"RequestId", "HostId", "Code", "Message", "Recommend"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("%s is %T, want string", k, m[k])
		}
	}
	return m
}

func TestWriteErrorJSON(t *testing.T) {
	req := testRequest(FormatJSON, "DescribeBackups")
	w := httptest.NewRecorder()
	err := fmt.Errorf("wrapped: %w", rdsbackup.MissingParameter("DBInstanceId"))
	(&Responder{HostID: "rdsbackup"}).WriteError(w, req, err)

	if w.Code != 400 {
		t.Errorf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json;charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if w.Header().Get("x-acs-request-id") != req.RequestID {
		t.Error("no x-acs-request-id")
	}
	m := errorFields(t, w.Body.Bytes())
	want := map[string]any{
		"RequestId": req.RequestID,
		"HostId":    "rdsbackup",
		"Code":      "MissingParameter",
		"Message":   `The input parameter "DBInstanceId" that is mandatory for processing this request is not supplied.`,
		"Recommend": "https://github.com/rdsbackup/rdsbackup/blob/main/docs/errors.md#MissingParameter",
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("body\n%v\nwant\n%v", m, want)
	}
}

func TestWriteErrorSignatureMessage(t *testing.T) {
	// The string to sign has "&"; it must come back verbatim.
	sts := "GET&%2F&AccessKeyId%3Dak"
	req := testRequest(FormatJSON, "")
	w := httptest.NewRecorder()
	(&Responder{}).WriteError(w, req, signatureMismatch(sts))
	m := errorFields(t, w.Body.Bytes())
	msg, _ := m["Message"].(string)
	if _, after, _ := strings.Cut(msg, "server string to sign is:"); after != sts {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(w.Body.String(), `\u0026`) {
		t.Errorf("HTML-escaped body: %s", w.Body)
	}
}

func TestWriteErrorDetail(t *testing.T) {
	detail := &testDetail{AuthAction: "rds:DescribeBackups", NoPermissionType: "ImplicitDeny"}
	err := &rdsbackup.Error{Code: rdsbackup.EForbiddenRAM, Message: "User not authorized.", Detail: detail}

	w := httptest.NewRecorder()
	(&Responder{HostID: "h"}).WriteError(w, testRequest(FormatJSON, "DescribeBackups"), err)
	if w.Code != 403 {
		t.Errorf("status %d", w.Code)
	}
	m := errorFields(t, w.Body.Bytes())
	d, ok := m["AccessDeniedDetail"].(map[string]any)
	if !ok || d["AuthAction"] != "rds:DescribeBackups" || d["NoPermissionType"] != "ImplicitDeny" {
		t.Errorf("AccessDeniedDetail %#v", m["AccessDeniedDetail"])
	}

	w = httptest.NewRecorder()
	(&Responder{HostID: "h"}).WriteError(w, testRequest(FormatXML, "DescribeBackups"), err)
	var got struct {
		XMLName            xml.Name
		Code               string
		AccessDeniedDetail testDetail
	}
	if err := xml.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	if got.XMLName.Local != "Error" || got.Code != rdsbackup.EForbiddenRAM || got.AccessDeniedDetail != *detail {
		t.Errorf("XML %+v from %s", got, w.Body)
	}

	// A detail XML cannot encode is dropped, not the whole error.
	var logs bytes.Buffer
	w = httptest.NewRecorder()
	mapErr := &rdsbackup.Error{Code: rdsbackup.EForbiddenRAM, Message: "no", Detail: map[string]string{"a": "b"}}
	(&Responder{Logger: slog.New(slog.NewTextHandler(&logs, nil))}).WriteError(w, testRequest(FormatXML, "X"), mapErr)
	if w.Code != 403 || !strings.Contains(w.Body.String(), "<Code>Forbidden.RAM</Code>") || strings.Contains(w.Body.String(), "AccessDeniedDetail") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), "error detail") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestWriteErrorXML(t *testing.T) {
	req := testRequest(FormatXML, "DescribeBackups")
	w := httptest.NewRecorder()
	(&Responder{HostID: "rdsbackup"}).WriteError(w, req, rdsbackup.Errorf(rdsbackup.EEntityNotExistUser, "The user does not exist."))

	if w.Code != 404 {
		t.Errorf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/xml;charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	body := w.Body.String()
	if !strings.HasPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Error><RequestId>") {
		t.Errorf("body %s", body)
	}
	var got errorBody
	if err := xml.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := errorBody{
		XMLName:   xml.Name{Local: "Error"},
		RequestID: req.RequestID,
		HostID:    "rdsbackup",
		Code:      rdsbackup.EEntityNotExistUser,
		Message:   "The user does not exist.",
		Recommend: RecommendURL + "#" + rdsbackup.EEntityNotExistUser,
	}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestWriteErrorInternal(t *testing.T) {
	for _, err := range []error{
		errors.New("pq: password authentication failed for user backup"),
		rdsbackup.Errorf(rdsbackup.EINTERNAL, "pq: password authentication failed for user backup"),
	} {
		var logs bytes.Buffer
		req := testRequest(FormatJSON, "DescribeBackups")
		w := httptest.NewRecorder()
		(&Responder{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}).WriteError(w, req, err)

		if w.Code != 500 {
			t.Errorf("status %d", w.Code)
		}
		if strings.Contains(w.Body.String(), "password") {
			t.Errorf("internal detail leaked: %s", w.Body)
		}
		m := errorFields(t, w.Body.Bytes())
		if m["Code"] != "InternalError" || m["Message"] != rdsbackup.ErrorMessage(errors.New("")) {
			t.Errorf("body %v", m)
		}
		var entry map[string]any
		if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
			t.Fatalf("log %q: %v", logs.String(), err)
		}
		if entry["level"] != "ERROR" || entry["request_id"] != req.RequestID || entry["action"] != "DescribeBackups" ||
			!strings.Contains(fmt.Sprint(entry["error"]), "password authentication failed") {
			t.Errorf("log entry %v", entry)
		}
	}

	// No logger, no request, no error: still a well-formed 500.
	w := httptest.NewRecorder()
	(&Responder{}).WriteError(w, nil, nil)
	if w.Code != 500 || w.Header().Get("x-acs-request-id") == "" || !strings.Contains(w.Body.String(), "<Code>InternalError</Code>") {
		t.Errorf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

// The request a failed ParseRequest returns can be written as is.
func TestWriteParseError(t *testing.T) {
	req, err := ParseRequest(httptest.NewRequest("GET", "/?Format=yaml", nil), 0)
	w := httptest.NewRecorder()
	(&Responder{}).WriteError(w, req, err)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "<Code>InvalidFormat</Code>") {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

// selfRendered renders its own JSON; its XML still comes from the tags.
type selfRendered struct {
	RequestId string `xml:"RequestId"`
}

func (s *selfRendered) AppendJSON(b []byte) []byte {
	return append(b, `{"Self":true}`...)
}

func TestWriteUsesJSONAppender(t *testing.T) {
	// Twice, so that the second body comes from a recycled buffer.
	for range 2 {
		req := testRequest(FormatJSON, "DescribeBackups")
		w := httptest.NewRecorder()
		(&Responder{}).Write(w, req, &selfRendered{RequestId: req.RequestID})
		if w.Code != 200 || w.Body.String() != `{"Self":true}` || w.Header().Get("Content-Type") != ContentTypeJSON {
			t.Fatalf("JSON: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	req := testRequest(FormatXML, "DescribeBackups")
	w := httptest.NewRecorder()
	(&Responder{}).Write(w, req, &selfRendered{RequestId: req.RequestID})
	if !strings.HasSuffix(w.Body.String(), "<DescribeBackupsResponse><RequestId>"+req.RequestID+"</RequestId></DescribeBackupsResponse>") {
		t.Fatalf("XML: %s", w.Body)
	}
}

// TestWriteErrorBoundsMessage: whatever a message quotes, the body stays
// bounded.
func TestWriteErrorBoundsMessage(t *testing.T) {
	rs := &Responder{HostID: "h"}
	w := httptest.NewRecorder()
	huge := strings.Repeat("é", 200<<10)
	rs.WriteError(w, testRequest(FormatJSON, "GetUser"), rdsbackup.Errorf(rdsbackup.EEntityNotExistUser, "The user %s does not exist.", huge))
	if w.Code != 404 || w.Body.Len() > MaxMessage+1024 || !utf8.Valid(w.Body.Bytes()) {
		t.Errorf("status %d, %d-byte body", w.Code, w.Body.Len())
	}
}

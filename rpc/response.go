package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"unicode/utf8"

	"github.com/rdsbackup/rdsbackup"
)

// RecommendURL is the base of the Recommend field of error bodies; the code
// is appended as a fragment.
const RecommendURL = "https://github.com/rdsbackup/rdsbackup/blob/main/docs/errors.md"

// Content types the SDKs expect; the Tea SDK parses an XML error only when
// the header is exactly the XML one.
const (
	ContentTypeJSON = "application/json;charset=utf-8"
	ContentTypeXML  = "text/xml;charset=utf-8"
)

// MaxMessage bounds an error message. Messages quote at most a prefix of a
// caller's value (rdsbackup.QuoteValue) and SignatureDoesNotMatch at most
// MaxEchoedStringToSign of its string to sign; this is the backstop for a
// message that would quote more.
const MaxMessage = MaxEchoedStringToSign + 1024

func boundMessage(msg string) string {
	if len(msg) <= MaxMessage {
		return msg
	}
	cut := MaxMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// internalMessage is what callers see instead of an internal error's text.
var internalMessage = rdsbackup.ErrorMessage(errors.New("internal"))

// Responder writes success and error responses in the request's format.
type Responder struct {
	HostID string // HostId of error bodies, e.g. "rdsbackup"
	// Logger receives internal errors, whose text is not sent; nil discards.
	Logger *slog.Logger
}

// Write sends v with status 200: JSON as is, XML under <{Action}Response>.
// v must already carry its RequestId. An encoding failure becomes a 500.
func (rs *Responder) Write(w http.ResponseWriter, req *Request, v any) {
	req = orEmpty(req)
	if a, ok := v.(JSONAppender); ok && req.Format == FormatJSON {
		bp := bodyPool.Get().(*[]byte)
		*bp = a.AppendJSON((*bp)[:0])
		send(w, req, http.StatusOK, *bp)
		if cap(*bp) <= maxPooledBody {
			bodyPool.Put(bp)
		}
		return
	}
	body, err := encode(req.Format, v, xml.StartElement{Name: xml.Name{Local: rootName(req.Action)}})
	if err != nil {
		rs.WriteError(w, req, fmt.Errorf("rpc: encode %s response: %w", req.Action, err))
		return
	}
	send(w, req, http.StatusOK, body)
}

// bodyPool recycles the buffers of self-rendered JSON bodies: a page of
// DescribeBackups is 50–170 KB, and growing a fresh buffer for each was a
// large share of the service's garbage.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledBody keeps a rare huge body from pinning its buffer.
const maxPooledBody = 1 << 20

// errorBody is the Alibaba error envelope. Every field but the detail is a
// string because the Go SDK v1 type-asserts them.
type errorBody struct {
	XMLName            xml.Name `json:"-" xml:"Error"`
	RequestID          string   `json:"RequestId" xml:"RequestId"`
	HostID             string   `json:"HostId" xml:"HostId"`
	Code               string   `json:"Code" xml:"Code"`
	Message            string   `json:"Message" xml:"Message"`
	Recommend          string   `json:"Recommend" xml:"Recommend"`
	AccessDeniedDetail any      `json:"AccessDeniedDetail,omitempty" xml:"AccessDeniedDetail,omitempty"`
}

// WriteError sends err as an Alibaba error body with the status from
// HTTPStatus. Internal errors (EINTERNAL or not an *rdsbackup.Error) are
// logged and replaced by a generic message. The Detail of an *rdsbackup.Error
// becomes AccessDeniedDetail; it should be a struct (or pointer to one) so
// that it renders as an object in JSON and as elements in XML.
func (rs *Responder) WriteError(w http.ResponseWriter, req *Request, err error) {
	req = orEmpty(req)
	if err == nil {
		err = errors.New("rpc: WriteError called with a nil error")
	}
	code := rdsbackup.ErrorCode(err)
	msg := rdsbackup.ErrorMessage(err)
	if code == rdsbackup.EINTERNAL {
		msg = internalMessage
		rs.log(req, slog.LevelError, "internal error", err)
	}
	msg = boundMessage(msg)
	eb := errorBody{
		RequestID: req.RequestID,
		HostID:    rs.HostID,
		Code:      code,
		Message:   msg,
		Recommend: RecommendURL + "#" + code,
	}
	if e, ok := errors.AsType[*rdsbackup.Error](err); ok && e.Detail != nil {
		eb.AccessDeniedDetail = e.Detail
	}
	body, encErr := encode(req.Format, eb, xml.StartElement{Name: xml.Name{Local: "Error"}})
	if encErr != nil && eb.AccessDeniedDetail != nil {
		// Better the error without its detail than no error at all.
		rs.log(req, slog.LevelError, "cannot encode error detail", encErr)
		eb.AccessDeniedDetail = nil
		body, encErr = encode(req.Format, eb, xml.StartElement{Name: xml.Name{Local: "Error"}})
	}
	if encErr != nil { // unreachable with string fields only
		rs.log(req, slog.LevelError, "cannot encode error", encErr)
		http.Error(w, internalMessage, http.StatusInternalServerError)
		return
	}
	send(w, req, HTTPStatus(code), body)
}

func (rs *Responder) log(req *Request, level slog.Level, msg string, err error) {
	if rs.Logger == nil {
		return
	}
	ctx := context.Background()
	if req.HTTP != nil {
		ctx = req.HTTP.Context()
	}
	rs.Logger.LogAttrs(ctx, level, msg,
		slog.String("request_id", req.RequestID),
		slog.String("action", req.Action),
		slog.String("error", err.Error()))
}

func encode(format string, v any, start xml.StartElement) ([]byte, error) {
	var buf bytes.Buffer
	if format == FormatJSON {
		// No HTML escaping: bodies are not HTML, and the string to sign in
		// SignatureDoesNotMatch stays readable.
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
	}
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	if err := enc.EncodeElement(v, start); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func send(w http.ResponseWriter, req *Request, status int, body []byte) {
	h := w.Header()
	h.Set("x-acs-request-id", req.RequestID)
	if req.Format == FormatJSON {
		h.Set("Content-Type", ContentTypeJSON)
	} else {
		h.Set("Content-Type", ContentTypeXML)
	}
	w.WriteHeader(status)
	w.Write(body) // the client may be gone; nothing useful to do about it
}

// rootName is the XML root of a success body. Action comes from the caller,
// so anything that is not a plain name falls back to "Response".
func rootName(action string) string {
	if action == "" {
		return "Response"
	}
	for i := 0; i < len(action); i++ {
		c := action[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || i > 0 && '0' <= c && c <= '9') {
			return "Response"
		}
	}
	return action + "Response"
}

// orEmpty lets Write and WriteError cope with a nil request.
func orEmpty(req *Request) *Request {
	if req != nil {
		return req
	}
	return &Request{Format: FormatXML, RequestID: NewRequestID()}
}

package rpc

import (
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/rdsbackup/rdsbackup"
)

// Response formats.
const (
	FormatJSON = "JSON"
	FormatXML  = "XML"
)

// DefaultMaxBody is the body limit ParseRequest applies when given maxBody <= 0.
const DefaultMaxBody = 1 << 20

// Request is one parsed API call.
type Request struct {
	HTTP *http.Request
	// Params is the query followed by the form body (POST), merged; Param
	// returns the first value, so the query wins.
	Params url.Values
	// Action and Version come from the parameters; for V3 from the signed
	// x-acs-action / x-acs-version headers first. V2 ignores those headers
	// because it does not sign them.
	Action, Version string
	// Format is the resolved response format, FormatJSON or FormatXML.
	Format string
	// SignatureVersion is 2 (HMAC-SHA1 parameters), 3 (ACS3-* Authorization
	// header) or 0 when the request carries neither.
	SignatureVersion int
	// AccessKeyID is the claimed key, unverified until Authenticate.
	AccessKeyID string
	// RequestID is a fresh uppercase UUID, like Alibaba's.
	RequestID string
	// SourceIP is the TCP peer; X-Forwarded-For is not trusted.
	SourceIP net.IP
	Secure   bool
	Body     []byte

	query   url.Values // the URL query alone, which V3 signs
	auth    Authorization
	authErr error
}

// Param returns the first value of the named parameter, or "".
func (req *Request) Param(name string) string { return req.Params.Get(name) }

// NewRequestID returns a fresh request id in Alibaba's style.
func NewRequestID() string { return strings.ToUpper(uuid.NewString()) }

// ParseRequest reads at most maxBody bytes of body (DefaultMaxBody when
// maxBody <= 0) and parses the call. It always returns a non-nil *Request
// with RequestID and Format set, so that even its own error can be written.
func ParseRequest(r *http.Request, maxBody int64) (*Request, error) {
	req := &Request{
		HTTP:      r,
		Params:    url.Values{},
		Format:    FormatXML,
		RequestID: NewRequestID(),
		SourceIP:  remoteIP(r.RemoteAddr),
		Secure:    r.TLS != nil,
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "ACS3-") {
		req.SignatureVersion = 3
		req.auth, req.authErr = ParseAuthorization(h)
		req.AccessKeyID = req.auth.AccessKeyID
	}

	// Keep going after an error so that Format, which may be in the query,
	// is still honoured when the error is written; report the first one.
	var firstErr error
	keep := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	query, err := parseQuery(r.URL.RawQuery, "The query string is malformed.")
	if err != nil {
		keep(err)
	}
	req.query = query
	// Names are checked as they are copied, in the one pass over each map.
	n := 0
	for k, vs := range query {
		req.Params[k] = slices.Clone(vs)
		n += len(vs)
		if err := CheckParamName(k); err != nil {
			keep(err)
		}
	}

	if err := req.readBody(maxBody); err != nil {
		keep(err)
	} else if form, err := parseForm(r, req.Body); err != nil {
		keep(err)
	} else {
		for k, vs := range form {
			req.Params[k] = append(req.Params[k], vs...)
			n += len(vs)
			if err := CheckParamName(k); err != nil {
				keep(err)
			}
		}
	}
	if n > MaxParams {
		keep(tooManyParams())
	}

	if req.SignatureVersion == 3 {
		req.Action = firstNonEmpty(r.Header.Get("x-acs-action"), req.Param("Action"))
		req.Version = firstNonEmpty(r.Header.Get("x-acs-version"), req.Param("Version"))
	} else {
		if slices.ContainsFunc([]string{"Signature", "AccessKeyId", "SignatureMethod", "SignatureVersion"}, req.Params.Has) {
			req.SignatureVersion = 2
		}
		req.Action, req.Version = req.Param("Action"), req.Param("Version")
		req.AccessKeyID = req.Param("AccessKeyId")
	}

	keep(req.resolveFormat())
	return req, firstErr
}

func (req *Request) readBody(maxBody int64) error {
	r := req.HTTP
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	tooLarge := rdsbackup.Errorf(rdsbackup.EINVALID, "The request body exceeds %d bytes.", maxBody)
	if r.ContentLength > maxBody {
		return tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		// Almost always the client going away; not our fault.
		return rdsbackup.Errorf(rdsbackup.EINVALID, "The request body could not be read.")
	}
	if int64(len(body)) > maxBody {
		return tooLarge
	}
	req.Body = body
	return nil
}

// parseForm parses body as form parameters when r is a form POST, and
// returns nil otherwise.
func parseForm(r *http.Request, body []byte) (url.Values, error) {
	if r.Method != http.MethodPost || len(body) == 0 {
		return nil, nil
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, nil
	}
	return parseQuery(string(body), "The form body is malformed.")
}

// MaxParams is how many parameters a request may have, query and form body
// together (net/url's own limit per query string).
const MaxParams = 10000

// MaxParamName is the longest parameter name accepted; the longest the SDKs
// send is under 40 characters.
const MaxParamName = 128

func tooManyParams() error {
	return rdsbackup.Errorf(rdsbackup.EINVALID,
		"The request has more than %d parameters (query string and form body together); at most %d are accepted.", MaxParams, MaxParams)
}

// parseQuery parses a query string or form body, saying so when it has too
// many parameters rather than calling it malformed.
func parseQuery(s, malformed string) (url.Values, error) {
	if strings.Count(s, "&") >= MaxParams {
		return url.Values{}, tooManyParams()
	}
	v, err := url.ParseQuery(s)
	if err != nil {
		return v, rdsbackup.Errorf(rdsbackup.EINVALID, "%s", malformed)
	}
	return v, nil
}

// CheckParamName refuses a parameter name outside [A-Za-z0-9._-] or longer
// than MaxParamName. The V3 canonical query does not escape names (as the
// Tea SDKs sign them), so without this check a name holding "=" or "&"
// could carry other parameters through a signature unchanged; well-formed
// names the service does not know stay accepted. So does an empty name:
// Terraform's alicloud provider sends one (`request[""] = RegionId`) when it
// deletes a clone, and no action reads it.
func CheckParamName(name string) error {
	if len(name) > MaxParamName {
		return rdsbackup.Errorf(rdsbackup.EINVALID,
			"The parameter name %s is not valid: names are at most %d characters.", rdsbackup.QuoteValue(name), MaxParamName)
	}
	for i := 0; i < len(name); i++ {
		if !paramNameByte[name[i]] {
			return rdsbackup.Errorf(rdsbackup.EINVALID,
				"The parameter name %s is not valid: names may contain only letters, digits and . _ -", rdsbackup.QuoteValue(name))
		}
	}
	return nil
}

var paramNameByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	return t
}()

// resolveFormat applies: the Format parameter (case-insensitive, the Tea V2
// SDK sends "json"); else JSON for V3 requests that accept it; else XML, the
// documented default.
func (req *Request) resolveFormat() error {
	def := FormatXML
	if req.SignatureVersion == 3 && strings.Contains(strings.ToLower(req.HTTP.Header.Get("Accept")), "application/json") {
		def = FormatJSON
	}
	req.Format = def
	switch f := req.Param("Format"); {
	case f == "":
	case strings.EqualFold(f, FormatJSON):
		req.Format = FormatJSON
	case strings.EqualFold(f, FormatXML):
		req.Format = FormatXML
	default:
		return rdsbackup.Errorf(rdsbackup.EInvalidFormat,
			"The specified parameter %q is not valid: it must be JSON or XML.", "Format")
	}
	return nil
}

func remoteIP(addr string) net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	host, _, _ = strings.Cut(host, "%") // drop an IPv6 zone
	ip := net.ParseIP(host)
	if v4 := ip.To4(); v4 != nil {
		ip = v4 // so ::ffff:a.b.c.d matches IPv4 CIDRs
	}
	return ip
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

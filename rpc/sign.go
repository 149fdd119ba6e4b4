package rpc

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

// AlgorithmV3 is the only V3 signature algorithm this server verifies.
const AlgorithmV3 = "ACS3-HMAC-SHA256"

// PercentEncode is RFC 3986 encoding of the UTF-8 bytes of s, as both
// signature versions define it: A-Z a-z 0-9 - _ . ~ are kept, every other
// byte becomes %XX with uppercase hex (so space is %20, not +).
func PercentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xF])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// StringToSignV2 is the V2 string to sign: method, the encoded "/", and the
// encoded canonical query built from every parameter except Signature,
// empty ones included, sorted by key.
func StringToSignV2(method string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		if k != "Signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var q strings.Builder
	for _, k := range keys {
		vs := params[k]
		if len(vs) == 0 {
			vs = []string{""}
		}
		for _, v := range vs {
			if q.Len() > 0 {
				q.WriteByte('&')
			}
			q.WriteString(PercentEncode(k))
			q.WriteByte('=')
			q.WriteString(PercentEncode(v))
		}
	}
	return method + "&%2F&" + PercentEncode(q.String())
}

// SignV2 is base64(HMAC-SHA1(secret+"&", stringToSign)).
func SignV2(secret, stringToSign string) string {
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CanonicalRequestV3 is the V3 canonical request. path is the decoded URL
// path ("" means "/"). query is the URL query alone (a form body is covered
// by payloadHash instead); keys are not encoded, as in the Tea SDKs. Only the
// headers named in signedHeaders are used, matched case-insensitively; the
// value of "host" is host, because Go moves the Host header into
// http.Request.Host. Repeated headers are trimmed, sorted and joined by ",".
func CanonicalRequestV3(method, path string, query url.Values, headers http.Header, host string, signedHeaders []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(path))
	b.WriteByte('\n')

	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	first := true
	for _, k := range keys {
		vs := query[k]
		if len(vs) == 0 {
			vs = []string{""}
		}
		for _, v := range vs {
			if !first {
				b.WriteByte('&')
			}
			first = false
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(PercentEncode(v))
		}
	}
	b.WriteByte('\n')

	names := normalizeHeaderNames(signedHeaders)
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(headers, host, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(names, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

func canonicalURI(path string) string {
	if path == "" {
		return "/"
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = PercentEncode(s)
	}
	return strings.Join(segs, "/")
}

// normalizeHeaderNames lowercases, sorts and deduplicates, which is how
// clients build SignedHeaders.
func normalizeHeaderNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func canonicalHeaderValue(headers http.Header, host, name string) string {
	if name == "host" && host != "" {
		return strings.TrimSpace(host)
	}
	var vals []string
	for k, vs := range headers {
		if strings.EqualFold(k, name) {
			for _, v := range vs {
				vals = append(vals, strings.TrimSpace(v))
			}
		}
	}
	slices.Sort(vals)
	return strings.Join(vals, ",")
}

// SignedHeadersV3 is the set of header names a V3 client signs: host, and
// content-type and every x-acs-* header present in h, lowercased and sorted.
func SignedHeadersV3(h http.Header) []string {
	names := []string{"host"}
	for k := range h {
		if lk := strings.ToLower(k); lk == "content-type" || strings.HasPrefix(lk, "x-acs-") {
			names = append(names, lk)
		}
	}
	return normalizeHeaderNames(names)
}

// StringToSignV3 is "ACS3-HMAC-SHA256\n" + hex(sha256(canonicalRequest)).
func StringToSignV3(canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return AlgorithmV3 + "\n" + hex.EncodeToString(sum[:])
}

// SignV3 is hex(HMAC-SHA256(secret, stringToSign)); unlike V2 the key has no
// "&" suffix.
func SignV3(secret, stringToSign string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(stringToSign))
	return hex.EncodeToString(m.Sum(nil))
}

// Authorization is a parsed V3 Authorization header:
// "<Algorithm> Credential=<ak>,SignedHeaders=<a;b>,Signature=<hex>".
type Authorization struct {
	Algorithm     string
	AccessKeyID   string
	SignedHeaders []string
	Signature     string
}

// String formats a as an Authorization header value.
func (a Authorization) String() string {
	return a.Algorithm + " Credential=" + a.AccessKeyID +
		",SignedHeaders=" + strings.Join(a.SignedHeaders, ";") +
		",Signature=" + a.Signature
}

// ParseAuthorization parses a V3 Authorization header. It does not check the
// algorithm, so that the caller can report an unsupported one distinctly; a
// structural problem is an IncompleteSignature error.
func ParseAuthorization(header string) (Authorization, error) {
	var a Authorization
	alg, rest, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || alg == "" {
		return a, incompleteSignature("the Authorization header has no credentials")
	}
	a.Algorithm = alg
	var seenCred, seenHeaders, seenSig bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Authorization{}, incompleteSignature("malformed Authorization header")
		}
		// Duplicates are refused: which one counts would be ambiguous.
		var seen *bool
		switch k {
		case "Credential":
			seen, a.AccessKeyID = &seenCred, v
		case "SignedHeaders":
			seen, a.SignedHeaders = &seenHeaders, strings.Split(v, ";")
		case "Signature":
			seen, a.Signature = &seenSig, v
		default:
			return Authorization{}, incompleteSignature("unknown Authorization field " + rdsbackup.QuoteValue(k))
		}
		if *seen {
			return Authorization{}, incompleteSignature("repeated Authorization field " + rdsbackup.QuoteValue(k))
		}
		*seen = true
	}
	switch {
	case a.AccessKeyID == "":
		return Authorization{}, incompleteSignature("the Authorization header has no Credential")
	case !seenHeaders || len(normalizeHeaderNames(a.SignedHeaders)) == 0:
		return Authorization{}, incompleteSignature("the Authorization header has no SignedHeaders")
	case a.Signature == "":
		return Authorization{}, incompleteSignature("the Authorization header has no Signature")
	}
	return a, nil
}

func incompleteSignature(why string) *rdsbackup.Error {
	return rdsbackup.Errorf(rdsbackup.EIncompleteSignature,
		"The request signature does not conform to Aliyun standards: %s.", why)
}

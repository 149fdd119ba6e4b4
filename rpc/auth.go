package rpc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// SignatureMismatchPrefix starts every SignatureDoesNotMatch message; the
// aliyun Go SDK v1 splits the message on "server string to sign is:" and
// compares the rest with its own string to sign.
const SignatureMismatchPrefix = "Specified signature is not matched with our calculation. server string to sign is:"

// Authenticator verifies a request.
type Authenticator struct {
	// Lookup returns the key; an error whose rdsbackup.ErrorCode is
	// rdsbackup.ENOTFOUND means the key does not exist.
	Lookup func(ctx context.Context, accessKeyID string) (Key, error)
	// Nonces is required: without replay protection Authenticate fails.
	// A store that cannot answer fails the request.
	Nonces rdsbackup.NonceStore
	// Rates, when set, limits each RAM user's key; root keys are not limited.
	Rates *KeyRates
	// Now defaults to time.Now.
	Now func() time.Time
	// MaxSkew defaults to DefaultMaxSkew when zero.
	MaxSkew time.Duration
}

// Key is what the Authenticator needs to know of an access key.
type Key struct {
	Secret string
	Active bool
	// Root keys are the account's: not rate limited, and their share of
	// the replay memory is reserved.
	Root bool
}

// V3 headers that must be present, and those that must also be signed.
var (
	requiredHeadersV3 = []string{"x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
	signedHeadersV3   = []string{"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
)

// Authenticate verifies req's signature (V3 if it has an ACS3 Authorization
// header, V2 otherwise), its timestamp and its nonce. Errors are
// *rdsbackup.Error except for Lookup failures, which are wrapped.
//
// The nonce is recorded only after the signature verifies, so unsigned
// traffic cannot fill the replay memory.
func (a *Authenticator) Authenticate(ctx context.Context, req *Request) error {
	if a.Lookup == nil || a.Nonces == nil {
		return errors.New("rpc: Authenticator needs Lookup and Nonces")
	}
	if req.SignatureVersion == 3 {
		return a.authenticateV3(ctx, req)
	}
	return a.authenticateV2(ctx, req)
}

func (a *Authenticator) authenticateV2(ctx context.Context, req *Request) error {
	p := req.Params
	if strings.EqualFold(p.Get("SignatureType"), "BEARERTOKEN") {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedSignature, "Bearer token authentication is not supported.")
	}
	for _, name := range []string{"AccessKeyId", "Signature", "SignatureNonce", "Timestamp", "SignatureMethod", "SignatureVersion"} {
		if p.Get(name) == "" {
			return rdsbackup.MissingParameter(name)
		}
	}
	if m := p.Get("SignatureMethod"); m != "HMAC-SHA1" {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedSignature,
			"The specified SignatureMethod %s is not supported: use HMAC-SHA1.", rdsbackup.QuoteValue(m))
	}
	if v := p.Get("SignatureVersion"); v != "1.0" {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedSignature,
			"The specified SignatureVersion %s is not supported: use 1.0, or an ACS3-HMAC-SHA256 Authorization header.", rdsbackup.QuoteValue(v))
	}
	now := a.now()
	signedAt, err := a.checkTime(p.Get("Timestamp"), now)
	if err != nil {
		return err
	}
	ak := p.Get("AccessKeyId")
	key, err := a.lookup(ctx, ak)
	if err != nil {
		return err
	}
	sts := StringToSignV2(req.HTTP.Method, p)
	if !hmac.Equal([]byte(SignV2(key.Secret, sts)), []byte(p.Get("Signature"))) {
		return signatureMismatch(sts)
	}
	return a.accept(ctx, key, ak, p.Get("SignatureNonce"), signedAt, now)
}

func (a *Authenticator) authenticateV3(ctx context.Context, req *Request) error {
	if req.authErr != nil {
		return req.authErr
	}
	au := req.auth
	if au.Algorithm != AlgorithmV3 {
		return rdsbackup.Errorf(rdsbackup.EUnsupportedSignature,
			"The signature algorithm %s is not supported: use %s.", rdsbackup.QuoteValue(au.Algorithm), AlgorithmV3)
	}
	h := req.HTTP.Header
	for _, name := range requiredHeadersV3 {
		if h.Get(name) == "" {
			return rdsbackup.MissingParameter(name)
		}
	}
	signed := make(map[string]bool, len(au.SignedHeaders))
	for _, name := range normalizeHeaderNames(au.SignedHeaders) {
		signed[name] = true
	}
	for _, name := range signedHeadersV3 {
		if !signed[name] {
			return incompleteSignature(fmt.Sprintf("header %q must be signed", name))
		}
	}
	// Content-Type decides whether the body is read as parameters, so it must
	// not be changeable in transit.
	if len(req.Body) > 0 && h.Get("Content-Type") != "" && !signed["content-type"] {
		return incompleteSignature(`header "content-type" must be signed`)
	}
	now := a.now()
	signedAt, err := a.checkTime(h.Get("x-acs-date"), now)
	if err != nil {
		return err
	}
	key, err := a.lookup(ctx, au.AccessKeyID)
	if err != nil {
		return err
	}
	// Sign over the hash of the body actually received: a body that does not
	// match x-acs-content-sha256 then fails like any other tampering, and the
	// server string to sign shows the real hash.
	sum := sha256.Sum256(req.Body)
	bodyHash := hex.EncodeToString(sum[:])
	cr := CanonicalRequestV3(req.HTTP.Method, req.HTTP.URL.Path, req.query, h, req.HTTP.Host, au.SignedHeaders, bodyHash)
	sts := StringToSignV3(cr)
	sigOK := hmac.Equal([]byte(SignV3(key.Secret, sts)), []byte(strings.ToLower(au.Signature)))
	if !sigOK || !strings.EqualFold(h.Get("x-acs-content-sha256"), bodyHash) {
		return signatureMismatch(sts)
	}
	return a.accept(ctx, key, au.AccessKeyID, h.Get("x-acs-signature-nonce"), signedAt, now)
}

// accept runs the checks that come after a good signature. Refusing a
// disabled key only here tells nothing to callers without its secret; so
// does throttling, which then cannot be aimed at a key by anyone who merely
// knows its id. A throttled request is refused before its nonce takes any
// of the shared replay memory.
func (a *Authenticator) accept(ctx context.Context, key Key, ak, nonce string, signedAt, now time.Time) error {
	if !key.Active {
		return rdsbackup.Errorf(rdsbackup.EAccessKeyDisabled, "The Access Key is disabled.")
	}
	if !key.Root && a.Rates != nil && !a.Rates.Allow(ak, now) {
		return errThrottled("")
	}
	err := a.Nonces.UseNonce(ctx, ak, key.Root, nonce, signedAt, now)
	if err != nil && rdsbackup.ErrorCode(err) == rdsbackup.EINTERNAL {
		return fmt.Errorf("rpc: replay protection: %w", err)
	}
	return err
}

func (a *Authenticator) lookup(ctx context.Context, ak string) (Key, error) {
	key, err := a.Lookup(ctx, ak)
	switch {
	case rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND:
		return Key{}, rdsbackup.Errorf(rdsbackup.EAccessKeyNotFound, "Specified access key is not found.")
	case err != nil:
		return Key{}, fmt.Errorf("rpc: look up access key: %w", err)
	case key.Secret == "":
		// Anyone could sign with an empty secret.
		return Key{}, errors.New("rpc: access key has an empty secret")
	}
	return key, nil
}

func (a *Authenticator) checkTime(s string, now time.Time) (time.Time, error) {
	t, err := parseTimestamp(s)
	if err != nil {
		return time.Time{}, rdsbackup.Errorf(rdsbackup.ETimestampFormat,
			"Specified time stamp or date value is not well formatted: use yyyy-MM-ddTHH:mm:ssZ (UTC).")
	}
	skew := a.MaxSkew
	if skew <= 0 {
		skew = DefaultMaxSkew
	}
	if d := now.Sub(t); d > skew || d < -skew {
		return time.Time{}, rdsbackup.ErrNonceExpired()
	}
	return t, nil
}

// parseTimestamp accepts the documented 2006-01-02T15:04:05Z and, because it
// costs nothing, any RFC 3339 time (fractional seconds, numeric offsets).
func parseTimestamp(s string) (time.Time, error) {
	return time.Parse(time.RFC3339, s)
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// MaxEchoedStringToSign bounds the string to sign that SignatureDoesNotMatch
// echoes: every request the SDKs make fits (a 6 KB policy document, escaped
// twice, is about 30 KB), while a huge parameter value is not sent back
// whole. The SDK's "wrong secret" hint is lost past it, nothing else.
const MaxEchoedStringToSign = 64 << 10

func signatureMismatch(stringToSign string) *rdsbackup.Error {
	if len(stringToSign) > MaxEchoedStringToSign {
		stringToSign = stringToSign[:MaxEchoedStringToSign] + "…"
	}
	return &rdsbackup.Error{Code: rdsbackup.ESignatureDoesNotMatch, Message: SignatureMismatchPrefix + stringToSign}
}

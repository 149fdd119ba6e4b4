package rdsbackup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// NonceStore is the replay protection of signed requests: it remembers the
// nonce of every request it accepted until the request's signed time is
// older than its window, so that a captured request cannot be sent again.
// rpc.NonceCache keeps it in the process's memory; each catalog keeps it in
// its database (Catalog.Nonces), which is what makes it survive restarts
// and span the nodes sharing the catalog. Every implementation passes
// rpc/noncetest.
//
// A store holds at most a fixed number of nonces, shared fairly among access
// keys (NonceShares): a RAM user's key may hold at most 1/UserShareDivisor
// of the bound, RAM users' keys together leave 1/RootReserveDivisor of it
// to the account's (root) keys. At the bound new nonces are refused rather
// than old ones forgotten, since forgetting would reopen replay.
type NonceStore interface {
	// UseNonce records the nonce of a request signed at signedAt and
	// received at now by accessKeyID (root: one of the account's keys). It
	// returns nil when the nonce is new, and an *Error otherwise:
	// ENonceUsed when the pair was accepted before (ErrNonceUsed),
	// EThrottling when the key holds its whole share (ErrNonceShare),
	// EServiceUnavailable when the room open to the key is full
	// (ErrNoncesFull), ETimestampExpired when signedAt is outside the
	// window, which the store could not vouch for. Any other error means
	// the store could not answer, and the request must be refused.
	UseNonce(ctx context.Context, accessKeyID string, root bool, nonce string, signedAt, now time.Time) error
	// NonceCount returns how many nonces the store holds whose bucket is
	// within the window at now.
	NonceCount(ctx context.Context, now time.Time) (int, error)
}

// Share divisors of the replay memory (see NonceStore).
const (
	UserShareDivisor   = 16 // one RAM user's key: 1/16 of the bound
	RootReserveDivisor = 4  // kept for root keys: 1/4 of the bound
)

// NonceShares applies the fairness rules of a store bounded to max nonces.
type NonceShares struct{ Max int }

// UserShare is how many nonces one RAM user's key may hold.
func (s NonceShares) UserShare() int { return max(1, s.Max/UserShareDivisor) }

// Check returns the refusal, if any, of a new nonce of a key that holds
// held nonces, when the store holds total nonces of which users belong to
// RAM users' keys. held is not looked at for root keys.
func (s NonceShares) Check(root bool, held, users, total int) error {
	switch {
	case !root && held >= s.UserShare():
		return ErrNonceShare()
	case total >= s.Max, !root && users >= s.Max-s.Max/RootReserveDivisor:
		return ErrNoncesFull()
	}
	return nil
}

// ErrNonceUsed is the refusal of a replayed request.
func ErrNonceUsed() *Error {
	return Errorf(ENonceUsed, "Specified signature nonce was used already.")
}

// ErrNonceShare is the refusal of a key over its share of the replay
// memory: the cloud's flow-control refusal, with the reason.
func ErrNonceShare() *Error {
	return Errorf(EThrottling, "Request was denied due to user flow control: this access key holds its whole share of the replay protection memory; slow down.")
}

// ErrNoncesFull is the refusal of a request when the replay memory open to
// its key is full.
func ErrNoncesFull() *Error {
	return Errorf(EServiceUnavailable,
		"The request has failed due to a temporary failure of the server: the replay protection memory is full. Retry later.")
}

// ErrNonceExpired is the refusal of a request signed outside the window.
func ErrNonceExpired() *Error {
	return &Error{Code: ETimestampExpired, Message: "Specified time stamp or date value is expired."}
}

// NonceMinute is the bucket of a signed time: its Unix minute. Stores file
// nonces by it and drop a bucket once it is older than
// NonceMinute(now - window).
func NonceMinute(t time.Time) int64 {
	s := t.Unix()
	m := s / 60
	if s%60 < 0 {
		m--
	}
	return m
}

// NonceHash is what a persistent store keeps of a (key, nonce) pair: 16
// bytes of SHA-256 over both, the key length-prefixed so that ("a", "bc")
// and ("ab", "c") stay apart. Rows are then of fixed size whatever the
// nonce's length, and hold nothing of the request. Aiming a collision at
// another key's nonce would need a second preimage of 128 bits.
func NonceHash(accessKeyID, nonce string) []byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(accessKeyID)))
	h.Write(n[:])
	h.Write([]byte(accessKeyID))
	h.Write([]byte(nonce))
	return h.Sum(nil)[:16]
}

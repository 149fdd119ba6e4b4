package rpc

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/rdsbackup/rdsbackup"
)

// Default per-key rate of RAM users' access keys.
const (
	DefaultRatePerKey  = 100 // requests per second, sustained
	DefaultBurstPerKey = 200 // requests at once
)

// maxIdleLimiters is how many limiters KeyRates keeps before it forgets
// those of idle keys (a full bucket is the same as a new one).
const maxIdleLimiters = 10000

// KeyRates limits the request rate of each access key with a token bucket
// of its own, so that one key over its rate is refused while the others
// are not.
type KeyRates struct {
	limit rate.Limit
	burst int

	mu   sync.Mutex
	keys map[string]*rate.Limiter
}

// NewKeyRates allows each key perSecond requests a second on average and
// burst at once.
func NewKeyRates(perSecond float64, burst int) *KeyRates {
	return &KeyRates{limit: rate.Limit(perSecond), burst: burst, keys: map[string]*rate.Limiter{}}
}

// Allow takes one request of accessKeyID's allowance at now, and reports
// whether there was one.
func (k *KeyRates) Allow(accessKeyID string, now time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	l, ok := k.keys[accessKeyID]
	if !ok {
		if len(k.keys) >= maxIdleLimiters {
			for id, l := range k.keys {
				if l.TokensAt(now) >= float64(k.burst) {
					delete(k.keys, id)
				}
			}
		}
		l = rate.NewLimiter(k.limit, k.burst)
		k.keys[accessKeyID] = l
	}
	return l.AllowN(now, 1)
}

// errThrottled is the cloud's flow-control refusal; why, when given, is
// appended.
func errThrottled(why string) *rdsbackup.Error {
	msg := "Request was denied due to user flow control."
	if why != "" {
		msg = "Request was denied due to user flow control: " + why + "."
	}
	return rdsbackup.Errorf(rdsbackup.EThrottling, "%s", msg)
}

package rpc

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkRequestChecks measures, per request, what issue 8 added to the
// request path: the parameter-name check of a DescribeBackups call's 16
// parameters, the replay memory with per-key accounting, and a RAM user's
// rate limiter. (BENCHMARKS.md puts them next to a whole call.)
func BenchmarkRequestChecks(b *testing.B) {
	params := v2Params(testAK, "n", testNow)
	params.Set("PageSize", "30")
	params.Set("PageNumber", "1")
	b.Run("param-names", func(b *testing.B) {
		for b.Loop() {
			for name := range params {
				if CheckParamName(name) != nil {
					b.Fatal(name)
				}
			}
		}
	})
	for _, root := range []bool{true, false} {
		name := "nonce/ram-key"
		if root {
			name = "nonce/root-key"
		}
		b.Run(name, func(b *testing.B) {
			c := NewNonceCache(15*time.Minute, 0)
			i := 0
			for b.Loop() {
				if err := c.Use(testAK, root, strconv.Itoa(i), testNow, testNow); err != nil && i < DefaultMaxNonces/UserShareDivisor {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("rate", func(b *testing.B) {
		r := NewKeyRates(1e9, 1e9)
		for b.Loop() {
			r.Allow(testAK, testNow)
		}
	})
}

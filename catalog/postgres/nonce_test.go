package postgres_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/catalog/catalogtest"
	"github.com/rdsbackup/rdsbackup/engine/enginetest"
	"github.com/rdsbackup/rdsbackup/rpc/noncetest"
)

// Every handle is another pool on one schema, as nodes are.
func TestNonceConformance(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	name := srv.NewDatabase(t)
	noncetest.Run(t, noncetest.Harness{New: func(t *testing.T, window time.Duration, max int) func(*testing.T) rdsbackup.NonceStore {
		open := opener(newSchema(t, srv, name))
		return func(t *testing.T) rdsbackup.NonceStore {
			return catalogtest.Open(t, open).Nonces(window, max)
		}
	}})
}

// Expired buckets leave the tables, in batches, without a request waiting
// for them.
func TestNonceSweep(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	dsn := newSchema(t, srv, srv.NewDatabase(t))
	c := catalogtest.Open(t, opener(dsn))
	s := c.Nonces(15*time.Minute, 100000)
	ctx := t.Context()
	for i := range 3 {
		at := noncetest.T0.Add(time.Duration(i) * time.Minute)
		noncetest.WantCode(t, "use", s.UseNonce(ctx, "ak", false, fmt.Sprint(i), at, at), "")
	}
	// The counters go last, once every expired nonce is gone.
	later := noncetest.T0.Add(40 * time.Minute)
	noncetest.WantCode(t, "use", s.UseNonce(ctx, "ak", true, "new", later, later), "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := s.NonceCount(ctx, noncetest.T0)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 { // the new one
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d nonces counted, want 1: the first minutes' are left", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two nodes, many requests at once over the same nonces and keys, in
// different orders: batches on the two nodes lock the same rows, and must
// neither deadlock nor accept a nonce twice.
func TestNonceBatchesRace(t *testing.T) {
	srv := enginetest.SharedPostgres(t)
	open := opener(newSchema(t, srv, srv.NewDatabase(t)))
	nodes := []rdsbackup.NonceStore{
		catalogtest.Open(t, open).Nonces(15*time.Minute, 100000),
		catalogtest.Open(t, open).Nonces(15*time.Minute, 100000),
	}
	const keys, nonces, goroutines = 4, 40, 8
	var mu sync.Mutex
	accepted := map[string]int{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			order := r.Perm(keys * nonces)
			for _, i := range order {
				ak, nonce := fmt.Sprint("k", i%keys), fmt.Sprint("n", i/keys)
				err := nodes[g%2].UseNonce(t.Context(), ak, false, nonce, noncetest.T0, noncetest.T0)
				switch rdsbackup.ErrorCode(err) {
				case "":
					mu.Lock()
					accepted[ak+"/"+nonce]++
					mu.Unlock()
				case rdsbackup.ENonceUsed:
				default:
					t.Errorf("%s %s: %v", ak, nonce, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(accepted) != keys*nonces {
		t.Errorf("%d pairs accepted, want %d", len(accepted), keys*nonces)
	}
	for p, n := range accepted {
		if n != 1 {
			t.Errorf("%s accepted %d times", p, n)
		}
	}
	if n, err := nodes[0].NonceCount(t.Context(), noncetest.T0); err != nil || n != keys*nonces {
		t.Errorf("NonceCount = %d, %v; want %d", n, err, keys*nonces)
	}
}

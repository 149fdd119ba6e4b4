package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogram checks quantiles against the exact ones of the same samples.
func TestHistogram(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, a, b histogram
	var samples []time.Duration
	for i := range 100000 {
		// Log-uniform from 1 µs to ~1 s, like latencies.
		d := time.Duration(float64(time.Microsecond) * float64(uint64(1)<<r.IntN(20)) * (1 + r.Float64()))
		samples = append(samples, d)
		h.record(d)
		if i%2 == 0 {
			a.record(d)
		} else {
			b.record(d)
		}
	}
	a.merge(&b)
	slices.Sort(samples)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := samples[int(q*float64(len(samples)))-1]
		for _, hh := range []*histogram{&h, &a} {
			got := hh.quantile(q)
			if diff := float64(got-exact) / float64(exact); diff > 0.005 || diff < -0.005 {
				t.Errorf("q%.3f: got %v, exact %v (%.2f%%)", q, got, exact, 100*diff)
			}
		}
	}
	if h.quantile(1) != samples[len(samples)-1] || h.n != uint64(len(samples)) || a.n != h.n {
		t.Errorf("max %v (want %v), n %d/%d", h.quantile(1), samples[len(samples)-1], h.n, a.n)
	}
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1 << 40, 1<<63 - 1} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if mid := uint64(histValue(i)); v >= 256 && (float64(mid) < float64(v)*0.99 || float64(mid) > float64(v)*1.01) {
			t.Errorf("histValue(histIndex(%d)) = %d", v, mid)
		}
	}
}

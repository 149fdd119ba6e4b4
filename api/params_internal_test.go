package api

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestFormatTimeMatchesTimeFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	cases := []time.Time{
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-5, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 27, 1, 2, 3, 0, time.FixedZone("x", 9*3600)),
	}
	for range 10000 {
		cases = append(cases, time.Unix(r.Int64N(1<<36)-1<<34, r.Int64N(1e9)))
	}
	for _, c := range cases {
		if got, want := formatTime(c), c.UTC().Format(timeLayoutSeconds); got != want {
			t.Fatalf("formatTime(%v) = %q, want %q", c, got, want)
		}
	}
	if formatTime(time.Time{}) != "" {
		t.Fatal("zero time not empty")
	}
}

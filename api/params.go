package api

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Wire time layouts.
const (
	timeLayoutSeconds = "2006-01-02T15:04:05Z"
	timeLayoutMinutes = "2006-01-02T15:04Z"
)

// formatTime writes t as timeLayoutSeconds, or "" for the zero time. By
// hand for four-digit years: a page of DescribeBackups formats 90 times, and
// Time.Format's layout interpretation was a visible share of it.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(timeLayoutSeconds)
	}
	hour, minute, sec := t.Clock()
	var b [20]byte
	put := func(i, v, width int) {
		for j := i + width - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	b[4] = '-'
	put(5, int(month), 2)
	b[7] = '-'
	put(8, day, 2)
	b[10] = 'T'
	put(11, hour, 2)
	b[13] = ':'
	put(14, minute, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = 'Z'
	return string(b[:])
}

// parseQueryTime reads a DescribeBackups time bound: the documented
// yyyy-MM-ddTHH:mmZ, or the same with seconds, which other actions use.
func parseQueryTime(s string) (time.Time, bool) {
	for _, layout := range []string{timeLayoutMinutes, timeLayoutSeconds} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// positiveInt parses a positive 32-bit integer (the SDKs' Integer type).
func positiveInt(s string) (int, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 || n > math.MaxInt32 {
		return 0, false
	}
	return int(n), true
}

// enumParam validates an optional enumerated parameter; "" means absent.
func enumParam(c *call, name string, allowed ...string) (string, error) {
	v := c.param(name)
	if v == "" {
		return "", nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", rdsbackup.InvalidParameter(name, "must be one of "+strings.Join(allowed, ", ")+", got "+rdsbackup.QuoteValue(v))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

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

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayoutSeconds)
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
	return "", rdsbackup.InvalidParameter(name, "must be one of "+strings.Join(allowed, ", ")+", got "+strconv.Quote(v))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

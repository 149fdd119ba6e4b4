package rdsbackup

import (
	"strings"
	"testing"
)

func TestQuoteValue(t *testing.T) {
	if got := QuoteValue("30 0"); got != `"30 0"` {
		t.Errorf("short value: %s", got)
	}
	long := strings.Repeat("é", 100) // 200 bytes, two per character
	got := QuoteValue(long)
	if len(got) > MaxQuotedValue+32 || !strings.HasSuffix(got, "… (200 bytes)") || strings.Contains(got, `\x`) {
		t.Errorf("long value: %s", got)
	}
}

package ram

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		fold       bool
		want       bool
	}{
		{"*", "", false, true},
		{"*", "anything", false, true},
		{"", "", false, true},
		{"", "a", false, false},
		{"abc", "abc", false, true},
		{"abc", "abd", false, false},
		{"abc", "ab", false, false},
		{"abc", "ABC", false, false},
		{"abc", "ABC", true, true},
		{"ABC", "abc", true, true}, // the pattern is folded too
		{"rds:Describe*", "rds:DescribeBackups", false, true},
		{"rds:Describe*", "rds:Describe", false, true},
		{"rds:Describe*", "rds:describebackups", false, false},
		{"rds:Describe*", "rds:describebackups", true, true},
		{"rds:Describe*", "rds:Delete", true, false},
		{"a?c", "abc", false, true},
		{"a?c", "ac", false, false},
		{"a?c", "abbc", false, false},
		{"a?c", "aéc", false, true}, // ? is one character, not one byte
		{"é*", "éa", false, true},
		{"??", "é", false, false},
		{"?", "", false, false},
		{"*c", "abc", false, true},
		{"*c", "abd", false, false},
		{"a*b*c", "aXbYbZc", false, true},
		{"a*b*c", "aXbYbZ", false, false},
		{"a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false},
		{"*?", "", false, false},
		{"*?", "x", false, true},
		{"acs:rds:*:*:dbinstance/rm-a*", "acs:rds:cn-hangzhou:123:dbinstance/rm-a1", false, true},
		{"acs:rds:*:*:dbinstance/rm-a*", "acs:rds:cn-hangzhou:123:dbinstance/rm-b1", false, false},
		{"acs:rds:*:*:dbinstance/rm-a?", "acs:rds:cn-hangzhou:123:dbinstance/rm-a12", false, false},
	}
	for _, tt := range tests {
		g := compileGlob(tt.pattern, tt.fold)
		if got := g.match(tt.s); got != tt.want {
			t.Errorf("glob %q (fold=%v) match %q = %v, want %v", tt.pattern, tt.fold, tt.s, got, tt.want)
		}
	}
}

// TestGlobAgainstRegexp cross-checks the matcher on random short patterns
// with a regexp translation, which is obviously correct but slow.
func TestGlobAgainstRegexp(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(alphabet string, n int) string {
		var b strings.Builder
		for range r.IntN(n + 1) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 5000 {
		p, s := gen("ab*?", 6), gen("abAB", 7)
		fold := r.IntN(2) == 0
		re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(p)) + "$"
		if fold {
			re = "(?i)" + re
		}
		want := regexp.MustCompile(re).MatchString(s)
		g := compileGlob(p, fold)
		if got := g.match(s); got != want {
			t.Fatalf("glob %q (fold=%v) match %q = %v, want %v", p, fold, s, got, want)
		}
	}
}

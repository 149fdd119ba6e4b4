package ram

import (
	"strings"
	"unicode/utf8"
)

// globKind selects a matcher. Most patterns in real policies are "*", a
// literal or a literal followed by "*"; those get a direct comparison and
// only the rest pay for the general algorithm.
type globKind uint8

const (
	globAny     globKind = iota // "*"
	globExact                   // no wildcard
	globPrefix                  // literal + "*"
	globGeneral                 // anything else
)

// glob is a compiled wildcard pattern: '*' matches zero or more characters,
// '?' exactly one character (rune). There is no escape character, as in RAM.
type glob struct {
	kind globKind
	fold bool   // ASCII case-insensitive; pat is then stored lower-case
	pat  string // the literal for globExact and globPrefix
}

func compileGlob(pattern string, fold bool) glob {
	if fold {
		pattern = lowerASCII(pattern)
	}
	g := glob{kind: globGeneral, fold: fold, pat: pattern}
	switch i := strings.IndexAny(pattern, "*?"); {
	case pattern == "*":
		g.kind = globAny
	case i < 0:
		g.kind = globExact
	case i == len(pattern)-1 && pattern[i] == '*':
		g.kind = globPrefix
		g.pat = pattern[:i]
	}
	return g
}

func (g *glob) match(s string) bool {
	switch g.kind {
	case globAny:
		return true
	case globExact:
		if g.fold {
			return len(s) == len(g.pat) && hasPrefixFold(s, g.pat)
		}
		return s == g.pat
	case globPrefix:
		if g.fold {
			return hasPrefixFold(s, g.pat)
		}
		return strings.HasPrefix(s, g.pat)
	}
	return matchGeneral(g.pat, s, g.fold)
}

// matchGeneral is the usual iterative glob matcher: on a mismatch it
// backtracks only to the most recent '*', letting it absorb one more rune,
// so it runs in O(len(p)*len(s)) at worst, with no recursion or regexp.
func matchGeneral(p, s string, fold bool) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				if sx < len(s) {
					_, n := utf8.DecodeRuneInString(s[sx:])
					px++
					sx += n
					continue
				}
			default:
				if sx < len(s) && (s[sx] == c || fold && toLowerASCII(s[sx]) == c) {
					px++
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			_, n := utf8.DecodeRuneInString(s[starSx:])
			starSx += n
			px, sx = starPx+1, starSx
			continue
		}
		return false
	}
	return true
}

// hasPrefixFold reports whether s begins with lower, ignoring ASCII case in
// s; lower is already lower-case.
func hasPrefixFold(s, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for i := 0; i < len(lower); i++ {
		if toLowerASCII(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

func toLowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// lowerASCII folds only ASCII letters, so that byte offsets are unchanged
// and matching stays consistent with toLowerASCII.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = toLowerASCII(c)
	}
	return string(b)
}

package childproc

import (
	"bytes"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tail is an io.Writer that keeps the last bytes written to it, at most a
// bound set by NewTail: a tool's standard error, for its error message. It
// is safe for concurrent use.
type Tail struct {
	mu      sync.Mutex
	max     int
	buf     []byte // the last max bytes are kept; up to 2*max are held
	dropped bool   // bytes before the kept ones were dropped
}

// NewTail returns a Tail that keeps the last max bytes; max must be
// positive.
func NewTail(max int) *Tail { return &Tail{max: max} }

// Write keeps the end of p; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		t.dropped = true
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
		t.dropped = true
	}
	return n, nil
}

// lines returns the kept bytes, starting after the first line break when
// something was dropped before them and a line follows that break, and
// whether something was dropped. The caller must hold mu.
func (t *Tail) lines() ([]byte, bool) {
	b, dropped := t.buf, t.dropped
	if len(b) > t.max {
		b, dropped = b[len(b)-t.max:], true
	}
	if dropped {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	return b, dropped
}

// String returns the kept bytes as they are, except that when something
// was dropped they start at a whole line where they can, after "…".
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, dropped := t.lines()
	if dropped {
		return "…" + string(b)
	}
	return string(b)
}

// Text returns what String does, tidied for a one-line message: a rune cut
// at the start is dropped, invalid UTF-8 is replaced, surrounding space is
// trimmed, and "…" is only shown before some text.
func (t *Tail) Text() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, dropped := t.lines()
	if dropped {
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if dropped && s != "" {
		s = "…" + s
	}
	return s
}

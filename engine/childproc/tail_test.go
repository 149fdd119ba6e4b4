package childproc

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func tail(max int, chunks ...string) *Tail {
	t := NewTail(max)
	for _, c := range chunks {
		fmt.Fprint(t, c)
	}
	return t
}

func TestTailShort(t *testing.T) {
	tl := tail(100, "one\n", "two\n")
	if got := tl.String(); got != "one\ntwo\n" {
		t.Errorf("String = %q", got)
	}
	if got := tl.Text(); got != "one\ntwo" {
		t.Errorf("Text = %q", got)
	}
	if got := tail(100).String(); got != "" {
		t.Errorf("empty String = %q", got)
	}
}

func TestTailCutAtLine(t *testing.T) {
	tl := tail(16, "first line\nsecond line\nthird\n")
	if got := tl.String(); got != "…third\n" {
		t.Errorf("String = %q", got)
	}
	if got := tl.Text(); got != "…third" {
		t.Errorf("Text = %q", got)
	}
	long := strings.Repeat("x", 50) + "\nfirst kept line\nlast line\n"
	if got := tail(30, long).Text(); got != "…first kept line\nlast line" {
		t.Errorf("cut at a line: %q", got)
	}
	// No line break to cut at: the tail starts mid-line.
	if got := tail(4, "abcdefgh").String(); got != "…efgh" {
		t.Errorf("no line: %q", got)
	}
	// A break at the very end is no line start.
	if got := tail(4, "abc\n").String(); got != "…abc\n" {
		t.Errorf("break at the end: %q", got)
	}
}

func TestTailExactlyFull(t *testing.T) {
	// Writes that add up to the bound drop nothing.
	if got := tail(8, "abcd", "efgh").String(); got != "abcdefgh" {
		t.Errorf("full: %q", got)
	}
	// One byte more does.
	if got := tail(8, "abcd", "efgh", "i").String(); got != "…bcdefghi" {
		t.Errorf("one over: %q", got)
	}
}

func TestTailManyChunks(t *testing.T) {
	var chunks []string
	for i := range 1000 {
		chunks = append(chunks, "line ", strings.Repeat("é", i%7), "\n")
	}
	chunks = append(chunks, "the error\n")
	tl := tail(64, chunks...)
	got := tl.Text()
	if len(got) > 64+len("…") || !strings.HasSuffix(got, "the error") || !strings.HasPrefix(got, "…") {
		t.Errorf("many chunks: %q", got)
	}
	if s := tl.String(); len(s) > 64+len("…") || !strings.HasSuffix(s, "the error\n") {
		t.Errorf("many chunks String: %q", s)
	}
	// The buffer stays bounded however much is written.
	if n := cap(tl.buf); n > 4*64 {
		t.Errorf("buffer grew to %d bytes", n)
	}
}

func TestTailUTF8(t *testing.T) {
	if got := tail(4, "ééé").Text(); got != "…éé" {
		t.Errorf("cut rune: %q", got)
	}
	if got := tail(100, "bad \xff byte").Text(); got != "bad \uFFFD byte" {
		t.Errorf("invalid UTF-8: %q", got)
	}
	// Nothing but space after the cut: no lone ellipsis.
	if got := tail(4, "error\n   \n").Text(); got != "" {
		t.Errorf("space only: %q", got)
	}
}

func TestTailConcurrent(t *testing.T) {
	tl := NewTail(100)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				fmt.Fprint(tl, "0123456789\n")
			}
		})
	}
	wg.Wait()
	if got := tl.String(); got != "…"+strings.Repeat("0123456789\n", 9) {
		t.Errorf("tail = %q", got)
	}
}

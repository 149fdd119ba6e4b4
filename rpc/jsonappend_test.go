package rpc

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

func encodingJSONString(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	fixed := []string{"", "plain", `q"uote`, `back\slash`, "<html>&amp;", "\x00\x01\x1f\x7f", "\b\f\n\r\t",
		"日本語", "emoji😀", "\u2028\u2029", "bad\xffutf8\xc3", "\xed\xa0\x80 surrogate", "tail\xe2\x82"}
	for _, s := range fixed {
		if got, want := AppendJSONString(nil, s), encodingJSONString(t, s); !bytes.Equal(got, want) {
			t.Errorf("AppendJSONString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
	// Random bytes, biased towards the interesting ones.
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte("aZ09 \"\\<>&\x00\x1f\x7f\n\t\xe2\x80\xa8\xa9\xc3\xa9\xff\xf0\x9f\x98\x80")
	for range 20000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		s := string(b)
		if got, want := AppendJSONString([]byte("prefix"), s), append([]byte("prefix"), encodingJSONString(t, s)...); !bytes.Equal(got, want) {
			t.Fatalf("AppendJSONString(%q) = %s, encoding/json %s", s, got, want)
		}
	}
}

package columns

import (
	"strconv"

	"github.com/rdsbackup/rdsbackup"
)

// The artifacts and db_names columns are JSON written by EncodeArtifacts and
// JoinList. DescribeBackups reads them for every set of every page, and
// encoding/json took about a fifth of its CPU doing so; these parsers read
// the exact shapes those encoders write and report false on anything else
// (an escaped string, a reordered or unknown key, other spacing), in which
// case the caller falls back to encoding/json. So they are a fast path, never
// a second definition of the format.

// parseStringList parses `["a","b"]` with no escapes in the strings.
func parseStringList(s string) ([]string, bool) {
	p := jsonScanner{s: s}
	if !p.lit("[") {
		return nil, false
	}
	out := make([]string, 0, 4)
	if p.lit("]") {
		return out, p.done()
	}
	for {
		v, ok := p.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if p.lit("]") {
			return out, p.done()
		}
		if !p.lit(",") {
			return nil, false
		}
	}
}

// parseArtifacts parses the storedArtifact array EncodeArtifacts writes:
// `[{"db":"…","kind":"…","off":N,"len":N,"crc":"…"},…]`, kind omitted when
// empty.
func parseArtifacts(s string) ([]rdsbackup.Artifact, bool) {
	p := jsonScanner{s: s}
	if !p.lit("[") {
		return nil, false
	}
	out := make([]rdsbackup.Artifact, 0, 4)
	if p.lit("]") {
		return out, p.done()
	}
	for {
		var a rdsbackup.Artifact
		ok := p.lit(`{"db":`)
		if ok {
			a.Database, ok = p.str()
		}
		if ok && p.lit(`,"kind":`) {
			a.Kind, ok = p.str()
		}
		if ok {
			ok = p.lit(`,"off":`)
		}
		if ok {
			a.Offset, ok = p.int()
		}
		if ok {
			ok = p.lit(`,"len":`)
		}
		if ok {
			a.Length, ok = p.int()
		}
		if ok {
			ok = p.lit(`,"crc":`)
		}
		if ok {
			a.Checksum, ok = p.str()
		}
		if !ok || !p.lit("}") {
			return nil, false
		}
		out = append(out, a)
		if p.lit("]") {
			return out, p.done()
		}
		if !p.lit(",") {
			return nil, false
		}
	}
}

type jsonScanner struct {
	s string
	i int
}

// lit consumes t if the input continues with it.
func (p *jsonScanner) lit(t string) bool {
	if len(p.s)-p.i >= len(t) && p.s[p.i:p.i+len(t)] == t {
		p.i += len(t)
		return true
	}
	return false
}

// str consumes a string without escapes or control characters. Multi-byte
// UTF-8 passes through; encoding/json wrote it valid, and invalid bytes
// would have been written escaped.
func (p *jsonScanner) str() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	for j := p.i; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			v := p.s[p.i:j]
			p.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// int consumes an integer as strconv.AppendInt writes it.
func (p *jsonScanner) int() (int64, bool) {
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(p.s[p.i:j], 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return n, true
}

func (p *jsonScanner) done() bool { return p.i == len(p.s) }

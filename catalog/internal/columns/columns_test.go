package columns

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

// randomName mixes plain names with what encoding/json escapes (quotes,
// backslashes, control and HTML characters, U+2028) and multi-byte UTF-8,
// so both the fast path and the fallback are exercised.
func randomName(r *rand.Rand) string {
	pieces := []string{"sales", "db_1", "", "日本語", "naïve", `q"uote`, `back\slash`, "tab\there", "<html>&", "\u2028", "\x7f", "ünï", "a,b", "emoji😀"}
	var s string
	for range r.IntN(3) + 1 {
		s += pieces[r.IntN(len(pieces))]
	}
	return s
}

func TestArtifactsFastPathAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	for i := range 5000 {
		as := make([]rdsbackup.Artifact, r.IntN(5)+1)
		for j := range as {
			as[j] = rdsbackup.Artifact{
				Database: randomName(r),
				Offset:   r.Int64N(math.MaxInt64),
				Length:   r.Int64N(1 << 40),
				Checksum: randomName(r),
			}
			if r.IntN(3) > 0 {
				as[j].Kind = []string{rdsbackup.PartDatabase, rdsbackup.PartGlobals, rdsbackup.PartPhysical}[r.IntN(3)]
			}
		}
		col := EncodeArtifacts(as)
		var want []storedArtifact
		if err := json.Unmarshal([]byte(col), &want); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeArtifacts(col)
		if err != nil {
			t.Fatalf("case %d: decode %s: %v", i, col, err)
		}
		if len(got) != len(want) {
			t.Fatalf("case %d: %d artifacts, want %d", i, len(got), len(want))
		}
		for j, w := range want {
			if g := got[j]; g != (rdsbackup.Artifact{Database: w.Database, Kind: w.Kind, Offset: w.Offset, Length: w.Length, Checksum: w.Checksum}) {
				t.Fatalf("case %d: artifact %d = %+v, want %+v (column %s)", i, j, g, w, col)
			}
		}
		if !reflect.DeepEqual(got, as) {
			t.Fatalf("case %d: round trip changed %+v into %+v", i, as, got)
		}
		if _, ok := parseArtifacts(col); ok {
			fast++
		}
	}
	// The point of the fast path: plain names take it.
	if fast < 100 {
		t.Fatalf("only %d of 5000 columns took the fast path", fast)
	}
	if _, ok := parseArtifacts(EncodeArtifacts([]rdsbackup.Artifact{{Database: "sales", Kind: "database", Offset: 0, Length: 10, Checksum: "123"}})); !ok {
		t.Fatal("a plain artifact did not take the fast path")
	}
}

func TestStringListFastPathAgreesWithEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		names := make([]string, r.IntN(6)+1)
		for j := range names {
			names[j] = randomName(r)
		}
		col := JoinList(names)
		var want []string
		if err := json.Unmarshal([]byte(col), &want); err != nil {
			t.Fatal(err)
		}
		if got := SplitList(col); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: SplitList(%s) = %q, want %q", i, col, got, want)
		}
	}
	if got, ok := parseStringList(`["a","b"]`); !ok || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf(`parseStringList(["a","b"]) = %q, %v`, got, ok)
	}
}

// Anything but the exact shape leaves the fast path, and what encoding/json
// rejects stays an error.
func TestFastPathsRefuseOtherShapes(t *testing.T) {
	for _, col := range []string{
		`[`, `]`, `[]x`, `["a"`, `["a",]`, `["a" ]`, `[ "a"]`, `["a\"b"]`, `["a\u0041"]`, "[\"a\tb\"]", `[1]`, `null`, `["a"]]`,
	} {
		if _, ok := parseStringList(col); ok {
			t.Errorf("parseStringList(%q) took the fast path", col)
		}
	}
	for _, col := range []string{
		`[{"db":"a","off":1,"len":2,"crc":"3"}`,
		`[{"db":"a","len":2,"off":1,"crc":"3"}]`,
		`[{"db":"a","off":1,"len":2,"crc":"3","x":1}]`,
		`[{"db":"a","off":1.5,"len":2,"crc":"3"}]`,
		`[{"db":"a","off":99999999999999999999,"len":2,"crc":"3"}]`,
		`[{"db":"a\\b","off":1,"len":2,"crc":"3"}]`,
		`[{"db":"a","off":1,"len":2,"crc":"3"} ]`,
		`[{"db":"a","off":1,"len":2,"crc":"3"},]`,
	} {
		if _, ok := parseArtifacts(col); ok {
			t.Errorf("parseArtifacts(%q) took the fast path", col)
		}
	}
	if _, err := DecodeArtifacts(`[{"db":`); err == nil {
		t.Error("DecodeArtifacts accepted a truncated column")
	}
	// Reordered keys are valid JSON: the fallback still reads them.
	got, err := DecodeArtifacts(`[{"len":2,"db":"a","crc":"3","off":1}]`)
	if err != nil || len(got) != 1 || got[0] != (rdsbackup.Artifact{Database: "a", Offset: 1, Length: 2, Checksum: "3"}) {
		t.Errorf("fallback: %+v, %v", got, err)
	}
}

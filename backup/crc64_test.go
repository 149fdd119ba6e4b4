package backup

import (
	"hash/crc64"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCombineCRC64RandomSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for round := range 300 {
		size := rng.IntN(len(data) + 1)
		if round < 5 {
			size = round // tiny and empty wholes
		}
		buf := data[:size]
		want := crc64.Checksum(buf, crcTable)
		// Split points, with repeats: empty pieces included.
		cuts := []int{0}
		for range rng.IntN(8) {
			cuts = append(cuts, rng.IntN(size+1))
		}
		cuts = append(cuts, size)
		slices.Sort(cuts)
		var got uint64
		for i := 1; i < len(cuts); i++ {
			piece := buf[cuts[i-1]:cuts[i]]
			got = CombineCRC64(got, crc64.Checksum(piece, crcTable), int64(len(piece)))
		}
		if got != want {
			t.Fatalf("size %d cut at %v: combined %x, want %x", size, cuts, got, want)
		}
	}
}

func TestCombineCRC64Edges(t *testing.T) {
	a, b := []byte("123456789"), []byte{}
	ca := crc64.Checksum(a, crcTable)
	if ca != 0x995DC9BBDF1939FA { // the CRC-64/XZ check value
		t.Fatalf("check value %x", ca)
	}
	if got := CombineCRC64(ca, crc64.Checksum(b, crcTable), 0); got != ca {
		t.Errorf("A + empty = %x, want %x", got, ca)
	}
	if got := CombineCRC64(0, ca, int64(len(a))); got != ca {
		t.Errorf("empty + A = %x, want %x", got, ca)
	}
}

func TestCombineCRC64Long(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 4 GiB")
	}
	// Lengths past 4 GiB, of zero bytes, hashed in 1 MiB pieces.
	zeros := make([]byte, 1<<20)
	cz := crc64.Checksum(zeros, crcTable)
	h := crc64.New(crcTable)
	var z4096 uint64 // 4096 MiB of zeros, by chaining
	for range 4096 {
		z4096 = CombineCRC64(z4096, cz, int64(len(zeros)))
		h.Write(zeros)
	}
	if z4096 != h.Sum64() {
		t.Fatalf("4096 MiB of zeros: chained %x, hashed %x", z4096, h.Sum64())
	}
	h.Write(zeros)
	// 1 MiB then 4 GiB in one step: len2 needs more than 32 bits.
	if got := CombineCRC64(cz, z4096, 4096<<20); got != h.Sum64() {
		t.Errorf("1 MiB + 4096 MiB of zeros: %x, want %x", got, h.Sum64())
	}
}

func BenchmarkCombineCRC64(b *testing.B) {
	for b.Loop() {
		CombineCRC64(1, 2, 400<<20)
	}
}

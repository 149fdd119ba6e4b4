package backup

// CRC-64/XZ (crc64.ECMA, reflected) of a concatenation from the CRCs of
// its pieces, so that the set's checksum is derived from its parts'
// instead of hashing every byte a second time. This is the GF(2) matrix
// method: feeding n zero bytes through the CRC register is a linear
// operator, built by repeated squaring of the one-zero-bit operator.

// crc64ECMAReflected is the ECMA-182 polynomial, bit-reversed, as
// hash/crc64 uses it.
const crc64ECMAReflected = 0xC96C5795D7870F42

// gf2Matrix is a 64×64 matrix over GF(2): column i is the image of bit i.
type gf2Matrix [64]uint64

// times returns m·vec.
func (m *gf2Matrix) times(vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// square sets m to a·a.
func (m *gf2Matrix) square(a *gf2Matrix) {
	for i := range m {
		m[i] = a.times(a[i])
	}
}

// CombineCRC64 returns the CRC-64/XZ of A followed by B, given crc1 of A,
// crc2 of B and len2, B's length in bytes. The pre- and post-inversion of
// the CRC cancel out, so only crc1 has to be carried through len2 zero
// bytes before crc2 is added. A len2 of 0 (or less) returns crc1 ^ crc2,
// which is crc1 for an empty B.
func CombineCRC64(crc1, crc2 uint64, len2 int64) uint64 {
	if len2 <= 0 {
		return crc1 ^ crc2
	}
	// odd: the operator of one zero bit (a shift right, the polynomial
	// added when the low bit falls out); then of 2 and 4 zero bits.
	var even, odd gf2Matrix
	odd[0] = crc64ECMAReflected
	for i, row := 1, uint64(1); i < 64; i, row = i+1, row<<1 {
		odd[i] = row
	}
	even.square(&odd)
	odd.square(&even)
	// Square on, 8 zero bits first, applying the operators of the bits
	// set in len2.
	for {
		even.square(&odd)
		if len2&1 != 0 {
			crc1 = even.times(crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
		odd.square(&even)
		if len2&1 != 0 {
			crc1 = odd.times(crc1)
		}
		len2 >>= 1
		if len2 == 0 {
			break
		}
	}
	return crc1 ^ crc2
}

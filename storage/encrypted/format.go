package encrypted

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rdsbackup/rdsbackup"
)

// The object format, version 1 (docs/backup-format.md, "Encryption"):
//
//	magic      8  "\x89RBENC\r\n"
//	version    1  1
//	algorithm  1  1: AES-256-GCM, 64 KiB chunks
//	idLen      1  length of the key id (1..64)
//	keyID      idLen  the key-encryption key's id, ASCII
//	objLen     2  length of the object key, big endian (1..1024)
//	objectKey  objLen  the store key the object was written under
//	wrapNonce  12 random
//	wrappedDEK 48 the 32-byte data key sealed with AES-256-GCM under the
//	              KEK, with every header byte before wrapNonce as AAD
//	chunks     …  each ChunkSize plaintext bytes (the last one 0..ChunkSize)
//	              sealed with AES-256-GCM under the data key: 16 bytes more
//
// Chunk i's nonce is the last-chunk flag (1 byte), 3 zero bytes and i
// (uint64, big endian); its AAD is chunkAAD followed by the object key.
// The data key is random per object, so a nonce never repeats under a key;
// the index and flag refuse reordered and truncated or extended objects,
// and a chunk from another object fails under this object's data key.
// Re-wrapping replaces only the header: the chunks stay byte for byte.

const (
	// ChunkSize is the plaintext bytes per chunk: large enough that the
	// 16-byte tag and the per-chunk call cost nothing, small enough that a
	// range read decrypts little it does not return.
	ChunkSize = 64 << 10
	// Overhead is what each chunk adds: the GCM tag.
	Overhead = 16
	// Algorithm is the EncryptionType that DescribeBackups shows.
	Algorithm = "AES-256-GCM"

	version1      = 1
	algAESGCM64K  = 1
	dataKeySize   = 32
	wrapNonceSize = 12
	wrappedSize   = dataKeySize + 16
	maxKeyIDLen   = 64
	maxObjKeyLen  = 1024
	fixedHeader   = len(magic) + 3 // magic, version, algorithm, idLen
	// MaxHeaderSize bounds the header: reading this many bytes from the
	// start of an object always takes in its whole header.
	MaxHeaderSize = fixedHeader + maxKeyIDLen + 2 + maxObjKeyLen + wrapNonceSize + wrappedSize

	chunkCT = ChunkSize + Overhead
)

// magic starts every encrypted object. Unencrypted objects (zstd frames,
// JSON manifests) never start with it: 0x89 is not a zstd magic's first
// byte nor JSON, and CR LF catches a text-mode copy.
const magic = "\x89RBENC\r\n"

const (
	wrapAADContext  = "rdsbackup data key v1\x00"
	chunkAADContext = "rdsbackup chunk v1\x00"
)

// header is a parsed object header.
type header struct {
	keyID     string
	objectKey string
	nonce     []byte // wrapNonce
	wrapped   []byte // wrappedDEK
	size      int    // bytes of the header in the object
	raw       []byte // the header bytes before wrapNonce (the wrap AAD)
}

// validKeyID: ids are shown in the API's JSON and in messages unescaped.
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// hasMagic reports whether b starts like an encrypted object.
func hasMagic(b []byte) bool { return len(b) >= len(magic) && string(b[:len(magic)]) == magic }

// errNeedMore: parseHeader needs more bytes than it was given.
var errNeedMore = errors.New("header incomplete")

// parseHeader parses the header at the start of b (which starts with magic).
// It returns errNeedMore when b is too short to hold the header it starts.
func parseHeader(b []byte, objKeyHint string) (*header, error) {
	corrupt := func(why string) error {
		return rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "object %q: malformed encryption header: %s", objKeyHint, why)
	}
	if len(b) < fixedHeader {
		return nil, errNeedMore
	}
	if b[len(magic)] != version1 {
		return nil, corrupt(fmt.Sprintf("format version %d is not supported by this rdsbackup", b[len(magic)]))
	}
	if b[len(magic)+1] != algAESGCM64K {
		return nil, corrupt(fmt.Sprintf("unknown algorithm %d", b[len(magic)+1]))
	}
	idLen := int(b[len(magic)+2])
	if idLen == 0 || idLen > maxKeyIDLen {
		return nil, corrupt("bad key id length")
	}
	p := fixedHeader
	if len(b) < p+idLen+2 {
		return nil, errNeedMore
	}
	keyID := string(b[p : p+idLen])
	if !validKeyID(keyID) {
		return nil, corrupt("bad key id")
	}
	p += idLen
	objLen := int(binary.BigEndian.Uint16(b[p:]))
	p += 2
	if objLen == 0 || objLen > maxObjKeyLen {
		return nil, corrupt("bad object key length")
	}
	if len(b) < p+objLen+wrapNonceSize+wrappedSize {
		return nil, errNeedMore
	}
	h := &header{keyID: keyID, objectKey: string(b[p : p+objLen]), raw: b[: p+objLen : p+objLen]}
	p += objLen
	h.nonce = b[p : p+wrapNonceSize : p+wrapNonceSize]
	p += wrapNonceSize
	h.wrapped = b[p : p+wrappedSize : p+wrappedSize]
	h.size = p + wrappedSize
	return h, nil
}

// newHeader makes the header of a new object under kek, returning it and
// the object's fresh data key.
func newHeader(kek Key, objectKey string) (hdr, dek []byte, err error) {
	dek = make([]byte, dataKeySize)
	rand.Read(dek) // never fails (crypto/rand)
	hdr, err = wrapHeader(kek, objectKey, dek, nil)
	return hdr, dek, err
}

// wrapHeader builds a header carrying dek sealed under kek, with a random
// wrap nonce unless one is given (tests that need fixed bytes).
func wrapHeader(kek Key, objectKey string, dek, nonce []byte) ([]byte, error) {
	if !validKeyID(kek.ID) || len(kek.Secret) != KeySize {
		return nil, fmt.Errorf("encryption key %q is malformed", kek.ID)
	}
	if len(objectKey) == 0 || len(objectKey) > maxObjKeyLen {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "invalid object key %q", objectKey)
	}
	b := make([]byte, 0, fixedHeader+len(kek.ID)+2+len(objectKey)+wrapNonceSize+wrappedSize)
	b = append(b, magic...)
	b = append(b, version1, algAESGCM64K, byte(len(kek.ID)))
	b = append(b, kek.ID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(objectKey)))
	b = append(b, objectKey...)
	aad := b[:len(b):len(b)]
	if nonce == nil {
		nonce = make([]byte, wrapNonceSize)
		rand.Read(nonce)
	}
	b = append(b, nonce...)
	aead, err := newGCM(kek.Secret)
	if err != nil {
		return nil, err
	}
	return aead.Seal(b, nonce, dek, wrapAAD(aad)), nil
}

func wrapAAD(raw []byte) []byte { return append([]byte(wrapAADContext), raw...) }

// unwrap opens the header's data key with the keyring.
func (h *header) unwrap(keys *Keyring) ([]byte, error) {
	kek, ok := keys.Lookup(h.keyID)
	if !ok {
		return nil, rdsbackup.Errorf(rdsbackup.EEncryptionKeyUnavailable,
			"object %q is encrypted with key %s, which is not in the keyring%s; nothing was read", h.objectKey, h.keyID, keys.where())
	}
	aead, err := newGCM(kek.Secret)
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, h.nonce, h.wrapped, wrapAAD(h.raw))
	if err != nil {
		return nil, rdsbackup.Errorf(rdsbackup.EEncryptionKeyUnavailable,
			"key %s%s does not open the data key of object %q: the keyring holds another key under that id, or the object's header is corrupt",
			h.keyID, keys.where(), h.objectKey)
	}
	return dek, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// chunkNonce is the nonce of chunk index, last or not.
func chunkNonce(nonce *[12]byte, index uint64, last bool) []byte {
	*nonce = [12]byte{}
	if last {
		nonce[0] = 1
	}
	binary.BigEndian.PutUint64(nonce[4:], index)
	return nonce[:]
}

func chunkAAD(objectKey string) []byte { return append([]byte(chunkAADContext), objectKey...) }

// plainSize derives an object's plaintext size and chunk count from its
// stored size and header size; ok is false for a size no writer makes
// (a truncated or extended object).
func plainSize(stored, headerSize int64) (size, chunks int64, ok bool) {
	body := stored - headerSize
	if body < Overhead {
		return 0, 0, false
	}
	full, rem := body/chunkCT, body%chunkCT
	switch {
	case rem == 0:
		return full * ChunkSize, full, true
	case rem < Overhead, rem == Overhead && full > 0:
		// An empty chunk is only ever the sole chunk of an empty object.
		return 0, 0, false
	}
	return full*ChunkSize + rem - Overhead, full + 1, true
}

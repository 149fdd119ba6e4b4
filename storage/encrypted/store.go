// Package encrypted encrypts the objects of any rdsbackup.ObjectStore
// before they leave the process, with streaming authenticated encryption
// (AES-256-GCM in 64 KiB chunks, a random data key per object wrapped by a
// key-encryption key). Byte ranges decrypt only the chunks they touch, and
// objects stored in the clear before encryption was turned on stay
// readable: they do not start with the format's magic. See format.go and
// docs/backup-format.md.
package encrypted

import (
	"bufio"
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/rdsbackup/rdsbackup"
)

// Store is an rdsbackup.ObjectStore that encrypts what it writes into
// Inner, and decrypts what it reads. Sizes (Stat, List, ranges) are those of
// the plaintext.
type Store struct {
	Inner rdsbackup.ObjectStore
	// Keys holds the keys that read objects and, its current key, write
	// them. It may be empty when Encrypt is off: then only objects stored
	// in the clear can be read.
	Keys *Keyring
	// Encrypt makes new objects encrypted; off, they are stored in the
	// clear (an installation that has not turned encryption on).
	Encrypt bool
}

var (
	_ rdsbackup.ObjectStore         = (*Store)(nil)
	_ rdsbackup.EncryptionInspector = (*Store)(nil)
)

// New returns a Store over inner.
func New(inner rdsbackup.ObjectStore, keys *Keyring, encrypt bool) *Store {
	return &Store{Inner: inner, Keys: keys, Encrypt: encrypt}
}

// Create starts an object. An encrypted object's header is written at once,
// so that a store refusing the write fails before the caller streams.
func (s *Store) Create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	if !s.Encrypt {
		return s.Inner.Create(ctx, key)
	}
	kek, ok := s.Keys.Current()
	if !ok {
		return nil, rdsbackup.Errorf(rdsbackup.EEncryptionKeyUnavailable, "encryption is on but the keyring%s has no key", s.Keys.where())
	}
	hdr, dek, err := newHeader(kek, key)
	if err != nil {
		return nil, err
	}
	return s.create(ctx, key, kek, hdr, dek)
}

func (s *Store) create(ctx context.Context, key string, kek Key, hdr, dek []byte) (rdsbackup.ObjectWriter, error) {
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	w, err := s.Inner.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		w.Abort()
		return nil, err
	}
	return &writer{inner: w, aead: aead, aad: chunkAAD(key), buf: make([]byte, 0, chunkCT),
		doc: rdsbackup.EncryptionDoc(Algorithm, kek.ID)}, nil
}

// writer seals each ChunkSize of plaintext as it fills. A full chunk is
// held until more bytes come or Commit, because only then is it known
// whether it is the last one.
type writer struct {
	inner rdsbackup.ObjectWriter
	aead  cipher.AEAD
	aad   []byte
	buf   []byte // plaintext of the current chunk; sealed in place
	index uint64
	nonce [12]byte
	err   error
	doc   string
}

var _ rdsbackup.EncryptingWriter = (*writer)(nil)

func (w *writer) Encryption() string { return w.doc }

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == ChunkSize {
			if err := w.seal(false); err != nil {
				return n, err
			}
		}
		k := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p, n = p[k:], n+k
	}
	return n, nil
}

func (w *writer) seal(last bool) error {
	ct := w.aead.Seal(w.buf[:0], chunkNonce(&w.nonce, w.index, last), w.buf, w.aad)
	if _, err := w.inner.Write(ct); err != nil {
		w.err = err
		return err
	}
	w.index++
	w.buf = w.buf[:0]
	return nil
}

func (w *writer) Commit() error {
	if w.err != nil {
		w.inner.Abort()
		return w.err
	}
	if err := w.seal(true); err != nil {
		w.inner.Abort()
		return err
	}
	w.err = errors.New("object writer already committed")
	return w.inner.Commit()
}

func (w *writer) Abort() error { return w.inner.Abort() }

// readHeader reads the start of an object: the header of an encrypted one
// (h != nil), or, for one stored in the clear, nil and the bytes read
// (at most MaxHeaderSize).
func (s *Store) readHeader(ctx context.Context, key string) (h *header, prefix []byte, err error) {
	rc, err := s.Inner.Open(ctx, key, 0, int64(MaxHeaderSize))
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	buf, err := io.ReadAll(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", key, err)
	}
	if !hasMagic(buf) {
		return nil, buf, nil
	}
	h, err = s.checkHeader(buf, key)
	return h, buf, err
}

// checkHeader parses a header and checks that it was written for key: an
// object copied under another key is not that key's object.
func (s *Store) checkHeader(buf []byte, key string) (*header, error) {
	h, err := parseHeader(buf, key)
	if err == errNeedMore {
		return nil, rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "object %q: truncated encryption header", key)
	} else if err != nil {
		return nil, err
	}
	if h.objectKey != key {
		return nil, rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "object %q holds the encrypted object %q: it was moved or swapped", key, h.objectKey)
	}
	return h, nil
}

// Stat reports the plaintext size, derived from the stored size; it needs
// no key.
func (s *Store) Stat(ctx context.Context, key string) (rdsbackup.ObjectInfo, error) {
	info, err := s.Inner.Stat(ctx, key)
	if err != nil {
		return info, err
	}
	return s.plainInfo(ctx, info)
}

func (s *Store) plainInfo(ctx context.Context, info rdsbackup.ObjectInfo) (rdsbackup.ObjectInfo, error) {
	h, _, err := s.readHeader(ctx, info.Key)
	if err != nil || h == nil {
		return info, err
	}
	// The object may have been replaced since the inner Stat: take the
	// size again now that the header is known.
	size, _, ok := plainSize(info.Size, int64(h.size))
	if !ok {
		return info, rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "object %q: %d stored bytes cannot be an encrypted object: truncated or extended", info.Key, info.Size)
	}
	info.Size = size
	return info, nil
}

// ObjectEncryption returns the Encryption document of a stored object.
func (s *Store) ObjectEncryption(ctx context.Context, key string) (string, error) {
	h, _, err := s.readHeader(ctx, key)
	if err != nil {
		return "", err
	}
	if h == nil {
		return rdsbackup.NoEncryption, nil
	}
	return rdsbackup.EncryptionDoc(Algorithm, h.keyID), nil
}

// Delete removes an object.
func (s *Store) Delete(ctx context.Context, key string) error { return s.Inner.Delete(ctx, key) }

// List lists the objects with their plaintext sizes: it reads the header of
// each (a small ranged read), since only the header tells an encrypted
// object from one stored in the clear. Objects deleted meanwhile are left
// out; a damaged one is listed with its stored size, so that it can still
// be found and deleted.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[rdsbackup.ObjectInfo, error] {
	return func(yield func(rdsbackup.ObjectInfo, error) bool) {
		for info, err := range s.Inner.List(ctx, prefix) {
			if err != nil {
				yield(rdsbackup.ObjectInfo{}, err)
				return
			}
			pi, err := s.plainInfo(ctx, info)
			switch rdsbackup.ErrorCode(err) {
			case rdsbackup.ENOTFOUND:
				continue
			case rdsbackup.EObjectCorrupt:
				pi, err = info, nil
			}
			if err != nil {
				yield(rdsbackup.ObjectInfo{}, fmt.Errorf("list %q: %w", prefix, err))
				return
			}
			if !yield(pi, nil) {
				return
			}
		}
	}
}

// Open reads length plaintext bytes from offset (length < 0: to the end).
// The key is checked, and the first chunk read authenticated, before Open
// returns, so a wrong key or a damaged start fails here and not halfway
// through a download. Reading from offset 0 is one read of the inner
// object; from elsewhere, the header, the size and the chunks the range
// touches are read separately.
func (s *Store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "negative offset %d", offset)
	}
	if offset == 0 {
		return s.openStart(ctx, key, length)
	}
	h, _, err := s.readHeader(ctx, key)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return s.Inner.Open(ctx, key, offset, length)
	}
	dek, err := h.unwrap(s.Keys)
	if err != nil {
		return nil, err
	}
	info, err := s.Inner.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	size, chunks, ok := plainSize(info.Size, int64(h.size))
	if !ok {
		return nil, rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "object %q: %d stored bytes cannot be an encrypted object: truncated or extended", key, info.Size)
	}
	if offset > size {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "offset %d is beyond the end of object %q (%d bytes)", offset, key, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	if n == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	first, lastNeeded := offset/ChunkSize, (offset+n-1)/ChunkSize
	rc, err := s.Inner.Open(ctx, key, int64(h.size)+first*chunkCT, (lastNeeded-first+1)*chunkCT)
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(dek)
	if err != nil {
		rc.Close()
		return nil, err
	}
	r := &reader{src: bufio.NewReaderSize(rc, 4096), closer: rc, aead: aead, aad: chunkAAD(key), key: key,
		index: uint64(first), lastIndex: chunks - 1, skip: int(offset - first*ChunkSize), remaining: n}
	return r.start()
}

// openStart reads from the start of the object in one inner read. Which
// chunk is last is seen from the end of the stream.
func (s *Store) openStart(ctx context.Context, key string, length int64) (io.ReadCloser, error) {
	innerLen := int64(-1)
	if length >= 0 {
		// The header, the chunks holding length bytes, and one byte more
		// to tell whether the last of them ends the object.
		innerLen = int64(MaxHeaderSize) + (length+ChunkSize-1)/ChunkSize*chunkCT + 1
	}
	rc, err := s.Inner.Open(ctx, key, 0, innerLen)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(rc, MaxHeaderSize)
	start, err := br.Peek(len(magic))
	if err != nil && err != io.EOF {
		rc.Close()
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if !hasMagic(start) {
		var src io.Reader = br
		if length >= 0 {
			src = io.LimitReader(br, length)
		}
		return struct {
			io.Reader
			io.Closer
		}{src, rc}, nil
	}
	buf, _ := br.Peek(MaxHeaderSize) // a short object yields what it has
	h, err := s.checkHeader(buf, key)
	if err != nil {
		rc.Close()
		return nil, err
	}
	dek, err := h.unwrap(s.Keys)
	if err != nil {
		rc.Close()
		return nil, err
	}
	aead, err := newGCM(dek)
	if err != nil {
		rc.Close()
		return nil, err
	}
	br.Discard(h.size)
	r := &reader{src: br, closer: rc, aead: aead, aad: chunkAAD(key), key: key, lastIndex: -1, remaining: length}
	return r.start()
}

// reader decrypts chunks in order.
type reader struct {
	src       *bufio.Reader
	closer    io.Closer
	aead      cipher.AEAD
	aad       []byte
	key       string
	index     uint64
	lastIndex int64 // the object's last chunk; -1: where the stream ends
	skip      int   // plaintext bytes of the first chunk before the range
	remaining int64 // plaintext bytes still to return; -1: all
	buf       []byte
	plain     []byte
	nonce     [12]byte
	done      bool
	err       error
}

// start authenticates the first chunk so that Open reports a damaged one.
func (r *reader) start() (io.ReadCloser, error) {
	r.buf = make([]byte, chunkCT)
	if r.remaining != 0 {
		if err := r.next(); err != nil {
			r.closer.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *reader) corrupt(format string, args ...any) error {
	return rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "object %q: "+format, append([]any{r.key}, args...)...)
}

func (r *reader) next() error {
	n, err := io.ReadFull(r.src, r.buf)
	last := false
	switch {
	case err == io.EOF:
		return r.corrupt("ends before its last chunk (truncated)")
	case err == io.ErrUnexpectedEOF:
		if r.lastIndex >= 0 && int64(r.index) != r.lastIndex {
			return r.corrupt("chunk %d is cut short (truncated)", r.index)
		}
		last = true
	case err != nil:
		return fmt.Errorf("read %s: %w", r.key, err)
	case r.lastIndex >= 0:
		last = int64(r.index) == r.lastIndex
	default:
		if _, perr := r.src.Peek(1); perr == io.EOF {
			last = true
		} else if perr != nil {
			return fmt.Errorf("read %s: %w", r.key, perr)
		}
	}
	if n < Overhead {
		return r.corrupt("chunk %d is cut short (truncated)", r.index)
	}
	plain, err := r.aead.Open(r.buf[:0], chunkNonce(&r.nonce, r.index, last), r.buf[:n], r.aad)
	if err != nil {
		return r.corrupt("chunk %d fails authentication: the object was changed, truncated or reordered", r.index)
	}
	if r.skip > len(plain) {
		return r.corrupt("chunk %d is shorter than its place in the object", r.index)
	}
	r.plain, r.skip = plain[r.skip:], 0
	r.index++
	r.done = last
	return nil
}

func (r *reader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	for len(r.plain) == 0 {
		switch {
		case r.err != nil:
			return 0, r.err
		case r.done || r.remaining == 0:
			return 0, io.EOF
		}
		r.err = r.next()
	}
	if r.remaining >= 0 && int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	if r.remaining >= 0 {
		r.remaining -= int64(n)
	}
	return n, nil
}

func (r *reader) Close() error { return r.closer.Close() }

// IsEncrypted reports whether an object starting with prefix (at least its
// first 8 bytes) is in the encrypted format.
func IsEncrypted(prefix []byte) bool { return hasMagic(prefix) }

// Decrypt writes the plaintext of an encrypted object read whole from src
// (a file downloaded from the bucket) to dst. It reads the object key from
// the header; an object stored in the clear is copied unchanged.
func Decrypt(dst io.Writer, src io.Reader, keys *Keyring) (int64, error) {
	br := bufio.NewReaderSize(src, MaxHeaderSize)
	start, err := br.Peek(len(magic))
	if err != nil && err != io.EOF {
		return 0, err
	}
	if !hasMagic(start) {
		return io.Copy(dst, br)
	}
	buf, _ := br.Peek(MaxHeaderSize)
	h, err := parseHeader(buf, "")
	if err == errNeedMore {
		return 0, rdsbackup.Errorf(rdsbackup.EObjectCorrupt, "truncated encryption header")
	} else if err != nil {
		return 0, err
	}
	dek, err := h.unwrap(keys)
	if err != nil {
		return 0, err
	}
	aead, err := newGCM(dek)
	if err != nil {
		return 0, err
	}
	br.Discard(h.size)
	r := &reader{src: br, closer: io.NopCloser(nil), aead: aead, aad: chunkAAD(h.objectKey), key: h.objectKey,
		lastIndex: -1, remaining: -1, buf: make([]byte, chunkCT)}
	return io.Copy(dst, r)
}

// Rewrap re-wraps the data key of an encrypted object under the keyring's
// current key. Only the header changes; the chunks are copied byte for
// byte. An ObjectStore can only replace whole objects, so this rewrites
// the object (a copy of it inside the inner store). It reports whether the
// object changed: false when it is stored in the clear or already under
// the current key.
func (s *Store) Rewrap(ctx context.Context, key string) (bool, error) {
	kek, ok := s.Keys.Current()
	if !ok {
		return false, rdsbackup.Errorf(rdsbackup.EEncryptionKeyUnavailable, "the keyring%s has no key", s.Keys.where())
	}
	rc, err := s.Inner.Open(ctx, key, 0, -1)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, MaxHeaderSize)
	start, err := br.Peek(len(magic))
	if err != nil && err != io.EOF {
		return false, err
	}
	if !hasMagic(start) {
		return false, nil
	}
	buf, _ := br.Peek(MaxHeaderSize)
	h, err := s.checkHeader(buf, key)
	if err != nil {
		return false, err
	}
	if h.keyID == kek.ID {
		return false, nil
	}
	dek, err := h.unwrap(s.Keys)
	if err != nil {
		return false, err
	}
	hdr, err := wrapHeader(kek, key, dek, nil)
	if err != nil {
		return false, err
	}
	br.Discard(h.size)
	w, err := s.Inner.Create(ctx, key)
	if err != nil {
		return false, err
	}
	defer w.Abort()
	if _, err := w.Write(hdr); err != nil {
		return false, err
	}
	if _, err := io.Copy(w, br); err != nil {
		return false, fmt.Errorf("rewrap %s: %w", key, err)
	}
	if err := w.Commit(); err != nil {
		return false, fmt.Errorf("rewrap %s: %w", key, err)
	}
	return true, nil
}

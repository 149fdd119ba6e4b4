package rdsbackup

import (
	"context"
	"io"
	"iter"
	"time"
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// ObjectWriter receives an object's bytes. Nothing is visible under the key
// until Commit returns nil; Abort (or a failed Commit, or a failed Write)
// leaves nothing behind. Abort after Commit does nothing, so callers may
// defer Abort. The context given to Create covers the whole write.
type ObjectWriter interface {
	io.Writer
	// Commit makes the object durable and visible under its key.
	Commit() error
	// Abort discards what was written.
	Abort() error
}

// ObjectStore holds backup objects (artifacts and manifests). Keys are
// slash-separated relative paths such as "backups/rm-a1/42/set.zst": no
// empty, "." or ".." segments, no leading "/", no backslash or NUL, at most
// 1024 bytes; a key must not also be the prefix directory of another key
// ("a" and "a/b"), which filesystems cannot hold. Invalid keys are EINVALID.
// A missing object is reported with an error whose ErrorCode is ENOTFOUND.
type ObjectStore interface {
	// Create starts writing a new object; an existing object with the same
	// key is replaced only when the new one commits.
	Create(ctx context.Context, key string) (ObjectWriter, error)
	// Open reads length bytes from offset (length < 0: to the end); a range
	// running past the end stops there, an offset past the end is EINVALID.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List yields the committed objects whose keys start with prefix, in
	// key (byte) order. It is streamed, because a bucket can hold millions
	// of objects: a store fetches them page by page as the loop asks, and
	// holds no more than a page. A failure is yielded once, as the error of
	// the last pair; an invalid prefix is either EINVALID or lists nothing.
	// Objects created or deleted during the loop may or may not be seen;
	// deleting the objects already yielded is safe.
	List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error]
}

// CollectObjects gathers what a List yields, for lists known to be small
// (the objects of one set) and for tests.
func CollectObjects(seq iter.Seq2[ObjectInfo, error]) ([]ObjectInfo, error) {
	var infos []ObjectInfo
	for info, err := range seq {
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// ListError returns a List that yields only err.
func ListError(err error) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) { yield(ObjectInfo{}, err) }
}

// EncryptingWriter is an ObjectWriter that encrypts what it stores.
// Encryption returns the object's Encryption document, as DescribeBackups
// shows it: {"EncryptionType":"AES-256-GCM","KeyId":"ek-…"}.
type EncryptingWriter interface {
	ObjectWriter
	Encryption() string
}

// EncryptionInspector is implemented by stores that encrypt objects:
// ObjectEncryption returns the Encryption document of a stored object read
// from its header, "{}" for one stored in the clear. It needs no key.
type EncryptionInspector interface {
	ObjectEncryption(ctx context.Context, key string) (string, error)
}

// NoEncryption is the Encryption document of an unencrypted set.
const NoEncryption = "{}"

// EncryptionDoc returns the Encryption document of a set encrypted with
// algorithm under the key-encryption key keyID. Both are plain ASCII
// identifiers (checked where they are made), so no escaping is needed.
func EncryptionDoc(algorithm, keyID string) string {
	return `{"EncryptionType":"` + algorithm + `","KeyId":"` + keyID + `"}`
}

type sizeHintKey struct{}

// WithSizeHint returns a context telling Create about how many bytes the
// object will have. Stores that upload in parts size their parts from it
// (an object store takes a bounded number of parts); others ignore it.
// It is a hint: the object may turn out smaller or somewhat larger.
func WithSizeHint(ctx context.Context, size int64) context.Context {
	return context.WithValue(ctx, sizeHintKey{}, size)
}

// SizeHint returns the hint WithSizeHint put in ctx, or 0.
func SizeHint(ctx context.Context) int64 {
	n, _ := ctx.Value(sizeHintKey{}).(int64)
	return n
}

// ContextReader returns r failing its reads with ctx's error once ctx is
// done, so a copy from a source that never blocks on ctx (a file, a pipe)
// still stops when it is cancelled.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

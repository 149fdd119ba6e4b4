package rdsbackup

import (
	"context"
	"io"
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
	// List returns the committed objects whose keys start with prefix, in
	// key order.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
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

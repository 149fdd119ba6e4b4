// Package s3 stores backup objects in an S3-compatible bucket (AWS S3,
// Alibaba OSS, MinIO, Ceph, SeaweedFS) through minio-go.
//
// The object "backups/rm-a1/42/set.zst" is the bucket object
// Prefix+"backups/rm-a1/42/set.zst". An object is written as a multipart
// upload, streamed: its bytes are cut into parts of PartSize as they
// arrive, and at most UploadConcurrency parts are held in memory (one
// being filled, the rest uploading), so memory is bounded by PartSize ×
// UploadConcurrency whatever the object's size. Nothing is visible under
// the key until Commit completes the upload; Abort, or a failed write,
// aborts it, so its parts are not left in the bucket. An object smaller
// than one part is sent in one PUT at Commit. Uploads that a killed
// process left behind are removed by CleanUploads, for this store's prefix
// only.
//
// A bucket takes at most 10,000 parts per object: the part size grows
// from the size hint given to Create (rdsbackup.WithSizeHint), and an
// object that outgrows 10,000 parts fails with a message saying so.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/rdsbackup/rdsbackup"
)

// Limits of S3 multipart uploads.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	maxKeyLen   = 1024

	// DefaultPartSize and DefaultUploadConcurrency bound an upload's
	// memory to 32 MiB.
	DefaultPartSize          = 16 << 20
	DefaultUploadConcurrency = 2
	// DefaultRequestTimeout bounds one request: a part's upload, a page of
	// a list, the headers of a download.
	DefaultRequestTimeout = 5 * time.Minute

	listPage = 1000
)

// maxParts is S3's limit of parts per object; a variable for tests.
var maxParts = 10_000

// Bucket addressing styles.
const (
	PathStyleAuto    = "auto"
	PathStylePath    = "path"
	PathStyleVirtual = "virtual-host"
)

// Config says where the bucket is and how to upload to it.
type Config struct {
	Endpoint        string // host[:port]
	Region          string
	Bucket          string
	Prefix          string // key prefix in the bucket, "" or ending in "/"
	AccessKeyID     string
	SecretAccessKey string
	Secure          bool   // https
	PathStyle       string // auto (default), path or virtual-host
	// PartSize is the size of an upload's parts (default 16 MiB, 5 MiB to
	// 5 GiB); it grows for objects whose size hint needs larger parts.
	PartSize int64
	// UploadConcurrency is how many parts of one object are in memory at
	// once: one being filled, the others uploading (default 2).
	UploadConcurrency int
	// RequestTimeout bounds each request, so that a stalled server fails a
	// write instead of hanging it (default 5m). A download's body may take
	// longer; its headers may not.
	RequestTimeout time.Duration
	// Transport, when set, carries the requests (tests).
	Transport http.RoundTripper
}

// Validate checks the fields and fills in defaults. Errors name the field
// as the storage section of the config file spells it.
func (c *Config) Validate() error {
	if c.Endpoint == "" {
		return errors.New("endpoint: missing (host[:port] of the S3 service)")
	}
	if strings.Contains(c.Endpoint, "/") {
		return fmt.Errorf("endpoint %q: give host[:port] without a scheme or path (secure chooses https)", c.Endpoint)
	}
	if _, _, err := net.SplitHostPort(c.Endpoint); err != nil && !strings.Contains(err.Error(), "missing port") {
		return fmt.Errorf("endpoint %q: %v", c.Endpoint, err)
	}
	if c.Bucket == "" {
		return errors.New("bucket: missing")
	}
	if c.Prefix != "" {
		if !strings.HasSuffix(c.Prefix, "/") {
			return fmt.Errorf("prefix %q: must end with /", c.Prefix)
		}
		if keyProblem(strings.TrimSuffix(c.Prefix, "/")) != "" {
			return fmt.Errorf("prefix %q: must be slash-separated names without empty or dot segments", c.Prefix)
		}
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return errors.New("accessKeyId and secretAccessKey: give both or neither")
	}
	switch c.PathStyle {
	case "":
		c.PathStyle = PathStyleAuto
	case PathStyleAuto, PathStylePath, PathStyleVirtual:
	default:
		return fmt.Errorf("pathStyle %q: use auto, path or virtual-host", c.PathStyle)
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	} else if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		return fmt.Errorf("partSize %d: must be between 5MiB and 5GiB", c.PartSize)
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	} else if c.UploadConcurrency < 1 || c.UploadConcurrency > 64 {
		return fmt.Errorf("uploadConcurrency %d: must be 1 to 64", c.UploadConcurrency)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	} else if c.RequestTimeout < 100*time.Millisecond {
		return fmt.Errorf("requestTimeout %v: must be at least 100ms", c.RequestTimeout)
	}
	return nil
}

// Store is an rdsbackup.ObjectStore on an S3 bucket. It is safe for
// concurrent use.
type Store struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	logger *slog.Logger

	mu      sync.Mutex
	pending []Upload // aborts that failed (the server was down), retried
}

var _ rdsbackup.ObjectStore = (*Store)(nil)

// New returns a store of the bucket. It does not connect: Check does.
func New(cfg Config, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	switch cfg.PathStyle {
	case PathStylePath:
		lookup = minio.BucketLookupPath
	case PathStyleVirtual:
		lookup = minio.BucketLookupDNS
	}
	transport := cfg.Transport
	if transport == nil {
		t, err := minio.DefaultTransport(cfg.Secure)
		if err != nil {
			return nil, err
		}
		// A server that takes a request and never answers fails it.
		t.ResponseHeaderTimeout = cfg.RequestTimeout
		transport = t
	}
	creds := credentials.NewStatic("", "", "", credentials.SignatureAnonymous)
	if cfg.AccessKeyID != "" {
		creds = credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, "")
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    transport,
		// A few retries ride out a blip; more would keep a dead server's
		// job waiting for minutes.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client: %w", err)
	}
	client.SetAppInfo("rdsbackup", "1")
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{cfg: cfg, client: client, core: minio.Core{Client: client}, logger: logger}, nil
}

// Bucket and Prefix say where the objects are, for messages.
func (s *Store) Bucket() string { return s.cfg.Bucket }
func (s *Store) Prefix() string { return s.cfg.Prefix }

// Check makes sure the bucket exists and the credentials may list it.
func (s *Store) Check(ctx context.Context) error {
	if _, err := s.listPage(ctx, s.cfg.Prefix, "", 1); err != nil {
		return s.wrap(err, "list bucket %s", s.cfg.Bucket)
	}
	return nil
}

// Healthy reports whether the bucket answers: one request, bounded by the
// request timeout and by ctx.
func (s *Store) Healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(s.cfg.RequestTimeout, 10*time.Second))
	defer cancel()
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.wrap(err, "bucket %s", s.cfg.Bucket)
	} else if !ok {
		return fmt.Errorf("s3 %s: bucket %q does not exist (NoSuchBucket)", s.cfg.Endpoint, s.cfg.Bucket)
	}
	s.retryAborts(ctx)
	return nil
}

// wrap adds context to a client error and classifies it: a missing object
// is ENOTFOUND; messages name the bucket's own error code, which says what
// to fix (NoSuchBucket, InvalidAccessKeyId, SignatureDoesNotMatch, …).
func (s *Store) wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return rdsbackup.Errorf(rdsbackup.ENOTFOUND, "s3: %s: not found", what)
	case "":
		return fmt.Errorf("s3 %s: %s: %w", s.cfg.Endpoint, what, err)
	case "NoSuchBucket":
		return fmt.Errorf("s3 %s: %s: bucket %q does not exist (NoSuchBucket)", s.cfg.Endpoint, what, s.cfg.Bucket)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied":
		return fmt.Errorf("s3 %s: %s: the credentials are refused: %s (%s); check storage.accessKeyId and storage.secretAccessKey", s.cfg.Endpoint, what, resp.Message, resp.Code)
	}
	return fmt.Errorf("s3 %s: %s: %s (%s)", s.cfg.Endpoint, what, resp.Message, resp.Code)
}

func (s *Store) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// ---------------------------------------------------------------- keys

func checkKey(key string) error {
	if why := keyProblem(key); why != "" {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "invalid object key %q: %s", key, why)
	}
	return nil
}

// keyProblem applies the port's key rules (the same as localfs's, less
// the file name length, which a bucket does not have).
func keyProblem(key string) string {
	switch {
	case key == "":
		return "empty"
	case len(key) > maxKeyLen:
		return fmt.Sprintf("longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key):
		return "not UTF-8"
	case strings.ContainsAny(key, "\\\x00"):
		return "contains a backslash or NUL"
	case strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "contains a control character"
	case key[0] == '/':
		return "absolute"
	}
	for _, seg := range strings.Split(key, "/") {
		switch seg {
		case "":
			return "empty segment"
		case ".", "..":
			return "dot segment"
		}
	}
	return ""
}

// object returns the bucket object of a key, checking that the two fit.
func (s *Store) object(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	obj := s.cfg.Prefix + key
	if len(obj) > maxKeyLen {
		return "", rdsbackup.Errorf(rdsbackup.EINVALID, "invalid object key %q: with the prefix longer than %d bytes", key, maxKeyLen)
	}
	return obj, nil
}

// ---------------------------------------------------------------- reads

// Open reads a range with one GET, streamed. Past the end is answered as
// the port says, with a HEAD to tell "at the end" from "beyond it".
func (s *Store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "negative offset %d", offset)
	}
	if length == 0 {
		return s.emptyAt(ctx, key, offset)
	}
	var opts minio.GetObjectOptions
	switch {
	case length < 0 && offset > 0:
		err = opts.SetRange(offset, 0)
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	}
	if err != nil {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "range %d+%d: %v", offset, length, err)
	}
	// The timeout covers the request, not the reading of the body, which
	// takes as long as the caller reads.
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(s.cfg.RequestTimeout, cancel)
	body, _, _, err := s.core.GetObject(rctx, s.cfg.Bucket, obj, opts)
	stopped := timer.Stop()
	if err != nil {
		cancel()
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			return s.emptyAt(ctx, key, offset)
		}
		if !stopped {
			return nil, fmt.Errorf("s3 %s: get %s: no answer within %v", s.cfg.Endpoint, key, s.cfg.RequestTimeout)
		}
		return nil, s.wrap(err, "get %s", key)
	}
	return &reader{ReadCloser: body, cancel: cancel}, nil
}

// emptyAt answers a read of nothing at offset: empty when offset is within
// the object or at its end, EINVALID beyond it.
func (s *Store) emptyAt(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, rdsbackup.Errorf(rdsbackup.EINVALID, "offset %d is beyond the end of object %q (%d bytes)", offset, key, info.Size)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

type reader struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *reader) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}

func (s *Store) Stat(ctx context.Context, key string) (rdsbackup.ObjectInfo, error) {
	obj, err := s.object(key)
	if err != nil {
		return rdsbackup.ObjectInfo{}, err
	}
	ctx, cancel := s.requestCtx(ctx)
	defer cancel()
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return rdsbackup.ObjectInfo{}, s.wrap(err, "stat %s", key)
	}
	return rdsbackup.ObjectInfo{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// Delete removes the object; S3 answers a missing one with success.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	ctx, cancel := s.requestCtx(ctx)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, obj, minio.RemoveObjectOptions{}); err != nil {
		return s.wrap(err, "delete %s", key)
	}
	return nil
}

// List fetches a page of 1,000 keys at a time as the loop asks for them.
// Bucket objects under the prefix whose keys the port refuses (someone
// else's files) are skipped, as localfs skips stray files.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[rdsbackup.ObjectInfo, error] {
	// A prefix no key can have is EINVALID, as on localfs (some servers
	// refuse to list it at all).
	if i := strings.LastIndexByte(prefix, '/'); strings.ContainsAny(prefix, "\\\x00") || (i >= 0 && checkKey(prefix[:i]) != nil) {
		return rdsbackup.ListError(rdsbackup.Errorf(rdsbackup.EINVALID, "invalid object key prefix %q", prefix))
	}
	return func(yield func(rdsbackup.ObjectInfo, error) bool) {
		token := ""
		for {
			if err := ctx.Err(); err != nil {
				yield(rdsbackup.ObjectInfo{}, err)
				return
			}
			page, err := s.listPage(ctx, s.cfg.Prefix+prefix, token, listPage)
			if err != nil {
				yield(rdsbackup.ObjectInfo{}, s.wrap(err, "list %q", prefix))
				return
			}
			for _, o := range page.Contents {
				key, ok := strings.CutPrefix(o.Key, s.cfg.Prefix)
				if !ok || checkKey(key) != nil {
					continue
				}
				// Stat has the Last-Modified header's seconds; a list has
				// milliseconds. One object, one time.
				if !yield(rdsbackup.ObjectInfo{Key: key, Size: o.Size, ModTime: o.LastModified.Truncate(time.Second)}, nil) {
					return
				}
			}
			if !page.IsTruncated || page.NextContinuationToken == "" {
				return
			}
			token = page.NextContinuationToken
		}
	}
}

// listPage runs one ListObjectsV2 under the request timeout; Core's call
// takes no context, so it runs in a goroutine that a timeout abandons (the
// transport's header timeout ends it).
func (s *Store) listPage(ctx context.Context, prefix, token string, max int) (minio.ListBucketV2Result, error) {
	type result struct {
		page minio.ListBucketV2Result
		err  error
	}
	done := make(chan result, 1)
	go func() {
		page, err := s.core.ListObjectsV2(s.cfg.Bucket, prefix, "", token, "", max)
		done <- result{page, err}
	}()
	timer := time.NewTimer(s.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.page, r.err
	case <-ctx.Done():
		return minio.ListBucketV2Result{}, ctx.Err()
	case <-timer.C:
		return minio.ListBucketV2Result{}, fmt.Errorf("no answer within %v", s.cfg.RequestTimeout)
	}
}

// ---------------------------------------------------------------- uploads

// Upload is an incomplete multipart upload in the bucket.
type Upload struct {
	Key       string // without the store's prefix
	UploadID  string
	Initiated time.Time
}

// Uploads yields the incomplete multipart uploads under the store's
// prefix: what aborted or killed writers left. The bucket's uploads are
// listed whole and filtered here, because MinIO lists an upload under a
// prefix only when the prefix is the whole key.
func (s *Store) Uploads(ctx context.Context) iter.Seq2[Upload, error] {
	return func(yield func(Upload, error) bool) {
		keyMarker, idMarker := "", ""
		for {
			rctx, cancel := s.requestCtx(ctx)
			res, err := s.core.ListMultipartUploads(rctx, s.cfg.Bucket, "", keyMarker, idMarker, "", listPage)
			cancel()
			if err != nil {
				yield(Upload{}, s.wrap(err, "list incomplete uploads"))
				return
			}
			for _, u := range res.Uploads {
				key, ok := strings.CutPrefix(u.Key, s.cfg.Prefix)
				if !ok {
					continue
				}
				if !yield(Upload{Key: key, UploadID: u.UploadID, Initiated: u.Initiated}, nil) {
					return
				}
			}
			if !res.IsTruncated {
				return
			}
			keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
		}
	}
}

// CleanUploads aborts every incomplete multipart upload under the store's
// prefix, and returns how many. Like localfs's CleanTemp, call it when no
// write of this service is in progress, such as at start: the uploads of a
// killed process hold parts (and cost) until they are aborted.
func (s *Store) CleanUploads(ctx context.Context) (int, error) {
	var ups []Upload
	for u, err := range s.Uploads(ctx) {
		if err != nil {
			return 0, err
		}
		ups = append(ups, u)
	}
	for i, u := range ups {
		if err := s.abortUpload(ctx, s.cfg.Prefix+u.Key, u.UploadID); err != nil {
			return i, err
		}
	}
	return len(ups), nil
}

// AbortUploadsUnder aborts the incomplete multipart uploads whose key
// starts with prefix, and returns how many: what a dead node's writer left
// of one object, aborted by the node that settles its job while other
// nodes' uploads go on.
func (s *Store) AbortUploadsUnder(ctx context.Context, prefix string) (int, error) {
	var ups []Upload
	for u, err := range s.Uploads(ctx) {
		if err != nil {
			return 0, err
		}
		if strings.HasPrefix(u.Key, prefix) {
			ups = append(ups, u)
		}
	}
	for i, u := range ups {
		if err := s.abortUpload(ctx, s.cfg.Prefix+u.Key, u.UploadID); err != nil {
			return i, err
		}
	}
	return len(ups), nil
}

// retryAborts retries the aborts that failed, as soon as the bucket
// answers again: on the next write and the next health check.
func (s *Store) retryAborts(ctx context.Context) {
	s.mu.Lock()
	todo := s.pending
	s.pending = nil
	s.mu.Unlock()
	for i, u := range todo {
		if err := s.abortUpload(ctx, s.cfg.Prefix+u.Key, u.UploadID); err != nil {
			s.mu.Lock()
			s.pending = append(s.pending, todo[i:]...)
			s.mu.Unlock()
			return
		}
		s.logger.Info("aborted an upload whose abort had failed", "key", u.Key)
	}
}

func (s *Store) abortUpload(ctx context.Context, obj, id string) error {
	ctx, cancel := s.requestCtx(ctx)
	defer cancel()
	err := s.core.AbortMultipartUpload(ctx, s.cfg.Bucket, obj, id)
	if err != nil && minio.ToErrorResponse(err).Code != "NoSuchUpload" {
		return s.wrap(err, "abort upload of %s", strings.TrimPrefix(obj, s.cfg.Prefix))
	}
	return nil
}

// PresignGet returns a URL that GETs the object without credentials until
// ttl has passed (at most 7 days, the SigV4 limit). It needs no request.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (string, error) {
	obj, err := s.object(key)
	if err != nil {
		return "", err
	}
	params := url.Values{}
	if filename != "" {
		params.Set("response-content-disposition", `attachment; filename="`+filename+`"`)
	}
	u, err := s.client.PresignedGetObject(ctx, s.cfg.Bucket, obj, ttl, params)
	if err != nil {
		return "", s.wrap(err, "presign %s", key)
	}
	return u.String(), nil
}

// partSizeFor returns the part size for an object of about hint bytes: the
// configured one, or larger when 10,000 of those would not hold the hint
// with a quarter to spare. Rounded up to a MiB.
func (s *Store) partSizeFor(hint int64) int64 {
	size := s.cfg.PartSize
	if hint > 0 {
		need := (hint + hint/4) / int64(maxParts)
		need = (need + 1<<20 - 1) &^ (1<<20 - 1)
		size = max(size, need)
	}
	return min(size, MaxPartSize)
}

// Create starts an object. Nothing is sent until a part is full or Commit.
func (s *Store) Create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	hint := rdsbackup.SizeHint(ctx)
	uctx, cancel := context.WithCancel(ctx)
	w := &writer{
		s: s, ctx: uctx, cancel: cancel, key: key, obj: obj,
		hint: hint, partSize: s.partSizeFor(hint),
		free: make(chan []byte, s.cfg.UploadConcurrency),
		crc:  crc64.New(crcTable),
	}
	return w, nil
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// writer cuts the stream into parts. The writing goroutine fills buf;
// full parts go to goroutines that upload them, at most
// UploadConcurrency-1 at a time besides the one being filled, since
// buffers are recycled through free and no more are ever made.
type writer struct {
	s        *Store
	ctx      context.Context // cancelled by Abort and by the first failure
	cancel   context.CancelFunc
	key, obj string
	hint     int64
	partSize int64

	buf    []byte
	made   int         // buffers allocated, at most UploadConcurrency
	free   chan []byte // buffers whose upload ended
	parts  int         // parts handed to uploads
	n      int64       // bytes written
	crc    hash.Hash64 // of the bytes written, to check against the server's
	upload string      // multipart upload id, once the first part is full
	wg     sync.WaitGroup

	mu        sync.Mutex
	completed []minio.CompletePart
	failed    error // first failure of a part's upload

	err  error // sticky failure seen by the writing goroutine
	done bool
}

var errDone = errors.New("s3: object writer already committed or aborted")

func (w *writer) fail(err error) error {
	if w.err == nil {
		w.err = err
		w.cancel()
	}
	return w.err
}

func (w *writer) uploadFailure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errDone
	} else if w.err != nil {
		return 0, w.err
	}
	if err := w.uploadFailure(); err != nil {
		return 0, w.fail(err)
	}
	if err := w.ctx.Err(); err != nil {
		return 0, w.fail(fmt.Errorf("write %s: %w", w.key, err))
	}
	written := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.partSize {
			if err := w.flush(); err != nil {
				return written, w.fail(err)
			}
		}
		room := int(w.partSize) - len(w.buf)
		chunk := p[:min(len(p), room)]
		w.grow(len(chunk))
		w.buf = append(w.buf, chunk...)
		w.crc.Write(chunk)
		w.n += int64(len(chunk))
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// grow makes room for n more bytes without append's over-allocation, so
// that a buffer never holds more than a part. The first buffer starts
// small: most objects besides sets (manifests) are a few KiB.
func (w *writer) grow(n int) {
	need := len(w.buf) + n
	if need <= cap(w.buf) {
		return
	}
	size := max(2*cap(w.buf), need, 64<<10)
	if size > 1<<20 {
		// Past a MiB it is a set: the whole part at once, rather than
		// doublings that would each be garbage.
		size = int(w.partSize)
	}
	size = min(size, int(w.partSize))
	buf := make([]byte, len(w.buf), size)
	copy(buf, w.buf)
	w.buf = buf
}

// flush hands the full buffer to an upload and takes a free one,
// waiting when all are busy.
func (w *writer) flush() error {
	if w.parts == maxParts {
		return fmt.Errorf("s3: object %s is larger than %d parts of %d bytes (the size estimate was %d bytes); raise storage.partSize", w.key, maxParts, w.partSize, w.hint)
	}
	if w.upload == "" {
		if w.made == 0 {
			w.made = 1 // the first, small buffer counts as one
		}
		ctx, cancel := w.s.requestCtx(w.ctx)
		id, err := w.s.core.NewMultipartUpload(ctx, w.s.cfg.Bucket, w.obj, minio.PutObjectOptions{ContentType: "application/octet-stream"})
		cancel()
		if err != nil {
			return w.s.wrap(err, "start upload of %s", w.key)
		}
		w.upload = id
	}
	w.parts++
	num, buf := w.parts, w.buf
	w.buf = nil
	w.wg.Add(1)
	go w.uploadPart(num, buf)

	// The next buffer: a new one while fewer than UploadConcurrency exist,
	// else the first whose upload ends.
	if w.made < w.s.cfg.UploadConcurrency {
		w.made++
		w.buf = make([]byte, 0, w.partSize)
		return nil
	}
	select {
	case b := <-w.free:
		w.buf = b[:0]
	case <-w.ctx.Done():
		if err := w.uploadFailure(); err != nil {
			return err
		}
		return fmt.Errorf("write %s: %w", w.key, w.ctx.Err())
	}
	if err := w.uploadFailure(); err != nil {
		return err
	}
	return nil
}

func (w *writer) uploadPart(num int, buf []byte) {
	defer w.wg.Done()
	ctx, cancel := w.s.requestCtx(w.ctx)
	part, err := w.s.core.PutObjectPart(ctx, w.s.cfg.Bucket, w.obj, w.upload, num, bytes.NewReader(buf), int64(len(buf)), minio.PutObjectPartOptions{})
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	w.mu.Lock()
	if err != nil && w.failed == nil {
		if timedOut {
			w.failed = fmt.Errorf("s3 %s: upload part %d of %s: no answer within %v (storage.requestTimeout)", w.s.cfg.Endpoint, num, w.key, w.s.cfg.RequestTimeout)
		} else if w.ctx.Err() != nil {
			w.failed = fmt.Errorf("upload part %d of %s: %w", num, w.key, w.ctx.Err())
		} else {
			w.failed = w.s.wrap(err, "upload part %d of %s", num, w.key)
		}
		w.cancel()
	} else if err == nil {
		w.completed = append(w.completed, minio.CompletePart{PartNumber: num, ETag: part.ETag})
	}
	w.mu.Unlock()
	// Buffers of a partSize that grew are still the right size: partSize
	// is fixed per writer.
	w.free <- buf
}

func (w *writer) Commit() error {
	if w.done {
		return errDone
	}
	err := w.commit()
	if err != nil {
		w.abort()
	}
	w.done = true
	w.cancel()
	if err == nil {
		// The bucket answers: a good time for aborts that failed before.
		w.s.retryAborts(context.WithoutCancel(w.ctx))
	}
	return err
}

func (w *writer) commit() error {
	if w.err != nil {
		return w.err
	}
	if err := w.ctx.Err(); err != nil {
		return fmt.Errorf("commit %s: %w", w.key, err)
	}
	if w.upload == "" {
		// One part or less: a single PUT, atomic like a completed upload.
		ctx, cancel := w.s.requestCtx(w.ctx)
		defer cancel()
		_, err := w.s.core.PutObject(ctx, w.s.cfg.Bucket, w.obj, bytes.NewReader(w.buf), int64(len(w.buf)), "", "",
			minio.PutObjectOptions{ContentType: "application/octet-stream"})
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("s3 %s: put %s: no answer within %v (storage.requestTimeout)", w.s.cfg.Endpoint, w.key, w.s.cfg.RequestTimeout)
			}
			return w.s.wrap(err, "put %s", w.key)
		}
		w.buf = nil
		return w.checkServerCRC()
	}
	if len(w.buf) > 0 {
		if w.parts == maxParts {
			return fmt.Errorf("s3: object %s is larger than %d parts of %d bytes (the size estimate was %d bytes); raise storage.partSize", w.key, maxParts, w.partSize, w.hint)
		}
		w.parts++
		w.wg.Add(1)
		go w.uploadPart(w.parts, w.buf)
		w.buf = nil
	}
	w.wg.Wait()
	if err := w.uploadFailure(); err != nil {
		return err
	}
	w.mu.Lock()
	parts := slices.Clone(w.completed)
	w.mu.Unlock()
	if len(parts) != w.parts {
		return fmt.Errorf("s3: upload of %s: %d of %d parts uploaded", w.key, len(parts), w.parts)
	}
	slices.SortFunc(parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	ctx, cancel := w.s.requestCtx(w.ctx)
	defer cancel()
	if _, err := w.s.core.CompleteMultipartUpload(ctx, w.s.cfg.Bucket, w.obj, w.upload, parts, minio.PutObjectOptions{}); err != nil {
		return w.s.wrap(err, "complete upload of %s", w.key)
	}
	w.upload = ""
	return w.checkServerCRC()
}

// checkServerCRC checks the stored object's size and compares the
// CRC64-ECMA a server reports for it (OSS: x-oss-hash-crc64ecma) with
// that of the bytes written. A one-byte GET brings every header of the
// object, which a HEAD through minio-go filters out.
func (w *writer) checkServerCRC() error {
	ctx, cancel := w.s.requestCtx(w.ctx)
	defer cancel()
	var opts minio.GetObjectOptions
	if w.n > 0 {
		opts.SetRange(0, 0)
	}
	body, info, h, err := w.s.core.GetObject(ctx, w.s.cfg.Bucket, w.obj, opts)
	if err != nil {
		return w.s.wrap(err, "read %s back after upload", w.key)
	}
	body.Close()
	size := info.Size
	if cr := h.Get("Content-Range"); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			size, _ = strconv.ParseInt(cr[i+1:], 10, 64)
		}
	}
	if size != w.n {
		return fmt.Errorf("s3: %s holds %d bytes after upload, %d were written", w.key, size, w.n)
	}
	got := h.Get("X-Oss-Hash-Crc64ecma")
	if got == "" {
		return nil
	}
	if want := strconv.FormatUint(w.crc.Sum64(), 10); got != want {
		// The bytes stored are not the bytes sent: do not leave them.
		w.s.client.RemoveObject(context.WithoutCancel(ctx), w.s.cfg.Bucket, w.obj, minio.RemoveObjectOptions{})
		return fmt.Errorf("s3: %s stored with CRC64 %s, %s was sent", w.key, got, want)
	}
	return nil
}

// Abort discards the object. It returns nil after Commit or Abort.
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.abort()
}

func (w *writer) abort() error {
	w.cancel()
	w.wg.Wait()
	w.buf = nil
	if w.upload == "" {
		return nil
	}
	// The writer's context is done; the abort must still go out.
	err := w.s.abortUpload(context.WithoutCancel(w.ctx), w.obj, w.upload)
	if err != nil {
		w.s.logger.Warn("cannot abort an upload; retrying when the bucket answers again", "key", w.key, "err", err)
		w.s.mu.Lock()
		w.s.pending = append(w.s.pending, Upload{Key: w.key, UploadID: w.upload})
		w.s.mu.Unlock()
		return err
	}
	w.upload = ""
	return nil
}

package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// Links signs download links: {base}/download/{BackupId}[/{part}] with an
// expiry and an HMAC-SHA256 over the path and the expiry, under a key only
// the service knows. A link is a bearer credential until it expires.
type Links struct {
	Key          []byte
	PublicBase   string // e.g. https://backup.example.com
	IntranetBase string
	TTL          time.Duration
	Now          func() time.Time

	macs sync.Pool // *linkMAC, reused with Reset: a page signs up to 300 links
	bufs sync.Pool // *[]byte for building links
}

var _ LinkSigner = (*Links)(nil)

// Expiry is now + TTL in unix seconds.
func (l *Links) Expiry() int64 { return l.Now().Add(l.TTL).Unix() }

// Link signs the path once for both bases (the MAC covers only path and
// expiry) and cuts both links from one string: a page of DescribeBackups
// makes up to 300 of them.
func (l *Links) Link(id int64, part int, expires int64) (string, string) {
	bp, _ := l.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := append((*bp)[:0], strings.TrimRight(l.PublicBase, "/")...)
	pathStart := len(b)
	b = appendPath(b, id, part)
	pathEnd := len(b)
	b = append(b, "?Expires="...)
	b = strconv.AppendInt(b, expires, 10)
	b = append(b, "&Signature="...)
	b = l.appendMAC(b, b[pathStart:pathEnd], expires)
	pubEnd := len(b)
	b = append(b, strings.TrimRight(l.IntranetBase, "/")...)
	b = append(b, b[pathStart:pubEnd]...)
	both := string(b)
	*bp = b
	l.bufs.Put(bp)
	return both[:pubEnd], both[pubEnd:]
}

func appendPath(b []byte, id int64, part int) []byte {
	b = append(b, "/download/"...)
	b = strconv.AppendInt(b, id, 10)
	if part >= 0 {
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(part), 10)
	}
	return b
}

// linkMAC is a keyed HMAC with scratch space, pooled so that signing a
// link allocates nothing.
type linkMAC struct {
	h   hash.Hash
	msg []byte
	sum []byte
}

// appendMAC appends the base64url HMAC-SHA256 of "GET\n{path}\n{expires}".
func (l *Links) appendMAC(b, path []byte, expires int64) []byte {
	m, _ := l.macs.Get().(*linkMAC)
	if m == nil {
		m = &linkMAC{h: hmac.New(sha256.New, l.Key), msg: make([]byte, 0, 160), sum: make([]byte, 0, sha256.Size)}
	} else {
		m.h.Reset()
	}
	m.msg = append(m.msg[:0], "GET\n"...)
	m.msg = append(m.msg, path...)
	m.msg = append(m.msg, '\n')
	m.msg = strconv.AppendInt(m.msg, expires, 10)
	m.h.Write(m.msg)
	m.sum = m.h.Sum(m.sum[:0])
	b = base64.RawURLEncoding.AppendEncode(b, m.sum)
	l.macs.Put(m)
	return b
}

// verify checks a request's signature and expiry.
func (l *Links) verify(r *http.Request) error {
	q := r.URL.Query()
	sig, exp := q.Get("Signature"), q.Get("Expires")
	if sig == "" || exp == "" {
		return fmt.Errorf("the link is not signed: Expires and Signature are required")
	}
	expires, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return fmt.Errorf("the link's Expires is not a number")
	}
	if !hmac.Equal([]byte(sig), l.appendMAC(nil, []byte(r.URL.Path), expires)) {
		return fmt.Errorf("the link's signature does not match: it was altered or made by another service")
	}
	if l.Now().Unix() > expires {
		return fmt.Errorf("the link expired at %s; ask DescribeBackups for a fresh one", time.Unix(expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// LogLink signs the links of a stored log file:
// {base}/download/logs/{instance}/{name}.
func (l *Links) LogLink(instanceID, name string, expires int64) (string, string) {
	// The MAC covers the path as the server reads it (decoded).
	raw := "/download/logs/" + instanceID + "/" + name
	p := "/download/logs/" + url.PathEscape(instanceID) + "/" + url.PathEscape(name)
	q := "?Expires=" + strconv.FormatInt(expires, 10) + "&Signature=" + string(l.appendMAC(nil, []byte(raw), expires))
	return strings.TrimRight(l.PublicBase, "/") + p + q, strings.TrimRight(l.IntranetBase, "/") + p + q
}

// Downloads serves signed download links from the object store.
type Downloads struct {
	Links   *Links
	Backups rdsbackup.BackupSetService
	Store   rdsbackup.ObjectStore
	// LogFiles, when set, serves log file links (/download/logs/…).
	LogFiles interface {
		FindLogFiles(ctx context.Context, f rdsbackup.LogFileFilter) ([]*rdsbackup.LogFile, int, error)
	}
}

// downloadError answers an error with its code's status from the one table
// (rpc.HTTPStatus), as the API does.
func downloadError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(rpc.HTTPStatus(code))
	json.NewEncoder(w).Encode(map[string]string{"Code": code, "Message": msg})
}

// ServeHTTP serves GET/HEAD /download/{id}[/{part}], with single-range
// support, streaming from storage.
func (d *Downloads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		downloadError(w, rdsbackup.EMethodNotAllowed, "use GET or HEAD")
		return
	}
	if err := d.Links.verify(r); err != nil {
		downloadError(w, rdsbackup.EDownloadDenied, err.Error())
		return
	}
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/download/"), "/")
	if segs[0] == "logs" {
		d.serveLog(w, r, segs[1:])
		return
	}
	id, err := strconv.ParseInt(segs[0], 10, 64)
	if err != nil || len(segs) > 2 {
		downloadError(w, rdsbackup.ENoSuchKey, "no such download")
		return
	}
	set, err := d.Backups.FindBackupSet(r.Context(), id)
	if err != nil || !set.Available || set.ObjectKey == "" {
		downloadError(w, rdsbackup.ENoSuchKey, "the backup set is not available for download")
		return
	}
	// The whole object, or one part of it.
	offset, length, checksum := int64(0), set.Size, set.Checksum
	name := fmt.Sprintf("%s_%d.zst", set.InstanceID, set.ID)
	if len(segs) == 2 {
		i, err := strconv.Atoi(segs[1])
		if err != nil || i < 0 || i >= len(set.Artifacts) {
			downloadError(w, rdsbackup.ENoSuchKey, "no such part of the backup set")
			return
		}
		a := set.Artifacts[i]
		offset, length, checksum = a.Offset, a.Length, a.Checksum
		name = fmt.Sprintf("%s_%d_%s.zst", set.InstanceID, set.ID, safeFileName(a.Database))
	}

	start, n, partial, ok := parseRange(r.Header.Get("Range"), length)
	if !ok {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", length))
		downloadError(w, rdsbackup.EInvalidRange, "the requested range is not satisfiable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/zstd")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Accept-Ranges", "bytes")
	// The CRC64 of the whole object or part, as OSS reports it, also on a
	// range response, so a client can check what it assembled.
	h.Set("x-oss-hash-crc64ecma", checksum)
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, length))
		status = http.StatusPartialContent
	}
	if r.Method == http.MethodHead || n == 0 {
		w.WriteHeader(status)
		return
	}
	rc, err := d.Store.Open(r.Context(), set.ObjectKey, offset+start, n)
	if code := rdsbackup.ErrorCode(err); code == rdsbackup.EEncryptionKeyUnavailable || code == rdsbackup.EObjectCorrupt {
		// Retrying would not help: say what is wrong (the key id, not the key).
		downloadError(w, code, rdsbackup.ErrorMessage(err))
		return
	} else if err != nil {
		downloadError(w, rdsbackup.EServiceUnavailable, "the backup object cannot be read now")
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	// Errors past this point can only cut the body short; the client sees
	// a short Content-Length.
	io.Copy(w, rc)
}

// serveLog serves a stored log file: /download/logs/{instance}/{name}, the
// object DescribeBinlogFiles' FileSize and Checksum describe.
func (d *Downloads) serveLog(w http.ResponseWriter, r *http.Request, segs []string) {
	if d.LogFiles == nil || len(segs) != 2 {
		downloadError(w, rdsbackup.ENoSuchKey, "no such download")
		return
	}
	files, _, err := d.LogFiles.FindLogFiles(r.Context(), rdsbackup.LogFileFilter{InstanceID: segs[0], Name: segs[1], Limit: 1})
	if err != nil || len(files) == 0 {
		downloadError(w, rdsbackup.ENoSuchKey, "the log file is not available for download")
		return
	}
	f := files[0]
	start, n, partial, ok := parseRange(r.Header.Get("Range"), f.Size)
	if !ok {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", f.Size))
		downloadError(w, rdsbackup.EInvalidRange, "the requested range is not satisfiable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/zstd")
	h.Set("Content-Disposition", `attachment; filename="`+safeFileName(f.Name)+`.zst"`)
	h.Set("Accept-Ranges", "bytes")
	h.Set("x-oss-hash-crc64ecma", f.Checksum)
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	status := http.StatusOK
	if partial {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, f.Size))
		status = http.StatusPartialContent
	}
	if r.Method == http.MethodHead || n == 0 {
		w.WriteHeader(status)
		return
	}
	rc, err := d.Store.Open(r.Context(), f.ObjectKey, start, n)
	if err != nil {
		downloadError(w, rdsbackup.EServiceUnavailable, "the log object cannot be read now")
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	io.Copy(w, rc)
}

// parseRange understands one "bytes=a-b", "bytes=a-" or "bytes=-n" range.
// Several ranges are answered with the whole content (RFC 9110 allows it).
func parseRange(h string, size int64) (start, n int64, partial, ok bool) {
	if h == "" || !strings.HasPrefix(h, "bytes=") || strings.Contains(h, ",") {
		return 0, size, false, true
	}
	spec := strings.TrimSpace(strings.TrimPrefix(h, "bytes="))
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, size, false, true
	}
	switch {
	case a == "":
		suffix, err := strconv.ParseInt(b, 10, 64)
		if err != nil || suffix <= 0 {
			return 0, 0, false, false
		}
		suffix = min(suffix, size)
		return size - suffix, suffix, true, size > 0
	default:
		first, err := strconv.ParseInt(a, 10, 64)
		if err != nil || first < 0 || first >= size {
			return 0, 0, false, false
		}
		last := size - 1
		if b != "" {
			if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
				return 0, 0, false, false
			}
			last = min(last, size-1)
		}
		return first, last - first + 1, true, true
	}
}

func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || strings.ContainsRune(`"/\`, r) {
			return '_'
		}
		return r
	}, s)
}

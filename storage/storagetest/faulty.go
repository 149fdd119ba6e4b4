package storagetest

import (
	"context"
	"errors"
	"io"
	"iter"
	"strings"
	"sync"

	"github.com/rdsbackup/rdsbackup"
)

// ErrInjected is what a Fault without its own Err returns.
var ErrInjected = errors.New("storagetest: injected fault")

// Op is an ObjectStore operation a Fault can hit.
type Op int

const (
	OpCreate Op = iota + 1
	OpWrite     // a Write that reaches Fault.After bytes of the object
	OpCommit
	OpOpen
	OpRead // a Read that reaches Fault.After bytes of the opened range
	OpStat
	OpDelete
	OpList
)

var opNames = [...]string{"", "Create", "Write", "Commit", "Open", "Read", "Stat", "Delete", "List"}

func (op Op) String() string {
	if op > 0 && int(op) < len(opNames) {
		return opNames[op]
	}
	return "Op(?)"
}

// Fault describes a failure to inject.
type Fault struct {
	Op Op
	// Prefix limits the fault to keys (for OpList, list prefixes) that
	// start with it; "" matches all.
	Prefix string
	// After is, for OpWrite and OpRead, how many bytes pass before the
	// failure, like a connection that drops mid-stream; for OpList, how
	// many objects are listed before it, like a failure fetching a later
	// page.
	After int64
	// Times is how often the fault fires before it is removed; 0 is always.
	Times int
	// Err is what the operation returns; nil means ErrInjected.
	Err error
}

// Faulty wraps an ObjectStore and fails its operations on demand, to test
// what callers do when storage fails. Faults are added and cleared at any
// time, from any goroutine. Whatever fails leaves no object behind: a
// failed Write makes the writer's Commit abort, and a failed Commit aborts.
//
//	f := storagetest.NewFaulty(store)
//	f.Inject(storagetest.Fault{Op: storagetest.OpWrite, After: 1 << 20})
type Faulty struct {
	rdsbackup.ObjectStore

	mu     sync.Mutex
	faults []Fault
}

var _ rdsbackup.ObjectStore = (*Faulty)(nil)

// NewFaulty returns a Faulty wrapping s with no faults.
func NewFaulty(s rdsbackup.ObjectStore) *Faulty { return &Faulty{ObjectStore: s} }

// Inject adds faults. When several match an operation, the first added wins.
func (f *Faulty) Inject(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, faults...)
}

// Clear removes all faults.
func (f *Faulty) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// hit returns the error of the first fault matching op on key, counting it
// as fired. For OpWrite and OpRead, pos is where a transfer of n bytes
// starts and limit is how many of them to pass: a write passes the bytes
// before the fault point and fails; a read stops short at the fault point
// and fails on the next call, as a dropped connection reads.
func (f *Faulty) hit(op Op, key string, pos, n int64) (limit int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.faults {
		flt := &f.faults[i]
		if flt.Op != op || !strings.HasPrefix(key, flt.Prefix) {
			continue
		}
		if op == OpWrite || op == OpRead || op == OpList {
			if pos+n <= flt.After {
				continue
			}
			limit = max(flt.After-pos, 0)
			if op == OpRead && limit > 0 {
				return limit, nil
			}
		}
		err = flt.Err
		if err == nil {
			err = ErrInjected
		}
		if flt.Times > 0 {
			if flt.Times--; flt.Times == 0 {
				f.faults = append(f.faults[:i], f.faults[i+1:]...)
			}
		}
		return limit, err
	}
	return n, nil
}

func (f *Faulty) Create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	if _, err := f.hit(OpCreate, key, 0, 0); err != nil {
		return nil, err
	}
	w, err := f.ObjectStore.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	return &faultyWriter{ObjectWriter: w, f: f, key: key}, nil
}

func (f *Faulty) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if _, err := f.hit(OpOpen, key, 0, 0); err != nil {
		return nil, err
	}
	r, err := f.ObjectStore.Open(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	return &faultyReader{ReadCloser: r, f: f, key: key}, nil
}

func (f *Faulty) Stat(ctx context.Context, key string) (rdsbackup.ObjectInfo, error) {
	if _, err := f.hit(OpStat, key, 0, 0); err != nil {
		return rdsbackup.ObjectInfo{}, err
	}
	return f.ObjectStore.Stat(ctx, key)
}

func (f *Faulty) Delete(ctx context.Context, key string) error {
	if _, err := f.hit(OpDelete, key, 0, 0); err != nil {
		return err
	}
	return f.ObjectStore.Delete(ctx, key)
}

func (f *Faulty) List(ctx context.Context, prefix string) iter.Seq2[rdsbackup.ObjectInfo, error] {
	return func(yield func(rdsbackup.ObjectInfo, error) bool) {
		// The object at position n is listed if the fault lets n+1 pass.
		if _, err := f.hit(OpList, prefix, 0, 1); err != nil {
			yield(rdsbackup.ObjectInfo{}, err)
			return
		}
		var n int64
		for info, err := range f.ObjectStore.List(ctx, prefix) {
			if err == nil && n > 0 {
				if _, ferr := f.hit(OpList, prefix, n, 1); ferr != nil {
					yield(rdsbackup.ObjectInfo{}, ferr)
					return
				}
			}
			n++
			if !yield(info, err) || err != nil {
				return
			}
		}
	}
}

type faultyWriter struct {
	rdsbackup.ObjectWriter
	f   *Faulty
	key string
	n   int64
	err error // sticky, as a broken upload stream is
}

func (w *faultyWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	limit, err := w.f.hit(OpWrite, w.key, w.n, int64(len(p)))
	n, werr := w.ObjectWriter.Write(p[:limit])
	w.n += int64(n)
	if err != nil {
		w.err = err
		return n, err
	}
	return n, werr
}

func (w *faultyWriter) Commit() error {
	err := w.err
	if err == nil {
		_, err = w.f.hit(OpCommit, w.key, 0, 0)
	}
	if err != nil {
		w.ObjectWriter.Abort()
		return err
	}
	return w.ObjectWriter.Commit()
}

type faultyReader struct {
	io.ReadCloser
	f   *Faulty
	key string
	n   int64
	err error
}

func (r *faultyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	limit, err := r.f.hit(OpRead, r.key, r.n, int64(len(p)))
	if err != nil {
		r.err = err
		return 0, err
	}
	n, err := r.ReadCloser.Read(p[:limit])
	r.n += int64(n)
	return n, err
}

package catalogtest

import (
	"context"
	"errors"
	"sync"

	"github.com/rdsbackup/rdsbackup"
)

// ErrInjected is what a Fault without its own Err returns.
var ErrInjected = errors.New("catalogtest: injected fault")

// Op is a catalog write a Fault can hit.
type Op int

const (
	OpCreateJob Op = iota + 1
	OpUpdateJob
	OpCreateBackupSet
	OpUpdateBackupSet
	OpDeleteBackupSet
)

// Fault describes a failure to inject.
type Fault struct {
	Op Op
	// Times is how often the fault fires before it is removed; 0 is always.
	Times int
	// Err is what the write returns; nil means ErrInjected.
	Err error
}

// DiskFull is the error a catalog reports when its disk is full, for
// Fault.Err.
var DiskFull = rdsbackup.NoSpace("catalog", errors.New("catalogtest: injected disk full"))

// Faulty wraps a catalog and fails its writes on demand, to test what
// callers do when the catalog cannot take a write (its disk is full, it is
// unreachable). Faults are added and cleared at any time, from any
// goroutine; a failed write changes nothing.
//
//	f := catalogtest.NewFaulty(db)
//	f.Inject(catalogtest.Fault{Op: catalogtest.OpUpdateJob, Err: catalogtest.DiskFull})
type Faulty struct {
	Catalog

	mu     sync.Mutex
	faults []Fault
	calls  map[Op]int
	failed map[Op]int
}

// NewFaulty returns a Faulty wrapping c with no faults.
func NewFaulty(c Catalog) *Faulty {
	return &Faulty{Catalog: c, calls: map[Op]int{}, failed: map[Op]int{}}
}

// Inject adds faults. When several match a write, the first added wins.
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

// Calls returns how many times op was called, and how many of those failed
// by a fault.
func (f *Faulty) Calls(op Op) (calls, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op], f.failed[op]
}

func (f *Faulty) hit(op Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	for i := range f.faults {
		flt := &f.faults[i]
		if flt.Op != op {
			continue
		}
		err := flt.Err
		if err == nil {
			err = ErrInjected
		}
		if flt.Times > 0 {
			if flt.Times--; flt.Times == 0 {
				f.faults = append(f.faults[:i], f.faults[i+1:]...)
			}
		}
		f.failed[op]++
		return err
	}
	return nil
}

func (f *Faulty) CreateJob(ctx context.Context, job *rdsbackup.Job) error {
	if err := f.hit(OpCreateJob); err != nil {
		return err
	}
	return f.Catalog.CreateJob(ctx, job)
}

func (f *Faulty) UpdateJob(ctx context.Context, job *rdsbackup.Job) error {
	if err := f.hit(OpUpdateJob); err != nil {
		return err
	}
	return f.Catalog.UpdateJob(ctx, job)
}

func (f *Faulty) CreateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	if err := f.hit(OpCreateBackupSet); err != nil {
		return err
	}
	return f.Catalog.CreateBackupSet(ctx, set)
}

func (f *Faulty) UpdateBackupSet(ctx context.Context, set *rdsbackup.BackupSet) error {
	if err := f.hit(OpUpdateBackupSet); err != nil {
		return err
	}
	return f.Catalog.UpdateBackupSet(ctx, set)
}

func (f *Faulty) DeleteBackupSet(ctx context.Context, id int64) error {
	if err := f.hit(OpDeleteBackupSet); err != nil {
		return err
	}
	return f.Catalog.DeleteBackupSet(ctx, id)
}

package metrics

import (
	"context"
	"io"
	"iter"

	"github.com/rdsbackup/rdsbackup"
)

// Store wraps s so that its failures are counted in storage_errors_total.
func (m *Metrics) Store(s rdsbackup.ObjectStore) rdsbackup.ObjectStore {
	return &store{ObjectStore: s, m: m}
}

type store struct {
	rdsbackup.ObjectStore
	m *Metrics
}

func (s *store) Create(ctx context.Context, key string) (rdsbackup.ObjectWriter, error) {
	w, err := s.ObjectStore.Create(ctx, key)
	if err != nil {
		s.m.storageError("create", err)
		return nil, err
	}
	return &writer{ObjectWriter: w, m: s.m}, nil
}

func (s *store) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r, err := s.ObjectStore.Open(ctx, key, offset, length)
	if err != nil {
		s.m.storageError("open", err)
		return nil, err
	}
	return &reader{ReadCloser: r, m: s.m}, nil
}

func (s *store) Stat(ctx context.Context, key string) (rdsbackup.ObjectInfo, error) {
	info, err := s.ObjectStore.Stat(ctx, key)
	s.m.storageError("stat", err)
	return info, err
}

func (s *store) Delete(ctx context.Context, key string) error {
	err := s.ObjectStore.Delete(ctx, key)
	s.m.storageError("delete", err)
	return err
}

func (s *store) List(ctx context.Context, prefix string) iter.Seq2[rdsbackup.ObjectInfo, error] {
	return func(yield func(rdsbackup.ObjectInfo, error) bool) {
		for info, err := range s.ObjectStore.List(ctx, prefix) {
			s.m.storageError("list", err)
			if !yield(info, err) || err != nil {
				return
			}
		}
	}
}

// writer counts the first failure of a write only: an ObjectWriter's
// failure is sticky, so later calls repeat it.
type writer struct {
	rdsbackup.ObjectWriter
	m      *Metrics
	failed bool
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.ObjectWriter.Write(p)
	if err != nil && !w.failed {
		w.failed = true
		w.m.storageError("write", err)
	}
	return n, err
}

func (w *writer) Commit() error {
	err := w.ObjectWriter.Commit()
	if err != nil && !w.failed {
		w.failed = true
		w.m.storageError("commit", err)
	}
	return err
}

type reader struct {
	io.ReadCloser
	m      *Metrics
	failed bool
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !r.failed {
		r.failed = true
		r.m.storageError("read", err)
	}
	return n, err
}

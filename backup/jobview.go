package backup

import (
	"cmp"
	"context"
	"slices"

	"github.com/rdsbackup/rdsbackup"
)

// JobView is the catalog's jobs as the API shows them: a job that has
// ended but whose final state the runner could not record yet (the
// catalog's disk is full, say) is shown in that final state, so that a
// client polling it sees it end while the runner keeps retrying the write.
type JobView struct {
	rdsbackup.JobService
	Runner *Runner
}

// FindJobs returns the matching jobs, newest first, as the catalog has them
// or, for unsettled jobs, as the runner will record them.
func (v JobView) FindJobs(ctx context.Context, f rdsbackup.JobFilter) ([]*rdsbackup.Job, error) {
	jobs, err := v.JobService.FindJobs(ctx, f)
	if err != nil {
		return nil, err
	}
	pending := v.Runner.Unsettled()
	if len(pending) == 0 {
		return jobs, nil
	}
	byID := make(map[int64]*rdsbackup.Job, len(pending))
	for i := range pending {
		byID[pending[i].Job.ID] = &pending[i].Job
	}
	out := make([]*rdsbackup.Job, 0, len(jobs))
	for _, j := range jobs {
		if p := byID[j.ID]; p != nil {
			delete(byID, j.ID)
			j = p
		}
		if jobMatches(f, j) {
			out = append(out, j)
		}
	}
	// Jobs whose stored state a status filter left out but whose final
	// state it wants.
	for _, p := range byID {
		if jobMatches(f, p) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b *rdsbackup.Job) int { return cmp.Compare(b.ID, a.ID) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func jobMatches(f rdsbackup.JobFilter, j *rdsbackup.Job) bool {
	return (f.InstanceID == "" || j.InstanceID == f.InstanceID) &&
		(f.ID == nil || j.ID == *f.ID) &&
		(f.Mode == nil || j.Mode == *f.Mode) &&
		(len(f.Statuses) == 0 || slices.Contains(f.Statuses, j.Status))
}

package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/api"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/scheduler"
)

// automationCatalog is what the automation needs of the catalog.
type automationCatalog interface {
	FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error)
	FindLastWindows(ctx context.Context) (map[string]time.Time, error)
	FindBackupPolicy(ctx context.Context, instanceID string) (*rdsbackup.BackupPolicy, error)
	FindBackupPolicies(ctx context.Context) ([]*rdsbackup.BackupPolicy, error)
	PutBackupPolicies(ctx context.Context, ps []*rdsbackup.BackupPolicy) error
}

// automation joins the scheduler (which knows only times), the runner and
// the catalog: it takes each instance's automated backups and sweeps
// expired sets.
type automation struct {
	db      automationCatalog
	runner  *backup.Runner
	deleter *backup.Deleter
	sched   *scheduler.Scheduler
	logger  *slog.Logger

	mu        sync.Mutex
	policies  map[string]*rdsbackup.BackupPolicy
	scheduled map[string]bool // instances whose engine can be backed up
}

var _ api.Scheduling = (*automation)(nil)

func newAutomation(db automationCatalog, runner *backup.Runner, deleter *backup.Deleter, cfg *Config, now func() time.Time, logger *slog.Logger) *automation {
	a := &automation{db: db, runner: runner, deleter: deleter, logger: logger, policies: map[string]*rdsbackup.BackupPolicy{},
		scheduled: map[string]bool{}}
	a.sched = scheduler.New(a.start)
	a.sched.Now = now
	a.sched.Running = runner.Running
	a.sched.Active = runner.Active
	a.sched.MaxConcurrent = cfg.Backups.MaxConcurrent
	a.sched.Logger = logger
	return a
}

// load gives every configured instance its policy (stored, else from the
// config, else the default) and puts the backable ones on the schedule.
func (a *automation) load(ctx context.Context, cfg *Config, now time.Time) error {
	last, err := a.db.FindLastWindows(ctx)
	if err != nil {
		return err
	}
	var toStore []*rdsbackup.BackupPolicy
	for _, ic := range cfg.Instances {
		p, err := a.db.FindBackupPolicy(ctx, ic.ID)
		stored := err == nil
		if err != nil && rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
			return err
		}
		if !stored {
			p = rdsbackup.DefaultBackupPolicy(ic.ID)
			p.Since = now
		}
		// The config's policy applies when it is new or was edited since it
		// was last applied; otherwise ModifyBackupPolicy's changes stand.
		if ic.BackupPolicy != nil && p.ConfigHash != ic.BackupPolicy.hash() {
			np, err := ic.BackupPolicy.apply(p)
			if err != nil {
				return err
			}
			np.Source, np.ConfigHash = "config", ic.BackupPolicy.hash()
			if np.Window != p.Window || !sameWeekdays(np.Days, p.Days) {
				np.Since = now
			}
			p, stored = np, false
		}
		if !stored {
			toStore = append(toStore, p)
		}
		a.mu.Lock()
		a.policies[ic.ID] = p
		a.mu.Unlock()
		if a.runner.Engines[rdsbackup.Engine(ic.Engine)] != nil {
			a.mu.Lock()
			a.scheduled[ic.ID] = true
			a.mu.Unlock()
			a.sched.Set(ic.ID, schedule(p), last[ic.ID])
		}
	}
	return a.db.PutBackupPolicies(ctx, toStore)
}

func sameWeekdays(a, b []time.Weekday) bool {
	return schedule(&rdsbackup.BackupPolicy{Days: a}).Days == schedule(&rdsbackup.BackupPolicy{Days: b}).Days
}

func schedule(p *rdsbackup.BackupPolicy) scheduler.Schedule {
	s := scheduler.Schedule{Window: p.Window, Since: p.Since}
	for _, d := range p.Days {
		s.Days[d] = true
	}
	return s
}

// start takes one automated backup for a window.
func (a *automation) start(ctx context.Context, instanceID string, window time.Time) error {
	a.mu.Lock()
	p := a.policies[instanceID]
	a.mu.Unlock()
	if p == nil {
		return nil
	}
	_, err := a.runner.StartBackup(ctx, instanceID, rdsbackup.BackupOptions{
		Method: p.Method, Strategy: "instance", Mode: rdsbackup.BackupAutomated, Initiator: rdsbackup.InitiatorSystem,
		StoreStatus: rdsbackup.StoreDisabled, Retention: p.Retention(), Window: window,
	})
	if rdsbackup.ErrorCode(err) == rdsbackup.ECONFLICT {
		return scheduler.ErrAttempted
	}
	return err
}

// refresh reads the policies and the windows taken back from the catalog:
// with several nodes the one that schedules (it holds the scheduler
// lease) sees a policy changed through another node, and the windows
// another node's scheduler took before this one became the leader.
func (a *automation) refresh(ctx context.Context) error {
	pols, err := a.db.FindBackupPolicies(ctx)
	if err != nil {
		return err
	}
	last, err := a.db.FindLastWindows(ctx)
	if err != nil {
		return err
	}
	for _, p := range pols {
		a.mu.Lock()
		known, scheduled := a.policies[p.InstanceID] != nil, a.scheduled[p.InstanceID]
		if known {
			a.policies[p.InstanceID] = p
		}
		a.mu.Unlock()
		if scheduled {
			a.sched.Set(p.InstanceID, schedule(p), last[p.InstanceID])
		}
	}
	return nil
}

// PolicyChanged applies a policy stored by ModifyBackupPolicy.
func (a *automation) PolicyChanged(p *rdsbackup.BackupPolicy) {
	a.mu.Lock()
	a.policies[p.InstanceID] = p
	a.mu.Unlock()
	if inst, err := a.db.FindInstance(context.Background(), p.InstanceID); err == nil && a.runner.Engines[inst.Engine] != nil {
		a.mu.Lock()
		a.scheduled[p.InstanceID] = true
		a.mu.Unlock()
		a.sched.Set(p.InstanceID, schedule(p), time.Time{})
	}
}

// NextBackup is the start of the instance's next preferred window without
// a backup: a property of the policy, shown even when backups.schedule is
// off (then nothing runs at that time; see README).
func (a *automation) NextBackup(instanceID string) time.Time { return a.sched.Next(instanceID) }

// tick runs the scheduler and sweeps expired sets once. serve calls it
// through a rdsbackup.Singleton: on one node of the cluster at a time.
func (a *automation) tick(ctx context.Context) {
	if err := a.refresh(ctx); err != nil && ctx.Err() == nil {
		a.logger.Error("read backup policies", "err", err)
	}
	a.sched.Tick(ctx)
	if err := a.deleter.Resume(ctx); err != nil && ctx.Err() == nil {
		a.logger.Error("finish deletions", "err", err)
	}
	if _, err := a.deleter.Sweep(ctx); err != nil && ctx.Err() == nil {
		a.logger.Error("expiry sweep", "err", err)
	}
}

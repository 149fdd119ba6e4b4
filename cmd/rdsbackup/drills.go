package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/drill"
	"github.com/rdsbackup/rdsbackup/engine/localserver"
)

const verifyUsage = `Usage: rdsbackup verify --backup-id ID [--config FILE]

Runs a restore drill of one backup set now (docs/drills.md): the set is
restored into a throwaway server of its engine started in drills.dir, then
checked (every database of the set is there, the engine's own integrity
check passes, a physical set's server starts and is consistent). Each check
is printed as it ends. The verdict is recorded on the set, as a scheduled
drill's is: a failed drill makes the set unavailable (IsAvail 0) with its
reason in DescribeBackups' VerifyFailureReason. The server is removed at
the end.

Exit status: 0 passed, 1 failed or could not run (a drill that could not
run records nothing), 2 usage.

Flags:
`

// newDriller makes the drill runner of a config over a catalog and store.
func newDriller(cfg *Config, db rdsbackup.Catalog, store rdsbackup.ObjectStore, logger *slog.Logger, count func(rdsbackup.DrillResult)) (*drill.Driller, error) {
	// The engines' scratch files (private: they hold dumps).
	if err := os.MkdirAll(cfg.Path("tmp/drills"), 0o700); err != nil {
		return nil, fmt.Errorf("drills: %w", err)
	}
	bes := engines(logger, cfg.Path("tmp/drills"), nil)
	logical := map[rdsbackup.Engine]backup.LogicalRestorer{}
	for name, be := range bes {
		if r, ok := be.(backup.LogicalRestorer); ok {
			logical[name] = r
		}
	}
	rec := &backup.Recoverer{Catalog: db, Store: store, Engines: pitrEngines(bes), Logical: logical,
		WorkDir: cfg.Path("tmp/drills"), Logger: logger}
	return &drill.Driller{Dir: cfg.Drills.Dir, Catalog: db, Restorer: rec, Timeout: time.Duration(cfg.Drills.Timeout),
		LowPriority: true, Logger: logger, Now: time.Now, Count: count}, nil
}

func (m *Main) verify(ctx context.Context, args []string) error {
	fset := flag.NewFlagSet("verify", flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	fset.Usage = func() { fmt.Fprint(m.Stderr, verifyUsage); fset.PrintDefaults() }
	backupID := fset.Int64("backup-id", 0, "the BackupId of the set to drill")
	configPath := fset.String("config", "", "the service's YAML config (its catalog, storage and drills.dir; without it: the built-in defaults)")
	lowPriority := fset.Bool("low-priority", true, "run the drill's server at nice 19 and the idle I/O class, as scheduled drills do")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if *backupID <= 0 || fset.NArg() > 0 {
		return usageError{errors.New("verify: give --backup-id (a positive BackupId)")}
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = ReadConfigFile(*configPath, m.Getenv); err != nil {
			return err
		}
	}
	logger := m.logger()
	db, _, err := m.openCatalog(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	store, _, err := m.openStoreForTool(ctx, cfg, logger)
	if err != nil {
		return err
	}
	d, err := newDriller(cfg, db, store, logger, nil)
	if err != nil {
		return err
	}
	d.LowPriority = *lowPriority
	// What a killed drill left (not a running one's: those are locked).
	if err := d.Clean(); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "drill of backup set %d\n", *backupID)
	dr, err := d.Run(ctx, *backupID, func(c rdsbackup.DrillCheck) {
		verdict := "FAILED"
		if c.OK {
			verdict = "ok"
		}
		fmt.Fprintf(m.Stdout, "  %-10s %-6s %7s  %s\n", c.Name, verdict, c.Took.Round(10*time.Millisecond), c.Detail)
	})
	if dr == nil {
		if rdsbackup.ErrorCode(err) != rdsbackup.EINTERNAL {
			return fmt.Errorf("verify: %s", rdsbackup.ErrorMessage(err))
		}
		return fmt.Errorf("verify: %w", err)
	}
	took := dr.EndTime.Sub(dr.StartTime).Round(time.Millisecond)
	switch dr.Result {
	case rdsbackup.DrillPassed:
		fmt.Fprintf(m.Stdout, "backup set %d: drill passed in %v\n", *backupID, took)
	case rdsbackup.DrillFailed:
		fmt.Fprintf(m.Stdout, "backup set %d: drill FAILED in %v: %s; the set is no longer available (IsAvail 0)\n", *backupID, took, dr.Reason)
	default:
		fmt.Fprintf(m.Stdout, "backup set %d: the drill could not run: %s; the set was left as it was\n", *backupID, dr.Reason)
	}
	if err != nil {
		return err
	}
	if dr.Result != rdsbackup.DrillPassed {
		return errDrill
	}
	return nil
}

// errDrill makes verify exit 1 after it printed why.
var errDrill = errors.New("verify: the drill did not pass")

// startDrills removes what killed drills left in drills.dir and starts the
// scheduled drills of the instances that have them (docs/drills.md); the
// returned function stops them and waits for a running drill to end.
func startDrills(ctx context.Context, cfg *Config, db rdsbackup.Catalog, store rdsbackup.ObjectStore, logger *slog.Logger,
	count func(rdsbackup.DrillResult), busy func() bool) (func(), error) {
	d, err := newDriller(cfg, db, store, logger, count)
	if err != nil {
		return nil, err
	}
	if err := d.Clean(); err != nil {
		return nil, err
	}
	plans := map[string]drill.Plan{}
	for _, ic := range cfg.Instances {
		if ic.Drills == nil || !ic.Drills.Enabled {
			continue
		}
		if rdsbackup.Engine(ic.Engine) == rdsbackup.EnginePostgreSQL {
			if err := localserver.CheckPostgresParent(cfg.Drills.Dir); err != nil {
				return nil, fmt.Errorf("config: drills.dir %s: %w", cfg.Drills.Dir, err)
			}
		}
		plans[ic.ID] = drill.Plan{Schedule: ic.Drills.Schedule, Timeout: time.Duration(ic.Drills.Timeout)}
	}
	if len(plans) == 0 {
		return func() {}, nil
	}
	s := &drill.Scheduler{Driller: d, Sets: db, Plans: plans, Busy: busy, Interval: time.Duration(cfg.Backups.TickInterval),
		Now: time.Now, Logger: logger, Leases: db, Node: cfg.Node.ID, LeaseFor: time.Duration(cfg.Drills.Timeout)}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	return func() { cancel(); <-done }, nil
}

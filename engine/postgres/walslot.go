package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rdsbackup/rdsbackup"
)

// LogBackupUnavailableError says why an instance's WAL cannot be streamed:
// a server setting or a privilege that is missing. Setting is the name of
// the setting ("wal_level", "max_wal_senders", "max_replication_slots") or
// of the privilege ("REPLICATION", "pg_hba.conf replication entry").
type LogBackupUnavailableError struct {
	Setting string
	Have    string // the current value, when it is a setting
	msg     string
}

func (e *LogBackupUnavailableError) Error() string { return e.msg }

// SlotName is the replication slot rdsbackup owns for an instance: the
// instance ID made a valid slot name (lower-case letters, digits and
// underscores, at most 63 characters), with a hash of the ID appended when
// it had to be changed, so that two IDs never share a slot.
func SlotName(instanceID string) string {
	var b strings.Builder
	changed := false
	for _, r := range instanceID {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
			changed = true
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	name := b.String()
	const prefix, max = "rdsbackup_", 63
	if changed || len(prefix)+len(name) > max {
		sum := sha256.Sum256([]byte(instanceID))
		h := hex.EncodeToString(sum[:4])
		if room := max - len(prefix) - 1 - len(h); len(name) > room {
			name = name[:room]
		}
		name += "_" + h
	}
	return prefix + name
}

// CheckLogBackup checks that the instance's WAL can be streamed: wal_level
// replica or logical, wal senders and replication slots available, a user
// with REPLICATION (or superuser), and a pg_hba.conf entry letting it open
// a replication connection. The error is a *LogBackupUnavailableError
// naming what is missing, or a connection error.
func (e *Engine) CheckLogBackup(ctx context.Context, inst *rdsbackup.Instance) error {
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return err
	}
	defer c.close()
	var walLevel string
	var senders, slots int
	err = c.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('max_wal_senders')::int, current_setting('max_replication_slots')::int`).
		Scan(&walLevel, &senders, &slots)
	if err != nil {
		return c.redact.err(fmt.Errorf("read the server's WAL settings: %w", err))
	}
	switch {
	case walLevel == "minimal":
		return &LogBackupUnavailableError{Setting: "wal_level", Have: walLevel,
			msg: "log backup needs wal_level = replica (or logical) on the PostgreSQL server; it is minimal (set wal_level = replica and restart the server)"}
	case senders < 1:
		return &LogBackupUnavailableError{Setting: "max_wal_senders", Have: strconv.Itoa(senders),
			msg: fmt.Sprintf("log backup needs max_wal_senders ≥ 1 on the PostgreSQL server; it is %d", senders)}
	case slots < 1:
		return &LogBackupUnavailableError{Setting: "max_replication_slots", Have: strconv.Itoa(slots),
			msg: fmt.Sprintf("log backup needs max_replication_slots ≥ 1 on the PostgreSQL server; it is %d", slots)}
	case !c.super && !c.repl:
		return &LogBackupUnavailableError{Setting: "REPLICATION",
			msg: fmt.Sprintf("log backup needs a user with the REPLICATION attribute (or a superuser): %q has neither (ALTER ROLE %s REPLICATION)", c.user, c.user)}
	}
	// pg_hba.conf is only seen by trying a replication connection.
	rc, err := replicationConnect(ctx, inst.DSN)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "28000" { // invalid_authorization_specification: no pg_hba.conf entry
			return &LogBackupUnavailableError{Setting: "pg_hba.conf replication entry",
				msg: fmt.Sprintf("log backup needs a \"replication\" entry for user %q and this host in the server's pg_hba.conf: %s", c.user, pe.Message)}
		}
		return c.redact.err(fmt.Errorf("open a replication connection: %w", err))
	}
	rc.Close(context.WithoutCancel(ctx))
	return nil
}

// replicationConnect opens a physical replication connection and runs
// IDENTIFY_SYSTEM on it.
func replicationConnect(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	p, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, newRedactor(p.password).err(fmt.Errorf("parse the DSN: %w", err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	cfg.RuntimeParams["replication"] = "true"
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return c, nil
}

// SlotStatus is what the server says of rdsbackup's slot of an instance.
type SlotStatus struct {
	Exists bool
	Active bool
	// RestartLSN is the oldest WAL the server keeps for the slot.
	RestartLSN LSN
	// RetainedBytes is how much WAL the slot holds back on the server's
	// disk: pg_current_wal_lsn() - restart_lsn.
	RetainedBytes int64
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved or lost (the server removed WAL the slot needed, because of
	// max_slot_wal_keep_size: the stream has a gap).
	WALStatus string
}

// Slot reads the state of the instance's slot (SlotName(inst.ID) when
// slot is empty), to be watched: a slot whose RetainedBytes grows is
// filling the server's disk.
func (e *Engine) Slot(ctx context.Context, inst *rdsbackup.Instance, slot string) (SlotStatus, error) {
	if slot == "" {
		slot = SlotName(inst.ID)
	}
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return SlotStatus{}, err
	}
	defer c.close()
	var st SlotStatus
	var restart *string
	var retained *int64
	var walStatus *string
	err = c.QueryRow(ctx, `SELECT active, restart_lsn::text,
		(pg_catalog.pg_current_wal_lsn() - restart_lsn)::bigint, wal_status
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, slot).Scan(&st.Active, &restart, &retained, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, c.redact.err(fmt.Errorf("read replication slot %s: %w", slot, err))
	}
	st.Exists = true
	if restart != nil {
		st.RestartLSN, _ = ParseLSN(*restart)
	}
	if retained != nil {
		st.RetainedBytes = *retained
	}
	if walStatus != nil {
		st.WALStatus = *walStatus
	}
	return st, nil
}

// DropSlot drops the instance's replication slot (SlotName(inst.ID) when
// slot is empty), so that the server stops
// keeping WAL for rdsbackup: call it when log backup is turned off, after
// the streamer has stopped. A slot that does not exist is not an error; one
// still in use is waited for up to wait (the server notices a stopped
// pg_receivewal within moments), then the error says who holds it.
func (e *Engine) DropSlot(ctx context.Context, inst *rdsbackup.Instance, slot string, wait time.Duration) error {
	if slot == "" {
		slot = SlotName(inst.ID)
	}
	return e.dropSlot(ctx, inst, slot, wait)
}

func (e *Engine) dropSlot(ctx context.Context, inst *rdsbackup.Instance, name string, wait time.Duration) error {
	c, err := connect(ctx, inst.DSN, "")
	if err != nil {
		return err
	}
	defer c.close()
	deadline := time.Now().Add(wait)
	for {
		var pid *int
		err := c.QueryRow(ctx, `SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return c.redact.err(fmt.Errorf("read replication slot %s: %w", name, err))
		}
		if pid == nil {
			_, err := c.Exec(ctx, `SELECT pg_catalog.pg_drop_replication_slot($1)`, name)
			var pe *pgconn.PgError
			switch {
			case err == nil:
				e.logger().Info("replication slot dropped", "instance", inst.ID, "slot", name)
				return nil
			case errors.As(err, &pe) && pe.Code == "42704": // undefined_object: gone meanwhile
				return nil
			case errors.As(err, &pe) && pe.Code == "55006": // object_in_use: taken meanwhile
			default:
				return c.redact.err(fmt.Errorf("drop replication slot %s: %w", name, err))
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("replication slot %s is in use by the server process %d; stop the WAL streamer first", name, *pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package rdsbackup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// CatalogTable is one table of the catalog in the engine-neutral form in
// which `rdsbackup catalog copy` moves an installation from one catalog
// implementation to another.
type CatalogTable struct {
	Name string
	// Columns are the values of each row, in this order. Rows are exported
	// in the order of the first KeyColumns columns, which identify a row.
	Columns    []CatalogColumn
	KeyColumns int
}

// CatalogColumn is a column of a CatalogTable.
type CatalogColumn struct {
	Name string
	Kind ColumnKind
}

// ColumnKind is the Go type of a column's values.
type ColumnKind byte

const (
	KindString ColumnKind = 's' // string
	KindInt    ColumnKind = 'i' // int64
	KindBytes  ColumnKind = 'b' // []byte
)

// catalogColumns reads "name name:i name:b …": a column without a kind
// holds strings.
func catalogColumns(spec string) []CatalogColumn {
	var out []CatalogColumn
	for _, f := range strings.Fields(spec) {
		name, kind, _ := strings.Cut(f, ":")
		c := CatalogColumn{Name: name, Kind: KindString}
		if kind != "" {
			c.Kind = ColumnKind(kind[0])
		}
		out = append(out, c)
	}
	return out
}

// CatalogTables lists every table a catalog keeps, in the order an import
// fills them (a table comes after those it refers to). A change that adds
// a table adds it here, to ExportRows and ImportRows of every catalog, and
// to the rows catalogtest's transfer test writes; the conformance suite
// fails for a table it finds no rows of.
//
// Booleans are 0 or 1, times unix seconds (0 for none), lists the JSON text
// the catalogs store, and secrets (instance DSNs, access key secrets) stay
// sealed by the master key.
var CatalogTables = []CatalogTable{
	{Name: "settings", Columns: catalogColumns("name value:b"), KeyColumns: 1},
	// The highest id given to a job or a backup set (they share one id
	// space): one row, and none while no id was ever given.
	{Name: "backup_ids", Columns: catalogColumns("last:i"), KeyColumns: 1},
	{Name: "instances", Columns: catalogColumns("id engine engine_version dsn:b description created_at:i updated_at:i"), KeyColumns: 1},
	{Name: "backup_policies", Columns: catalogColumns(`instance_id window_minute:i days retention_days:i method
		enable_backup_log:i log_backup_retention_period:i local_log_retention_hours:i local_log_retention_space
		high_space_usage_protection log_backup_local_retention_number:i log_backup_frequency compress_type
		backup_interval category released_keep_policy since:i source config_hash updated_at:i`), KeyColumns: 1},
	{Name: "backup_sets", Columns: catalogColumns(`id:i instance_id status start_time:i end_time:i type mode
		method initiator size:i available:i store_status meta_status storage_class copy_only:i
		consistent_time:i checksum host_instance_id encryption engine engine_version
		resource_group_id location scale db_names expect_expire_time:i failure_reason object_key
		deleting:i artifacts verify_status verify_time:i verify_reason`), KeyColumns: 1},
	{Name: "jobs", Columns: catalogColumns(`id:i instance_id status mode method strategy databases
		progress:i backup_set_id:i error created_at:i updated_at:i window_start:i node_id lease_until:i`), KeyColumns: 1},
	// Point-in-time recovery (docs/pitr.md). Positions are JSON
	// LogPosition documents; db_names a JSON object.
	{Name: "log_files", Columns: catalogColumns(`instance_id name kind seq:i begin_time:i end_time:i
		start_pos end_pos raw_size:i size:i checksum object_key status host_id created_at:i deleting:i`), KeyColumns: 2},
	{Name: "log_gaps", Columns: catalogColumns("id:i instance_id after_seq:i before_seq:i from_time:i to_time:i reason detected_at:i"), KeyColumns: 1},
	{Name: "set_log_positions", Columns: catalogColumns("set_id:i part instance_id position"), KeyColumns: 2},
	{Name: "log_streams", Columns: catalogColumns("instance_id server_id:i"), KeyColumns: 1},
	{Name: "recoveries", Columns: catalogColumns(`id:i source_id target_id backup_id:i restore_time:i db_names
		status progress:i error created_at:i updated_at:i`), KeyColumns: 1},
	{Name: "users", Columns: catalogColumns("name id display_name email mobile_phone comments created_at:i updated_at:i"), KeyColumns: 1},
	{Name: "access_keys", Columns: catalogColumns("id user_name secret:b status created_at:i"), KeyColumns: 1},
	{Name: "policies", Columns: catalogColumns("name type description document default_version created_at:i updated_at:i"), KeyColumns: 2},
	{Name: "user_policies", Columns: catalogColumns("user_name policy_name policy_type attached_at:i"), KeyColumns: 3},
}

// ColumnNames returns the names of t's columns.
func (t CatalogTable) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// CheckRow checks that row has t's columns, each of its kind.
func (t CatalogTable) CheckRow(row CatalogRow) error {
	if len(row) != len(t.Columns) {
		return fmt.Errorf("table %s: row of %d values, want %d", t.Name, len(row), len(t.Columns))
	}
	for i, c := range t.Columns {
		ok := false
		switch row[i].(type) {
		case int64:
			ok = c.Kind == KindInt
		case string:
			ok = c.Kind == KindString
		case []byte:
			ok = c.Kind == KindBytes
		}
		if !ok {
			return fmt.Errorf("table %s: column %s holds a %T, want kind %c", t.Name, c.Name, row[i], c.Kind)
		}
	}
	return nil
}

// KeyNames returns the names of t's key columns.
func (t CatalogTable) KeyNames() []string { return t.ColumnNames()[:t.KeyColumns] }

// FindCatalogTable returns the table named name.
func FindCatalogTable(name string) (CatalogTable, bool) {
	for _, t := range CatalogTables {
		if t.Name == name {
			return t, true
		}
	}
	return CatalogTable{}, false
}

// CatalogRow is one row of a CatalogTable: its values in column order, of
// the columns' kinds.
type CatalogRow []any

// CatalogTransfer reads and writes a catalog's tables in the neutral form.
type CatalogTransfer interface {
	// ExportRows calls fn with every row of table, in key order. fn may
	// keep the row.
	ExportRows(ctx context.Context, table string, fn func(CatalogRow) error) error
	// ImportRows stores rows another catalog exported, in one transaction,
	// keeping ids, times and sealed secrets as they are. Settings replace
	// the catalog's own (a new catalog's master key check is replaced by
	// the source's); any other row that exists already is an error. The
	// backup_ids row only ever raises the catalog's highest id.
	ImportRows(ctx context.Context, table string, rows []CatalogRow) error
}

// TableSummary is what the copy compares of a table: its row count and a
// SHA-256 of its rows in key order.
type TableSummary struct {
	Table    string
	Rows     int
	Checksum string // hex
}

// SummarizeTable counts and checksums one table. Every value is hashed with
// its type and length, so that no two different tables hash alike.
func SummarizeTable(ctx context.Context, c CatalogTransfer, table string) (TableSummary, error) {
	h := sha256.New()
	var buf []byte
	n := 0
	err := c.ExportRows(ctx, table, func(row CatalogRow) error {
		n++
		buf = buf[:0]
		buf = binary.AppendUvarint(buf, uint64(len(row)))
		for _, v := range row {
			switch v := v.(type) {
			case int64:
				buf = append(buf, 'i')
				buf = binary.BigEndian.AppendUint64(buf, uint64(v))
			case string:
				buf = append(buf, 's')
				buf = binary.AppendUvarint(buf, uint64(len(v)))
				buf = append(buf, v...)
			case []byte:
				buf = append(buf, 'b')
				buf = binary.AppendUvarint(buf, uint64(len(v)))
				buf = append(buf, v...)
			default:
				return fmt.Errorf("table %s: value of type %T", table, v)
			}
		}
		h.Write(buf)
		return nil
	})
	if err != nil {
		return TableSummary{}, fmt.Errorf("read %s: %w", table, err)
	}
	return TableSummary{Table: table, Rows: n, Checksum: hex.EncodeToString(h.Sum(nil))}, nil
}

// CopyReport tells what CopyCatalog copied and verified, per table.
type CopyReport struct {
	Tables []TableSummary
}

// copyBatch is the number of rows per ImportRows transaction.
const copyBatch = 5000

// CopyCatalog copies every table of from into to, which must hold no row
// but settings, then verifies that both hold the same rows: the same count
// and checksum per table. progress, when set, is told each table as it is
// done. An error leaves to partly filled; it is not to be used then.
func CopyCatalog(ctx context.Context, from, to CatalogTransfer, progress func(TableSummary)) (*CopyReport, error) {
	for _, t := range CatalogTables {
		if t.Name == "settings" {
			continue
		}
		n := 0
		if err := to.ExportRows(ctx, t.Name, func(CatalogRow) error { n++; return nil }); err != nil {
			return nil, fmt.Errorf("read target %s: %w", t.Name, err)
		}
		if n > 0 {
			return nil, Errorf(ECONFLICT, "the target catalog is not empty: its table %s has rows; copy into a new, empty database", t.Name)
		}
	}
	report := &CopyReport{}
	for _, t := range CatalogTables {
		var batch []CatalogRow
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			err := to.ImportRows(ctx, t.Name, batch)
			batch = batch[:0]
			if err != nil {
				return fmt.Errorf("write %s: %w", t.Name, err)
			}
			return nil
		}
		err := from.ExportRows(ctx, t.Name, func(row CatalogRow) error {
			if err := t.CheckRow(row); err != nil {
				return err
			}
			batch = append(batch, row)
			if len(batch) >= copyBatch {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", t.Name, err)
		}
		src, err := SummarizeTable(ctx, from, t.Name)
		if err != nil {
			return nil, fmt.Errorf("verify source: %w", err)
		}
		dst, err := SummarizeTable(ctx, to, t.Name)
		if err != nil {
			return nil, fmt.Errorf("verify target: %w", err)
		}
		if src != dst {
			return nil, fmt.Errorf("verify %s: the source has %d rows (sha256 %s), the target %d (sha256 %s)",
				t.Name, src.Rows, src.Checksum, dst.Rows, dst.Checksum)
		}
		report.Tables = append(report.Tables, src)
		if progress != nil {
			progress(src)
		}
	}
	return report, nil
}

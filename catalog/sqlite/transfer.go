package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

var _ rdsbackup.CatalogTransfer = (*DB)(nil)

// The tables of rdsbackup.CatalogTables have the same names and columns
// here, but for backup_ids (backup_set_ids and the jobs' AUTOINCREMENT
// sequence) and the sets' row keys (set_instance_keys, rid), which are this
// catalog's own and are made again on import.

// ExportRows calls fn with every row of table in key order.
func (db *DB) ExportRows(ctx context.Context, table string, fn func(rdsbackup.CatalogRow) error) error {
	t, ok := rdsbackup.FindCatalogTable(table)
	if !ok {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "no catalog table %q", table)
	}
	if table == "backup_ids" {
		var last int64
		if err := db.read.QueryRowContext(ctx, nextSetID).Scan(&last); err != nil {
			return fmt.Errorf("read the highest id: %w", err)
		}
		if last--; last == 0 {
			return nil
		}
		return fn(rdsbackup.CatalogRow{last})
	}
	q := `SELECT ` + strings.Join(t.ColumnNames(), ", ") + ` FROM ` + table + ` ORDER BY ` + strings.Join(t.KeyNames(), ", ")
	rows, err := db.read.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("export %s: %w", table, err)
	}
	defer rows.Close()
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("export %s: %w", table, err)
		}
		row := make(rdsbackup.CatalogRow, len(vals))
		for i, c := range t.Columns {
			if row[i], err = asKind(vals[i], c.Kind); err != nil {
				return fmt.Errorf("export %s, column %s: %w", table, c.Name, err)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return rows.Err()
}

// asKind converts a value as SQLite returned it to the column's kind
// (SQLite keeps whatever storage class a value was written with).
func asKind(v any, kind rdsbackup.ColumnKind) (any, error) {
	switch kind {
	case rdsbackup.KindInt:
		switch v := v.(type) {
		case int64:
			return v, nil
		case string:
			return strconv.ParseInt(v, 10, 64)
		case nil:
			return int64(0), nil
		}
	case rdsbackup.KindString:
		switch v := v.(type) {
		case string:
			return v, nil
		case []byte:
			return string(v), nil
		case int64:
			return strconv.FormatInt(v, 10), nil
		case nil:
			return "", nil
		}
	case rdsbackup.KindBytes:
		switch v := v.(type) {
		case []byte:
			return v, nil
		case string:
			return []byte(v), nil
		case nil:
			return []byte{}, nil
		}
	}
	return nil, fmt.Errorf("a %T where kind %c is wanted", v, kind)
}

// ImportRows stores rows exported by a catalog, in one transaction.
func (db *DB) ImportRows(ctx context.Context, table string, rows []rdsbackup.CatalogRow) error {
	t, ok := rdsbackup.FindCatalogTable(table)
	if !ok {
		return rdsbackup.Errorf(rdsbackup.EINVALID, "no catalog table %q", table)
	}
	for _, r := range rows {
		if err := t.CheckRow(r); err != nil {
			return err
		}
	}
	cols := t.ColumnNames()
	return db.update(ctx, func(tx *sql.Tx) error {
		switch table {
		case "backup_ids":
			for _, r := range rows {
				if err := raiseLastID(ctx, tx, r[0].(int64)); err != nil {
					return err
				}
			}
			return nil
		case "backup_sets":
			// Each set gets its row key here, as a new set would.
			q := `INSERT INTO backup_sets (rid, ` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)) + `)`
			for _, r := range rows {
				rid, err := nextSetRowID(ctx, tx, r[1].(string))
				if err != nil {
					return fmt.Errorf("import backup set %d: %w", r[0], err)
				}
				if _, err := tx.ExecContext(ctx, q, append([]any{rid}, r...)...); err != nil {
					return fmt.Errorf("import backup set %d: %w", r[0], err)
				}
				if err := raiseLastID(ctx, tx, r[0].(int64)); err != nil {
					return err
				}
			}
			return nil
		}
		verb := "INSERT"
		if table == "settings" {
			verb = "INSERT OR REPLACE"
		}
		q := verb + ` INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(cols)-1) + `)`
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, q, r...); err != nil {
				return fmt.Errorf("import %s: %w", table, err)
			}
		}
		return nil
	})
}

// raiseLastID makes id the highest id given when it is above it.
func raiseLastID(ctx context.Context, tx *sql.Tx, id int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE backup_set_ids SET last = ?1 WHERE last < ?1`, id); err != nil {
		return fmt.Errorf("raise the highest id to %d: %w", id, err)
	}
	return nil
}

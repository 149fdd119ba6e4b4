package enginetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Contents maps, as returned by MariaDBContents and PostgresContents, have
// one entry per object, keyed "kind:name":
//
//	database     the database's character set and collation
//	data:T       "rows=N sha256=H" over every column of every row of table T
//	table:T      T's definition (columns, keys, indexes, constraints)
//	view:V, trigger:G, function:F, procedure:P, event:E, sequence:S, type:Y,
//	schema:S     their definitions
//
// MariaDB names are unqualified (the database is the handle's default);
// PostgreSQL names are schema-qualified. Two databases with equal maps hold
// the same rows and objects. Rows are hashed in primary-key order; tables
// without a primary key are hashed as a multiset of rows.

// rowHasher accumulates the digests of a table's rows.
type rowHasher struct {
	ordered bool
	rows    int
	h       hash.Hash // the table's digest, when ordered
	digests [][]byte  // row digests, when unordered
	row     bytes.Buffer
}

func newRowHasher(ordered bool) *rowHasher {
	return &rowHasher{ordered: ordered, h: sha256.New()}
}

// add adds one row. Each value is tagged with its type and length-prefixed,
// so NULL, empty and adjacent values cannot be confused.
func (r *rowHasher) add(values []any) {
	r.row.Reset()
	for _, v := range values {
		var tag byte
		var b []byte
		switch v := v.(type) {
		case nil:
			tag = 'N'
		case []byte:
			tag, b = 'B', v
		case string:
			tag, b = 'S', []byte(v)
		case int64:
			tag, b = 'I', strconv.AppendInt(nil, v, 10)
		case uint64:
			tag, b = 'U', strconv.AppendUint(nil, v, 10)
		case float64:
			tag, b = 'F', strconv.AppendFloat(nil, v, 'g', -1, 64)
		case float32:
			tag, b = 'f', strconv.AppendFloat(nil, float64(v), 'g', -1, 32)
		case bool:
			tag, b = 'T', strconv.AppendBool(nil, v)
		case time.Time:
			tag, b = 'D', []byte(v.Format(time.RFC3339Nano))
		default:
			tag, b = 'O', fmt.Appendf(nil, "%T:%v", v, v)
		}
		r.row.WriteByte(tag)
		r.row.Write(binary.AppendUvarint(nil, uint64(len(b))))
		r.row.Write(b)
	}
	sum := sha256.Sum256(r.row.Bytes())
	if r.ordered {
		r.h.Write(sum[:])
	} else {
		r.digests = append(r.digests, sum[:])
	}
	r.rows++
}

func (r *rowHasher) String() string {
	if !r.ordered {
		sort.Slice(r.digests, func(i, j int) bool { return bytes.Compare(r.digests[i], r.digests[j]) < 0 })
		for _, d := range r.digests {
			r.h.Write(d)
		}
	}
	return fmt.Sprintf("rows=%d sha256=%x", r.rows, r.h.Sum(nil))
}

// hashQuery hashes the rows a query returns.
func hashQuery(ctx context.Context, conn *sql.Conn, q string, ordered bool) (string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", err
	}
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	h := newRowHasher(ordered)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "", err
		}
		h.add(values)
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return h.String(), nil
}

// queryPairs runs a query returning (key, value) rows.
func queryPairs(ctx context.Context, conn *sql.Conn, q string, args ...any) ([][2]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var k, v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out = append(out, [2]string{k.String, v.String})
	}
	return out, rows.Err()
}

// queryStrings runs a query returning one column.
func queryStrings(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// showRow runs a SHOW statement and returns its first row by column name.
func showRow(ctx context.Context, conn *sql.Conn, q string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: no rows", q)
	}
	values := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(cols))
	for i, c := range cols {
		m[c] = values[i].String
	}
	return m, rows.Err()
}

// MariaDBContents describes the default database of db (see FillMariaDB):
// a content hash per table and the definitions of tables, views, triggers,
// functions, procedures and events. TIMESTAMP columns are read in UTC.
func MariaDBContents(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	m, err := mariadbContents(db)
	if err != nil {
		t.Fatalf("enginetest: MariaDB contents: %v", err)
	}
	return m
}

func mariadbContents(db *sql.DB) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer discardConn(conn)
	if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00', NAMES utf8mb4"); err != nil {
		return nil, err
	}
	var schema sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&schema); err != nil {
		return nil, err
	}
	if !schema.Valid {
		return nil, fmt.Errorf("the handle has no default database")
	}
	out := map[string]string{}
	var charset, collation string
	if err := conn.QueryRowContext(ctx,
		"SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
		schema.String).Scan(&charset, &collation); err != nil {
		return nil, err
	}
	out["database"] = "character set " + charset + " collate " + collation

	tables, err := queryPairs(ctx, conn,
		"SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", schema.String)
	if err != nil {
		return nil, err
	}
	for _, tt := range tables {
		name, typ := tt[0], tt[1]
		switch typ {
		case "VIEW":
			r, err := showRow(ctx, conn, "SHOW CREATE VIEW "+mariadbIdent(name))
			if err != nil {
				return nil, err
			}
			out["view:"+name] = r["Create View"]
		case "BASE TABLE":
			r, err := showRow(ctx, conn, "SHOW CREATE TABLE "+mariadbIdent(name))
			if err != nil {
				return nil, err
			}
			out["table:"+name] = r["Create Table"]
			pk, err := queryStrings(ctx, conn,
				"SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
				schema.String, name)
			if err != nil {
				return nil, err
			}
			q := "SELECT * FROM " + mariadbIdent(name)
			if len(pk) > 0 {
				for i, c := range pk {
					pk[i] = mariadbIdent(c)
				}
				q += " ORDER BY " + strings.Join(pk, ", ")
			}
			if out["data:"+name], err = hashQuery(ctx, conn, q, len(pk) > 0); err != nil {
				return nil, fmt.Errorf("table %s: %w", name, err)
			}
		}
	}

	type show struct{ list, key, show, column string }
	for _, s := range []show{
		{"SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?", "trigger:", "SHOW CREATE TRIGGER ", "SQL Original Statement"},
		{"SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION'", "function:", "SHOW CREATE FUNCTION ", "Create Function"},
		{"SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE'", "procedure:", "SHOW CREATE PROCEDURE ", "Create Procedure"},
		{"SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?", "event:", "SHOW CREATE EVENT ", "Create Event"},
	} {
		names, err := queryStrings(ctx, conn, s.list, schema.String)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			r, err := showRow(ctx, conn, s.show+mariadbIdent(name))
			if err != nil {
				return nil, err
			}
			def := r[s.column] + "\nsql_mode=" + r["sql_mode"]
			if tz, ok := r["time_zone"]; ok {
				def += "\ntime_zone=" + tz
			}
			out[s.key+name] = def
		}
	}
	return out, nil
}

// PostgresContents describes the database of db (see FillPostgres), all
// schemas but the system ones: a content hash per table and the definitions
// of schemas, tables, views, sequences (with their current values), enum
// types, functions, procedures and triggers. Objects of extensions are left
// out.
func PostgresContents(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	m, err := postgresContents(db)
	if err != nil {
		t.Fatalf("enginetest: PostgreSQL contents: %v", err)
	}
	return m
}

// pgUserNamespaces restricts n (pg_namespace) to user schemas.
const pgUserNamespaces = `n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// pgNotExtension excludes objects (of catalog cat, alias x) that belong to
// an extension.
func pgNotExtension(cat, x string) string {
	return `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
		WHERE d.classid = '` + cat + `'::regclass AND d.objid = ` + x + `.oid AND d.deptype = 'e')`
}

func postgresContents(db *sql.DB) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer discardConn(conn)
	// Fixed output formats; an empty search path makes every name in a
	// definition schema-qualified, as pg_dump does.
	for _, q := range []string{
		"SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'postgres'",
		"SET extra_float_digits = 1", "SET bytea_output = 'hex'", "SET search_path = pg_catalog",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	out := map[string]string{}
	add := func(prefix, q string) error {
		pairs, err := queryPairs(ctx, conn, q)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSuffix(prefix, ":"), err)
		}
		for _, p := range pairs {
			out[prefix+p[0]] = p[1]
		}
		return nil
	}

	var dbdef string
	if err := conn.QueryRowContext(ctx, `SELECT format('encoding %s collate %s ctype %s',
			pg_encoding_to_char(encoding), datcollate, datctype)
		FROM pg_database WHERE datname = current_database()`).Scan(&dbdef); err != nil {
		return nil, err
	}
	out["database"] = dbdef
	if err := add("schema:", `SELECT format('%I', n.nspname), pg_get_userbyid(n.nspowner)
		FROM pg_namespace n WHERE `+pgUserNamespaces+` AND `+pgNotExtension("pg_namespace", "n")); err != nil {
		return nil, err
	}
	if err := add("type:", `SELECT format('%I.%I', n.nspname, t.typname),
			'enum(' || string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) || ')'
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
		WHERE `+pgUserNamespaces+` AND `+pgNotExtension("pg_type", "t")+`
		GROUP BY n.nspname, t.typname`); err != nil {
		return nil, err
	}
	if err := add("view:", `SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text || ' ' || pg_get_viewdef(c.oid, true)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('v', 'm') AND `+pgUserNamespaces+` AND `+pgNotExtension("pg_class", "c")); err != nil {
		return nil, err
	}
	if err := add("function:", `SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prokind IN ('f', 'p', 'w') AND `+pgUserNamespaces+` AND `+pgNotExtension("pg_proc", "p")); err != nil {
		return nil, err
	}
	if err := add("trigger:", `SELECT format('%I.%I.%I', n.nspname, c.relname, tg.tgname), pg_get_triggerdef(tg.oid, true)
		FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE NOT tg.tgisinternal AND `+pgUserNamespaces); err != nil {
		return nil, err
	}
	if err := add("table:", `SELECT format('%I.%I', n.nspname, c.relname),
			(SELECT string_agg(format('%I %s%s%s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
					CASE WHEN a.attcollation <> ty.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END,
					CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
					CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END,
					CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || pg_get_expr(ad.adbin, ad.adrelid)
						WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END),
				E'\n' ORDER BY a.attnum)
			FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
			LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
			|| coalesce(E'\n' || (SELECT string_agg(format('CONSTRAINT %I %s', co.conname, pg_get_constraintdef(co.oid, true)), E'\n' ORDER BY co.conname)
				FROM pg_constraint co WHERE co.conrelid = c.oid), '')
			|| coalesce(E'\n' || (SELECT string_agg(pg_get_indexdef(i.indexrelid), E'\n' ORDER BY pg_get_indexdef(i.indexrelid))
				FROM pg_index i WHERE i.indrelid = c.oid), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND `+pgUserNamespaces+` AND `+pgNotExtension("pg_class", "c")); err != nil {
		return nil, err
	}

	// Sequences: definition and state (pg_dump restores both).
	seqs, err := queryStrings(ctx, conn, `SELECT format('%I.%I', n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S' AND `+pgUserNamespaces+` AND `+pgNotExtension("pg_class", "c")+` ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	for _, s := range seqs {
		var def string
		err := conn.QueryRowContext(ctx, `SELECT format('%s start %s increment %s min %s max %s cache %s cycle %s last_value %s is_called %s',
				format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax, q.seqcache, q.seqcycle, s.last_value, s.is_called)
			FROM pg_sequence q, `+s+` s WHERE q.seqrelid = $1::regclass`, s).Scan(&def)
		if err != nil {
			return nil, fmt.Errorf("sequence %s: %w", s, err)
		}
		out["sequence:"+s] = def
	}

	// Table rows, as the row's text form, in primary-key order.
	tables, err := queryPairs(ctx, conn, `SELECT format('%I.%I', n.nspname, c.relname),
			(SELECT string_agg(format('%I', a.attname), ', ' ORDER BY array_position(i.indkey::int2[], a.attnum))
				FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
				WHERE i.indrelid = c.oid AND i.indisprimary)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND `+pgUserNamespaces+` AND `+pgNotExtension("pg_class", "c")+` ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	for _, tt := range tables {
		name, pk := tt[0], tt[1]
		q := "SELECT t::text FROM " + name + " t"
		if pk != "" {
			q += " ORDER BY " + pk
		}
		if out["data:"+name], err = hashQuery(ctx, conn, q, pk != ""); err != nil {
			return nil, fmt.Errorf("table %s: %w", name, err)
		}
	}
	return out, nil
}

// DiffContents describes how got differs from want, one line per key that is
// missing, extra or different (long values shortened); it returns "" when
// they are equal.
func DiffContents(want, got map[string]string) string {
	keys := map[string]bool{}
	for k := range want {
		keys[k] = true
	}
	for k := range got {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	short := func(s string) string {
		if len(s) > 400 {
			s = s[:400] + "…"
		}
		return strconv.Quote(s)
	}
	var b strings.Builder
	for _, k := range sorted {
		w, inWant := want[k]
		g, inGot := got[k]
		switch {
		case !inGot:
			fmt.Fprintf(&b, "missing %s: %s\n", k, short(w))
		case !inWant:
			fmt.Fprintf(&b, "extra %s: %s\n", k, short(g))
		case w != g:
			fmt.Fprintf(&b, "differs %s:\n\twant %s\n\tgot  %s\n", k, short(w), short(g))
		}
	}
	return b.String()
}

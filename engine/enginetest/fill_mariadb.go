package enginetest

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// mariadbSchema is created by FillMariaDB, in this order. The trigger exists
// before the rows are inserted, so orders.total is computed by it.
var mariadbSchema = []string{
	`CREATE TABLE customers (
		id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		name VARCHAR(200) NOT NULL,
		email VARCHAR(255) NULL,
		country CHAR(2) NOT NULL,
		created DATETIME(6) NOT NULL,
		birthday DATE NULL,
		balance DECIMAL(15,4) NOT NULL,
		score DOUBLE NULL,
		active BOOLEAN NOT NULL,
		notes MEDIUMTEXT NULL,
		meta JSON NULL,
		flags BIT(8) NOT NULL DEFAULT b'0',
		name_len INT AS (CHAR_LENGTH(name)) VIRTUAL,
		KEY customers_country (country)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`,
	`CREATE TABLE orders (
		id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
		customer_id INT NOT NULL,
		qty SMALLINT NOT NULL,
		price DECIMAL(10,2) NOT NULL,
		total DECIMAL(12,2) NULL,
		ordered_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
		status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
		KEY orders_ordered_at (ordered_at),
		CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
	) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	`CREATE TABLE blobs (
		id INT NOT NULL PRIMARY KEY,
		data LONGBLOB NULL,
		size INT AS (LENGTH(data)) STORED
	) ENGINE=InnoDB`,
	`CREATE TABLE tags (
		customer_id INT NOT NULL,
		tag VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		PRIMARY KEY (customer_id, tag),
		CONSTRAINT tags_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
	) ENGINE=InnoDB`,
	// No primary key, duplicate rows, and not InnoDB.
	`CREATE TABLE event_log (
		n INT NULL,
		msg TEXT NULL
	) ENGINE=Aria DEFAULT CHARSET=utf8mb4`,
	`CREATE FUNCTION order_total(q INT, p DECIMAL(10,2)) RETURNS DECIMAL(12,2)
		DETERMINISTIC NO SQL
		RETURN q * p`,
	`CREATE TRIGGER orders_set_total BEFORE INSERT ON orders FOR EACH ROW
		SET NEW.total = order_total(NEW.qty, NEW.price)`,
}

// mariadbObjects are created after the rows.
var mariadbObjects = []string{
	`CREATE VIEW customer_totals AS
		SELECT c.id, c.name, COUNT(o.id) AS orders, COALESCE(SUM(o.total), 0) AS total
		FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
		GROUP BY c.id, c.name`,
	`CREATE PROCEDURE customer_count(OUT n INT)
		READS SQL DATA
		SELECT COUNT(*) INTO n FROM customers`,
	// Disabled, so it never runs; a dump must keep it all the same.
	`CREATE EVENT purge_cancelled
		ON SCHEDULE EVERY 1 DAY STARTS '2035-01-01 00:00:00'
		ON COMPLETION PRESERVE DISABLE
		COMMENT 'sample event'
		DO DELETE FROM orders WHERE status = 'cancelled'`,
}

// FillMariaDB creates sample tables, a function, a procedure, a trigger, a
// view and an event in db's default database (which must be empty of them)
// and inserts rows customers, as many orders, rows/2 blobs, about rows tags
// and rows/10 log lines. The same rows always give the same contents.
//
// The data covers NULL next to empty strings and blobs, every byte value,
// a 256 KiB blob, 4-byte UTF-8, quotes and backslashes, DECIMAL extremes,
// full-precision DOUBLEs, DATETIME(6) and TIMESTAMP(3), JSON, BIT, ENUM,
// virtual and stored generated columns, foreign keys, a composite primary
// key and an Aria table without a primary key.
func FillMariaDB(t testing.TB, db *sql.DB, rows int) {
	t.Helper()
	if err := fillMariaDB(db, rows); err != nil {
		t.Fatalf("enginetest: fill MariaDB: %v", err)
	}
}

func fillMariaDB(db *sql.DB, rows int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer discardConn(conn)
	// TIMESTAMP values are given in UTC.
	if _, err := conn.ExecContext(ctx, "SET time_zone = '+00:00', NAMES utf8mb4"); err != nil {
		return err
	}
	for _, q := range mariadbSchema {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.40s: %w", q, err)
		}
	}

	d := newSampleData(rows)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ph := func(int) string { return "?" }
	insert := func(table, cols string, ncols, n, batch int, row func(i int) []any) error {
		return insertBatches(n, batch, func(from, to int) error {
			args := make([]any, 0, (to-from)*ncols)
			for i := from; i < to; i++ {
				args = append(args, row(i)...)
			}
			q := "INSERT INTO " + table + " (" + cols + ") VALUES " + placeholders(to-from, ncols, ph)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("insert into %s: %w", table, err)
			}
			return nil
		})
	}
	err = insert("customers", "name, email, country, created, birthday, balance, score, active, notes, meta, flags", 11, len(d.customers), 500,
		func(i int) []any {
			c := d.customers[i]
			notes := c.notes
			if i == 7 {
				notes = "NUL\x00inside" // only MariaDB: PostgreSQL text cannot hold NUL
			}
			return []any{c.name, c.email, c.country, c.created, c.birthday, c.balance, c.score, c.active, notes, c.meta, i % 256}
		})
	if err == nil {
		err = insert("orders", "customer_id, qty, price, ordered_at, status", 5, len(d.orders), 1000,
			func(i int) []any {
				o := d.orders[i]
				return []any{o.customer, o.qty, o.price, o.at, o.status}
			})
	}
	if err == nil {
		err = insert("blobs", "id, data", 2, len(d.blobs), 100,
			func(i int) []any { return []any{d.blobs[i].id, d.blobs[i].data} })
	}
	if err == nil {
		err = insert("tags", "customer_id, tag", 2, len(d.tags), 1000,
			func(i int) []any { return []any{d.tags[i].customer, d.tags[i].tag} })
	}
	if err == nil {
		err = insert("event_log", "n, msg", 2, len(d.logs), 1000,
			func(i int) []any {
				if i%10 == 3 {
					return []any{nil, d.logs[i]}
				}
				return []any{i % 7, d.logs[i]}
			})
	}
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for _, q := range mariadbObjects {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.40s: %w", q, err)
		}
	}
	return nil
}

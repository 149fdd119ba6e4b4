package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

// genVersion changes whenever the generated content changes, so that a
// cached source database made by an older generator is not reused.
const genVersion = 1

// benchDB is the generated database's name.
const benchDB = "benchdb"

// sourceInfo describes a generated source database; it is kept as
// source.json beside the data directory once generation has completed.
type sourceInfo struct {
	Engine     string `json:"engine"`
	Target     int64  `json:"targetBytes"`
	Version    int    `json:"generatorVersion"`
	Password   string `json:"password"`
	DataBytes  int64  `json:"dataBytes"`  // MariaDB data_length; PostgreSQL: table heap sizes
	TotalBytes int64  `json:"totalBytes"` // data+index (MariaDB), pg_database_size (PostgreSQL)
	Orders     int64  `json:"orders"`
	Events     int64  `json:"events"`
	Generated  string `json:"generated"`
	GenSeconds int    `json:"generationSeconds"`
}

// The generated schema: a wide table (ints, decimal, datetime, varchar,
// text, and a BLOB/bytea of 384-1152 bytes, about half random bytes and
// half a repeated 16-byte pattern, so partly compressible) holding about
// three quarters of the bytes, and a narrow table of many small rows
// (many rows per MiB, which is what costs the dump and restore tools the
// most per byte).
var mariadbSchema = []string{
	"CREATE DATABASE " + benchDB + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
	`CREATE TABLE ` + benchDB + `.orders (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		customer_id INT NOT NULL,
		status TINYINT NOT NULL,
		amount DECIMAL(12,2) NOT NULL,
		created_at DATETIME NOT NULL,
		email VARCHAR(100) NOT NULL,
		note TEXT,
		payload BLOB,
		KEY orders_customer (customer_id)
	) ENGINE=InnoDB`,
	`CREATE TABLE ` + benchDB + `.events (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		order_id BIGINT NOT NULL,
		kind VARCHAR(20) NOT NULL,
		at DATETIME(6) NOT NULL,
		qty INT NOT NULL,
		price DOUBLE NOT NULL,
		KEY events_order (order_id)
	) ENGINE=InnoDB`,
}

const (
	ordersPerRound = 40000
	eventsPerRound = 200000
)

// mariadbRound inserts one round of rows; %d are the id offset and, for
// events, the number of orders so far.
const mariadbOrders = `INSERT INTO ` + benchDB + `.orders (customer_id, status, amount, created_at, email, note, payload)
SELECT FLOOR(RAND()*1000000), FLOOR(RAND()*5), ROUND(RAND()*1000, 2),
	TIMESTAMP'2024-01-01 00:00:00' + INTERVAL FLOOR(RAND()*31536000) SECOND,
	CONCAT('user', s.seq + %[1]d, '@example', s.seq %% 997, '.com'),
	CONCAT('Order ', s.seq + %[1]d, ': ', REPEAT('please leave the parcel at the back door. ', 1 + FLOOR(RAND()*6)), MD5(RAND())),
	CONCAT(RANDOM_BYTES(256 + FLOOR(RAND()*257)), REPEAT(UNHEX(MD5(s.seq %% 101)), 8 + FLOOR(RAND()*33)))
FROM ` + benchDB + `.seq_1_to_%[2]d s`

const mariadbEvents = `INSERT INTO ` + benchDB + `.events (order_id, kind, at, qty, price)
SELECT 1 + FLOOR(RAND()*%[1]d), ELT(1 + FLOOR(RAND()*5), 'created', 'paid', 'packed', 'shipped', 'delivered'),
	TIMESTAMP'2024-01-01 00:00:00' + INTERVAL FLOOR(RAND()*31536000000000) MICROSECOND,
	1 + FLOOR(RAND()*10), RAND()*100
FROM ` + benchDB + `.seq_1_to_%[2]d s`

var postgresSchema = []string{
	`CREATE TABLE orders (
		id bigserial PRIMARY KEY,
		customer_id int NOT NULL,
		status smallint NOT NULL,
		amount numeric(12,2) NOT NULL,
		created_at timestamptz NOT NULL,
		email varchar(100) NOT NULL,
		note text,
		payload bytea
	)`,
	`CREATE INDEX orders_customer ON orders (customer_id)`,
	`CREATE TABLE events (
		id bigserial PRIMARY KEY,
		order_id bigint NOT NULL,
		kind varchar(20) NOT NULL,
		at timestamptz NOT NULL,
		qty int NOT NULL,
		price double precision NOT NULL
	)`,
	`CREATE INDEX events_order ON events (order_id)`,
}

// The random part: eight SHA-512s of random input (512 bytes) cut to
// 256-512 bytes; the compressible part: a 16-byte pattern repeated 8-40
// times. Rows stay under the 2 kB TOAST threshold, so PostgreSQL stores
// them uncompressed, as MariaDB does.
const postgresOrders = `INSERT INTO orders (customer_id, status, amount, created_at, email, note, payload)
SELECT (random()*1000000)::int, (random()*4)::int, round((random()*1000)::numeric, 2),
	timestamptz '2024-01-01 00:00:00+00' + random() * interval '365 days',
	'user' || g || '@example' || (g %% 997) || '.com',
	'Order ' || g || ': ' || repeat('please leave the parcel at the back door. ', 1 + (random()*5)::int) || md5(random()::text),
	substr(sha512(float8send(random())) || sha512(float8send(random())) || sha512(float8send(random())) || sha512(float8send(random())) ||
		sha512(float8send(random())) || sha512(float8send(random())) || sha512(float8send(random())) || sha512(float8send(random())),
		1, 256 + (random()*256)::int)
	|| decode(repeat(md5((g %% 101)::text), 8 + (random()*32)::int), 'hex')
FROM generate_series(%[1]d + 1, %[1]d + %[2]d) g`

const postgresEvents = `INSERT INTO events (order_id, kind, at, qty, price)
SELECT 1 + (random()*%[1]d)::bigint, (ARRAY['created', 'paid', 'packed', 'shipped', 'delivered'])[1 + (random()*4)::int],
	timestamptz '2024-01-01 00:00:00+00' + random() * interval '365 days', 1 + (random()*9)::int, random()*100
FROM generate_series(1, %[2]d) g`

// sourceDir is where the source database of engine at target size lives.
func sourceDir(root, engine string, target int64) string {
	return filepath.Join(root, "src", fmt.Sprintf("%s-%d-v%d", engine, target, genVersion))
}

// ensureSource starts the cached source server of engine, generating its
// database first when there is no complete one for these parameters.
func ensureSource(ctx context.Context, root, engine string, target int64, regenerate bool) (*dbServer, *sourceInfo, error) {
	dir := sourceDir(root, engine, target)
	infoPath := dir + ".json"
	if !regenerate {
		if b, err := os.ReadFile(infoPath); err == nil {
			var info sourceInfo
			if err := json.Unmarshal(b, &info); err == nil && info.Version == genVersion && info.Target == target && info.Engine == engine {
				log.Printf("%s: reusing the generated database in %s (%s, generated %s)", engine, dir, fmtBytes(info.TotalBytes), info.Generated)
				srv, err := startServer(ctx, engine, dir, info.Password)
				if err != nil {
					return nil, nil, err
				}
				return srv, &info, nil
			}
		}
	}
	os.Remove(infoPath)
	if err := os.RemoveAll(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	log.Printf("%s: generating a database of at least %s in %s (slow; cached for later runs)", engine, fmtBytes(target), dir)
	start := time.Now()
	if err := initDataDir(ctx, engine, dir); err != nil {
		return nil, nil, err
	}
	info := &sourceInfo{Engine: engine, Target: target, Version: genVersion, Password: randomPassword()}
	srv, err := startServer(ctx, engine, dir, info.Password)
	if err != nil {
		return nil, nil, err
	}
	if err := generate(ctx, srv, info); err != nil {
		srv.stop()
		return nil, nil, fmt.Errorf("generate %s data: %w", engine, err)
	}
	info.Generated = time.Now().UTC().Format(time.RFC3339)
	info.GenSeconds = int(time.Since(start).Seconds())
	// Stop and start again, so that every run measures a server started on
	// an existing data directory the same way.
	srv.stop()
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(infoPath, b, 0o600); err != nil {
		return nil, nil, err
	}
	log.Printf("%s: generated %s (data %s) in %v: %d orders, %d events", engine, fmtBytes(info.TotalBytes), fmtBytes(info.DataBytes),
		time.Since(start).Round(time.Second), info.Orders, info.Events)
	srv, err = startServer(ctx, engine, dir, info.Password)
	if err != nil {
		return nil, nil, err
	}
	return srv, info, nil
}

func generate(ctx context.Context, srv *dbServer, info *sourceInfo) error {
	if srv.engine == engMariaDB {
		return generateMariaDB(ctx, srv, info)
	}
	return generatePostgres(ctx, srv, info)
}

func generateMariaDB(ctx context.Context, srv *dbServer, info *sourceInfo) error {
	db, err := srv.open("")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range mariadbSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	var orders int64
	for round := 1; ; round++ {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(mariadbOrders, orders, ordersPerRound)); err != nil {
			return err
		}
		orders += ordersPerRound
		if _, err := db.ExecContext(ctx, fmt.Sprintf(mariadbEvents, orders, eventsPerRound)); err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, "ANALYZE TABLE "+benchDB+".orders, "+benchDB+".events"); err != nil {
			return err
		}
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(DATA_LENGTH), 0), COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0)
			FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, benchDB).Scan(&info.DataBytes, &info.TotalBytes); err != nil {
			return err
		}
		log.Printf("mariadb: round %d: %s (data %s)", round, fmtBytes(info.TotalBytes), fmtBytes(info.DataBytes))
		if info.TotalBytes >= info.Target {
			break
		}
	}
	return countRows(ctx, db, benchDB+".", info)
}

func generatePostgres(ctx context.Context, srv *dbServer, info *sourceInfo) error {
	admin, err := srv.open("postgres")
	if err != nil {
		return err
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+benchDB); err != nil {
		admin.Close()
		return err
	}
	admin.Close()
	db, err := srv.open(benchDB)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range postgresSchema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", firstLine(q), err)
		}
	}
	var orders int64
	for round := 1; ; round++ {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(postgresOrders, orders, ordersPerRound)); err != nil {
			return err
		}
		orders += ordersPerRound
		if _, err := db.ExecContext(ctx, fmt.Sprintf(postgresEvents, orders, eventsPerRound)); err != nil {
			return err
		}
		if err := db.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&info.TotalBytes); err != nil {
			return err
		}
		log.Printf("postgres: round %d: %s", round, fmtBytes(info.TotalBytes))
		if info.TotalBytes >= info.Target {
			break
		}
	}
	// Set hint bits and the visibility map now, so that no dump pays for
	// them (the first reader of new rows writes them back).
	if _, err := db.ExecContext(ctx, "VACUUM (FREEZE, ANALYZE)"); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, `SELECT pg_database_size(current_database()),
		pg_relation_size('orders') + pg_relation_size('events')`).Scan(&info.TotalBytes, &info.DataBytes); err != nil {
		return err
	}
	return countRows(ctx, db, "", info)
}

func countRows(ctx context.Context, db *sql.DB, prefix string, info *sourceInfo) error {
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+prefix+"orders").Scan(&info.Orders); err != nil {
		return err
	}
	return db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+prefix+"events").Scan(&info.Events)
}

// checkRestored compares the row counts of a restored database with the
// source's.
func checkRestored(ctx context.Context, srv *dbServer, info *sourceInfo) error {
	var db *sql.DB
	var err error
	prefix := ""
	if srv.engine == engMariaDB {
		db, err = srv.open("")
		prefix = benchDB + "."
	} else {
		db, err = srv.open(benchDB)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	var got sourceInfo
	if err := countRows(ctx, db, prefix, &got); err != nil {
		return fmt.Errorf("count restored rows: %w", err)
	}
	if got.Orders != info.Orders || got.Events != info.Events {
		return fmt.Errorf("restored %d orders and %d events, the source has %d and %d", got.Orders, got.Events, info.Orders, info.Events)
	}
	return nil
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

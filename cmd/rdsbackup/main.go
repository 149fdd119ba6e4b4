// Command rdsbackup is a self-hosted database backup service whose API is
// wire-compatible with Alibaba Cloud ApsaraDB RDS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "demo") {
		tuneGC(os.Getenv) // the long-running service; restore keeps Go's defaults
	}
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		hangup := make(chan os.Signal, 1)
		signal.Notify(hangup, syscall.SIGHUP)
		m.Hangup = hangup
	}
	os.Exit(m.Run(ctx, os.Args[1:]))
}

// tuneGC sets the collector's defaults unless GOGC or GOMEMLIMIT say
// otherwise. Almost all of the service's garbage is short-lived (a page of
// DescribeBackups makes ~150 KB of it) over a small live heap, so Go's
// default GOGC=100 collects very often: 400 saved 15–20% of the CPU per
// page under load (BENCHMARKS.md). The soft memory limit keeps the Go side
// well inside the service's 200 MiB RSS budget, next to SQLite's page caches
// (which are outside it) and the replay memory (inside it, ~15 MB at 700,000
// requests in 15 minutes); near the limit the collector simply runs more
// often. At 128 MiB the service peaked at 210 MiB under the benchmark's load,
// at 80 MiB at 166 MiB, for the same CPU per request.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(80 << 20)
	}
}

// Main runs the command; its fields replace the process's streams and
// environment so tests can run it in-process.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Ready, when set, is called with the listening address once the service
	// answers requests.
	Ready func(addr string)
	// Hangup, when set, receives SIGHUP: serve reloads its TLS certificate.
	Hangup <-chan os.Signal
}

const usage = `rdsbackup — a self-hosted database backup service with the Alibaba Cloud RDS API

Usage:
  rdsbackup serve [--config FILE]            start the service (without --config: built-in defaults)
  rdsbackup restore (--url URL | --file F)   restore a backup set into a server (see restore -h)
  rdsbackup verify --backup-id ID [--config F] restore a set into a throwaway server and check it (drill)
  rdsbackup rebuild-catalog [--config FILE]  rebuild the catalog's backup sets from the manifests in storage
  rdsbackup catalog copy --from F --to DSN   move a SQLite catalog into PostgreSQL, verified (see catalog -h)
  rdsbackup keys (list|rotate|rewrap)        manage the encryption keys (see keys -h)
  rdsbackup decrypt [--in F] [--out F]       decrypt an object copied from the storage (see decrypt -h)
  rdsbackup demo [--dir DIR] [--listen ADDR] try it: throwaway MariaDB and PostgreSQL, backed up, served
  rdsbackup version                          print the version

Run 'rdsbackup serve -h' for the flags of serve.
`

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

// Run executes one subcommand and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = m.serve(ctx, args[1:])
	case "restore":
		err = m.restore(ctx, args[1:])
	case "verify":
		err = m.verify(ctx, args[1:])
	case "rebuild-catalog":
		err = m.rebuildCatalog(ctx, args[1:])
	case "catalog":
		err = m.catalogCommand(ctx, args[1:])
	case "keys":
		err = m.keysCommand(ctx, args[1:])
	case "decrypt":
		err = m.decrypt(ctx, args[1:])
	case "demo":
		err = m.demo(ctx, args[1:])
	case "version":
		fmt.Fprintln(m.Stdout, Version)
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
	default:
		fmt.Fprintf(m.Stderr, "rdsbackup: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(m.Stderr, "rdsbackup: %v\n", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(m.Stderr, "rdsbackup: %v\n", err)
		return exitFailed
	}
	return exitOK
}

type usageError struct{ error }

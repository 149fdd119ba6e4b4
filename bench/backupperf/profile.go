package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/aesgcm"
	"github.com/rdsbackup/rdsbackup/backup"
	"github.com/rdsbackup/rdsbackup/catalog/sqlite"
	"github.com/rdsbackup/rdsbackup/engine/mysql"
	"github.com/rdsbackup/rdsbackup/engine/postgres"
	"github.com/rdsbackup/rdsbackup/storage/localfs"
)

// The profiling mode (-profile DIR) runs backups and restores in this
// process with the packages `rdsbackup serve` and `rdsbackup restore` use,
// so that pprof sees where rdsbackup's time and memory go, and compares
// variants that separate the costs or try a change without editing the
// service's code. Variants (-profile-levels, comma-separated):
//
//	bare       the dump tools alone to /dev/null (the main benchmark's arm a)
//	discard    the engine's Backup into a sink that reads and drops the
//	           bytes: the dump tool, the engine code and the pipe only
//	store      the engine's Backup into a sink that writes the raw bytes with
//	           CRC64 to a file and fsyncs it: everything but compression
//	fastest    backup.Runner on a SQLite catalog and local storage with zstd
//	           SpeedFastest: the service's code path (arm b)
//	default    the same with zstd SpeedDefault
//	emu:OPTS   the dump tools into a pipe read by a copy of the set writer
//	           (same zstd options, both CRC64s, fsync): OPTS are
//	           colon-separated knobs: c=N encoder concurrency (default 1),
//	           pipe=BYTES pipe buffer (F_SETPIPE_SZ; default the kernel's
//	           64 KiB), crc1 (one CRC64 pass instead of two), nocomp (no
//	           zstd), noentropy (zstd without Huffman-coded literals),
//	           raw (drop the bytes: pipe cost alone), paced (after a short
//	           read, wait 1 ms before the next). emu:c=1
//	           reproduces the service; the others measure proposed changes.
//	pipe       restore: the bare dump files piped into the client (arm d)
//	restore    restore: what `rdsbackup restore --file` does (CRC64 of the
//	           file, CRC64 of each part, zstd decode, the engine's
//	           RestoreLogical/RestoreGlobals) from the last fastest set,
//	           without the download (arm c minus HTTP)
//
// Each variant runs -runs times, the order reversed every other run; the
// first run of each writes <engine>-<variant>.cpu.pprof and .allocs.pprof
// into the -profile directory.

type profVariant struct {
	name    string
	restore bool // needs a fresh target server
	run     func(ctx context.Context, target *dbServer) (int64, error)
}

func runProfile(ctx context.Context, o *options) error {
	if err := mkdirs(o.profile); err != nil {
		return err
	}
	work := filepath.Join(o.dir, "work-profile")
	os.RemoveAll(work)
	if err := mkdirs(work); err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Printf("\n- %s; load average at start %s\n", runtime.Version(), loadAvg())
	fmt.Printf("\n| engine | variant | run | wall | rdsbackup (Go) CPU | tools CPU | server CPU | peak RSS (VmHWM) | bytes out |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, engine := range o.engines {
		if err := profileEngine(ctx, o, engine, work); err != nil {
			return fmt.Errorf("%s: %w", engine, err)
		}
	}
	fmt.Printf("\n- load average at end %s\n", loadAvg())
	return nil
}

func profileEngine(ctx context.Context, o *options, engine, work string) error {
	src, info, err := ensureSource(ctx, o.dir, engine, o.size, o.regenerate)
	if err != nil {
		return err
	}
	defer src.stop()

	inst := &rdsbackup.Instance{ID: "bench", Engine: rdsbackup.EngineMariaDB, DSN: src.mysqlConfig("").FormatDSN()}
	myEng := &mysql.Engine{Flavor: rdsbackup.EngineMariaDB, TempDir: work}
	pgEng := &postgres.Engine{TempDir: work}
	var eng rdsbackup.BackupEngine = myEng
	if engine == engPostgres {
		inst = &rdsbackup.Instance{ID: "bench", Engine: rdsbackup.EnginePostgreSQL, DSN: src.pgURL("postgres", src.password)}
		eng = pgEng
	}
	key := make([]byte, aesgcm.KeySize)
	rand.Read(key)
	box, err := aesgcm.New(key)
	if err != nil {
		return err
	}
	cat := sqlite.NewDB(filepath.Join(work, engine+"-catalog.db"), box)
	if err := cat.Open(); err != nil {
		return err
	}
	defer cat.Close()
	if err := cat.SyncInstances(ctx, []*rdsbackup.Instance{inst}); err != nil {
		return err
	}
	storeDir := filepath.Join(work, engine+"-storage")
	store := localfs.New(storeDir)

	home := filepath.Join(work, engine+"-home")
	if err := mkdirs(home); err != nil {
		return err
	}
	t, err := resolveTools(engine, home)
	if err != nil {
		return err
	}
	if t.databases, err = listDatabases(ctx, src); err != nil {
		return err
	}
	t.optFile = filepath.Join(home, "source.cnf")
	if err := mariadbOptFile(t.optFile, src); err != nil {
		return err
	}
	t.pgEnv = pgEnv(src)
	template := filepath.Join(o.dir, "template", engine)
	if err := ensureTemplate(ctx, template, engine); err != nil {
		return err
	}
	dumpDir := filepath.Join(work, engine+"-dump")
	if err := mkdirs(dumpDir); err != nil {
		return err
	}

	lastSet := "" // the object of the last fastest backup, for the restore variant
	runner := func(level zstd.EncoderLevel) func(ctx context.Context, _ *dbServer) (int64, error) {
		return func(ctx context.Context, _ *dbServer) (int64, error) {
			r := backup.NewRunner(cat, store, map[rdsbackup.Engine]rdsbackup.BackupEngine{inst.Engine: eng})
			r.Level = level
			job, err := r.StartBackup(ctx, inst.ID, backup.Options{Method: rdsbackup.MethodLogical})
			if err != nil {
				return 0, err
			}
			for r.Running(inst.ID) {
				time.Sleep(10 * time.Millisecond)
			}
			set, err := cat.FindBackupSet(ctx, job.ID)
			if err != nil {
				return 0, err
			}
			if set.Status != rdsbackup.BackupSuccess {
				return 0, fmt.Errorf("backup %d: %s: %s", set.ID, set.Status, set.FailureReason)
			}
			if lastSet != "" {
				os.Remove(lastSet) // keep the disk from filling up over many runs
			}
			lastSet = filepath.Join(storeDir, backup.ObjectKey(inst.ID, set.ID))
			return set.Size, nil
		}
	}
	var variants []profVariant
	for _, name := range strings.Split(o.profLevel, ",") {
		name = strings.TrimSpace(name)
		v := profVariant{name: name}
		switch {
		case name == "bare":
			v.run = func(ctx context.Context, _ *dbServer) (int64, error) {
				_, err := bareDump(ctx, t, src, "")
				return 0, err
			}
		case name == "discard":
			v.run = func(ctx context.Context, _ *dbServer) (int64, error) {
				s := &discardSink{}
				_, err := eng.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, s)
				return s.n, err
			}
		case name == "store":
			v.run = func(ctx context.Context, _ *dbServer) (int64, error) {
				f, err := os.Create(filepath.Join(work, "store.raw"))
				if err != nil {
					return 0, err
				}
				defer os.Remove(f.Name())
				defer f.Close()
				s := &storeSink{w: f, crc: crc64.New(crc64.MakeTable(crc64.ECMA))}
				if _, err := eng.Backup(ctx, inst, rdsbackup.BackupRequest{Method: rdsbackup.MethodLogical}, s); err != nil {
					return 0, err
				}
				return s.n, f.Sync()
			}
		case name == "fastest":
			v.run = runner(zstd.SpeedFastest)
		case name == "default":
			v.run = runner(zstd.SpeedDefault)
		case strings.HasPrefix(name, "emu"):
			knobs, err := parseEmu(name)
			if err != nil {
				return err
			}
			v.run = func(ctx context.Context, _ *dbServer) (int64, error) {
				return emuBackup(ctx, t, src, filepath.Join(work, "emu.zst"), knobs)
			}
		case strings.HasPrefix(name, "feed:") || strings.HasPrefix(name, "drain:"):
			mode := name
			v.run = func(ctx context.Context, _ *dbServer) (int64, error) {
				return pipeMicro(ctx, mode, dumpDir)
			}
		case name == "pipe":
			v.restore = true
			v.run = func(ctx context.Context, target *dbServer) (int64, error) {
				_, err := directPipe(ctx, t, dumpDir, target)
				return 0, err
			}
		case name == "restore":
			v.restore = true
			v.run = func(ctx context.Context, target *dbServer) (int64, error) {
				if lastSet == "" {
					return 0, errors.New("the restore variant needs a fastest variant before it")
				}
				return restoreSet(ctx, lastSet, target, myEng, pgEng)
			}
		default:
			return fmt.Errorf("-profile-levels: unknown variant %q", name)
		}
		variants = append(variants, v)
	}
	// Warm-up, unmeasured; it also makes the dump files of the pipe variant.
	if _, err := bareDump(ctx, t, src, dumpDir); err != nil {
		return err
	}
	for run := 0; run < o.runs; run++ {
		order := variants
		if run%2 == 1 {
			order = make([]profVariant, len(variants))
			for i, v := range variants {
				order[len(variants)-1-i] = v
			}
			// A restore of the last set must come after a backup.
			for i := range order {
				if order[i].name == "restore" {
					for j := i + 1; j < len(order); j++ {
						if order[j].name == "fastest" {
							order[i], order[j] = order[j], order[i]
							break
						}
					}
				}
			}
		}
		for _, v := range order {
			if err := profileOne(ctx, o, engine, v, run, src, template, work, info); err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
		}
	}
	return nil
}

func profileOne(ctx context.Context, o *options, engine string, v profVariant, run int, src *dbServer, template, work string, info *sourceInfo) error {
	server := src
	if v.restore {
		var err error
		server, err = freshTarget(ctx, template, filepath.Join(work, "target"), engine, src.password)
		if err != nil {
			return err
		}
		defer server.remove()
	}
	var cpuFile *os.File
	if run == 0 {
		var err error
		if cpuFile, err = os.Create(filepath.Join(o.profile, engine+"-"+safeName(v.name)+".cpu.pprof")); err != nil {
			return err
		}
		defer cpuFile.Close()
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			return err
		}
	}
	runtime.GC()
	clearRefs(os.Getpid())
	var self0, kids0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self0)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids0)
	srv0 := treeCPU(server.pid())
	samp := startSampler(os.Getpid(), 100*time.Millisecond)
	load := loadAvg()
	start := time.Now()
	n, err := v.run(ctx, server)
	wall := time.Since(start)
	peak, hwm, _ := samp.finish()
	if cpuFile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	var self1, kids1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self1)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids1)
	time.Sleep(300 * time.Millisecond)
	srv := treeCPU(server.pid()) - srv0
	cpu := func(a, b syscall.Rusage) time.Duration {
		return time.Duration(a.Utime.Nano() + a.Stime.Nano() - b.Utime.Nano() - b.Stime.Nano())
	}
	if v.restore {
		if err := checkRestored(ctx, server, info); err != nil {
			return err
		}
	}
	if run == 0 {
		if f, err := os.Create(filepath.Join(o.profile, engine+"-"+safeName(v.name)+".allocs.pprof")); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
	}
	fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s (%s) | %s |\n", engineName(engine), v.name, run+1, secs(wall),
		secs(cpu(self1, self0)), secs(cpu(kids1, kids0)), secs(srv), fmtBytes(peak), fmtBytes(hwm), fmtBytes(n))
	log.Printf("%s %s run %d: %.2fs (load %s)", engine, v.name, run+1, wall.Seconds(), load)
	return nil
}

func safeName(s string) string {
	return strings.NewReplacer(":", "_", "=", "", "/", "_").Replace(s)
}

// discardSink reads every part and drops it.
type discardSink struct{ n int64 }

func (s *discardSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	n, err := discard(r)
	s.n += n
	return err
}

// storeSink writes every part uncompressed with a CRC64, as the set writer
// does minus zstd.
type storeSink struct {
	w   io.Writer
	crc io.Writer
	n   int64
}

func (s *storeSink) WritePart(ctx context.Context, part rdsbackup.Part, r io.Reader) error {
	n, err := io.Copy(io.MultiWriter(s.w, s.crc), r)
	s.n += n
	return err
}

// emuKnobs are the settings of an emulated backup pipeline.
type emuKnobs struct {
	concurrency int
	pipeSize    int
	oneCRC      bool
	noCompress  bool
	noEntropy   bool
	raw         bool
	paced       bool
}

func parseEmu(name string) (emuKnobs, error) {
	k := emuKnobs{concurrency: 1}
	for _, f := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(name, "emu"), ":"), ":") {
		switch key, val, _ := strings.Cut(f, "="); key {
		case "":
		case "c":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return k, fmt.Errorf("%s: bad c=%s", name, val)
			}
			k.concurrency = n
		case "pipe":
			n, err := parseSize(val)
			if err != nil {
				return k, fmt.Errorf("%s: %w", name, err)
			}
			k.pipeSize = int(n)
		case "crc1":
			k.oneCRC = true
		case "nocomp":
			k.noCompress = true
		case "noentropy":
			k.noEntropy = true
		case "paced":
			k.paced = true
		case "raw":
			k.raw = true
		default:
			return k, fmt.Errorf("%s: unknown knob %q", name, f)
		}
	}
	return k, nil
}

// emuBackup runs the dump tools into a pipe read by a copy of the set
// writer's data path (backup/setfile.go: zstd with the same options, a
// CRC64 of the set and one of each part, written to a file, fsynced),
// with the knobs changed.
func emuBackup(ctx context.Context, t *tools, src *dbServer, path string, k emuKnobs) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	table := crc64.MakeTable(crc64.ECMA)
	setCRC := crc64.New(table)
	var written int64
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(k.concurrency),
		zstd.WithWindowSize(4<<20), zstd.WithEncoderCRC(true), zstd.WithNoEntropyCompression(k.noEntropy))
	if err != nil {
		return 0, err
	}
	env := dumpEnv(t, src)
	for _, p := range dumpCommands(t, src) {
		pr, pw, err := os.Pipe()
		if err != nil {
			return 0, err
		}
		if k.pipeSize > 0 {
			if err := setPipeSize(pr, k.pipeSize); err != nil {
				pr.Close()
				pw.Close()
				return 0, err
			}
		}
		cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
		cmd.Env, cmd.Dir, cmd.Stdout = env, t.home, pw
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			pr.Close()
			pw.Close()
			return 0, err
		}
		pw.Close()
		var src io.Reader = pr
		if k.paced {
			src = &pacedReader{r: pr, size: max(k.pipeSize, 64<<10)}
		}
		var partCRC hash.Hash64 = crc64.New(table)
		out := &emuWriter{f: f, set: setCRC, part: partCRC, n: &written, oneCRC: k.oneCRC}
		var copyErr error
		switch {
		case k.raw:
			_, copyErr = discard(src)
		case k.noCompress:
			_, copyErr = io.Copy(out, src)
		default:
			enc.Reset(out)
			if _, copyErr = io.Copy(enc, src); copyErr == nil {
				copyErr = enc.Close()
			}
		}
		pr.Close()
		waitErr := cmd.Wait()
		if err := errors.Join(copyErr, waitErr); err != nil {
			return 0, fmt.Errorf("part %s: %w", p.part, err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return written, nil
}

// pacedReader waits a millisecond before reading again after a read that
// found less than a quarter of what it asked for (or of the pipe's size),
// so that a tool writing 4 KiB at a time fills the pipe between reads
// instead of waking the reader for each write.
type pacedReader struct {
	r     io.Reader
	size  int
	short bool
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.short {
		time.Sleep(time.Millisecond)
	}
	n, err := p.r.Read(b)
	p.short = err == nil && n < min(len(b), p.size)/4
	return n, err
}

// emuWriter is the set writer's write: the object, the set CRC64 and the
// part CRC64 (or, with oneCRC, only the part's; the set's would be
// combined from the parts').
type emuWriter struct {
	f         *os.File
	set, part hash.Hash64
	n         *int64
	oneCRC    bool
}

func (w *emuWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if !w.oneCRC {
		w.set.Write(p[:n])
	}
	w.part.Write(p[:n])
	*w.n += int64(n)
	return n, err
}

// setPipeSize sets a pipe's buffer size (F_SETPIPE_SZ) without putting the
// file into blocking mode (as File.Fd would).
func setPipeSize(f *os.File, size int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		const fSetPipeSz = 1031 // F_SETPIPE_SZ
		_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(size))
		if errno != 0 {
			serr = fmt.Errorf("F_SETPIPE_SZ %d: %w (see /proc/sys/fs/pipe-max-size)", size, errno)
		}
	})
	return errors.Join(err, serr)
}

// restoreSet does what `rdsbackup restore --file` does with a set file
// (cmd/rdsbackup/restore.go): CRC64 of the whole file, the manifest from
// its trailer, CRC64 of each part, then each part decoded (zstd, decoder
// concurrency 1) into the engine's RestoreGlobals or RestoreLogical.
func restoreSet(ctx context.Context, path string, target *dbServer, my *mysql.Engine, pg *postgres.Engine) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	table := crc64.MakeTable(crc64.ECMA)
	h := crc64.New(table)
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, err
	}
	m, err := backup.ReadTrailer(f, n)
	if err != nil {
		return 0, err
	}
	for _, p := range m.Parts {
		h := crc64.New(table)
		if _, err := io.Copy(h, io.NewSectionReader(f, p.Offset, p.Length)); err != nil {
			return 0, err
		}
		if got := backup.FormatChecksum(h.Sum64()); got != p.Checksum {
			return 0, fmt.Errorf("part %s: CRC64 %s, manifest says %s", p.Name, got, p.Checksum)
		}
	}
	dsn := target.targetDSN()
	for _, p := range m.Parts {
		dec, err := zstd.NewReader(io.NewSectionReader(f, p.Offset, p.Length), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return 0, err
		}
		switch {
		case p.Kind == rdsbackup.PartGlobals:
			err = pg.RestoreGlobals(ctx, dsn, dec)
		case target.engine == engPostgres:
			err = pg.RestoreLogical(ctx, dsn, p.Name, dec)
		default:
			err = my.RestoreLogical(ctx, dsn, p.Name, dec)
		}
		dec.Close()
		if err != nil {
			return 0, fmt.Errorf("restore %s: %w", p.Name, err)
		}
	}
	return n, nil
}

// discard reads r to the end in 128 KiB reads (io.Discard's ReadFrom would
// read 8 KiB at a time), as the zstd encoder reads up to a block.
func discard(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{io.Discard}, r, make([]byte, 128<<10))
}

// pipeMicro measures what moving the dump through a pipe costs this
// process, without servers: the bare dump files (page cache) are the data.
//
//	feed:MODE   this process writes the data into a pipe read 4 KiB at a
//	            time by `dd bs=4096` (the mariadb client reads its standard
//	            input 4 KiB at a time), as the restore feeds the client
//	drain:MODE  `dd bs=4096` writes the data 4 KiB at a time (as
//	            mariadb-dump does) into a pipe this process reads 128 KiB
//	            at a time, as the backup reads the dump tool
//
// MODE: netpoll (os.Pipe, what exec's StdinPipe/StdoutPipe give: the
// Go poller parks and wakes the goroutine for every chunk), block (a pipe
// in blocking mode, which the poller leaves alone: the thread sleeps in
// the kernel), paced (netpoll, but the writer waits while the pipe holds
// more than half its size, and the reader waits 2 ms after a short read,
// so each wake-up moves a large chunk); with :pipe=SIZE for F_SETPIPE_SZ.
func pipeMicro(ctx context.Context, name, dumpDir string) (int64, error) {
	parts := strings.Split(name, ":")
	dir, mode := parts[0], parts[1]
	pipeSize, slow := 0, false
	limit := int64(1) << 62
	for _, p := range parts[2:] {
		if v, ok := strings.CutPrefix(p, "pipe="); ok {
			n, err := parseSize(v)
			if err != nil {
				return 0, err
			}
			pipeSize = int(n)
		}
		if p == "slow" {
			// A consumer like the mariadb client restoring into a server:
			// 4 KiB reads at about 32 MiB/s; 256 MiB of data.
			slow, limit = true, 256<<20
		}
	}
	ents, err := os.ReadDir(dumpDir)
	if err != nil {
		return 0, err
	}
	var files []string
	for _, e := range ents {
		files = append(files, filepath.Join(dumpDir, e.Name()))
	}
	var pr, pw *os.File
	switch mode {
	case "netpoll", "paced":
		pr, pw, err = os.Pipe()
	case "block":
		var fds [2]int
		if err = syscall.Pipe2(fds[:], syscall.O_CLOEXEC); err == nil {
			pr, pw = os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")
		}
	default:
		return 0, fmt.Errorf("%s: unknown mode %q", name, mode)
	}
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	defer pw.Close()
	size := 64 << 10
	if pipeSize > 0 {
		if err := setPipeSize(pr, pipeSize); err != nil {
			return 0, err
		}
		size = pipeSize
	}
	var n int64
	switch dir {
	case "feed":
		cmd := exec.CommandContext(ctx, "dd", "bs=4096", "of=/dev/null", "status=none")
		if slow {
			self, err := os.Executable()
			if err != nil {
				return 0, err
			}
			cmd = exec.CommandContext(ctx, self, "-consume", "4096:33554432")
		}
		cmd.Stdin = pr
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		pr.Close()
		buf := make([]byte, 256<<10)
		for _, path := range files {
			f, err := os.Open(path)
			if err != nil {
				return 0, err
			}
			for n < limit {
				m, rerr := f.Read(buf)
				if m > 0 {
					if mode == "paced" {
						for queued(pw) > size/2 {
							time.Sleep(2 * time.Millisecond)
						}
					}
					if _, err := pw.Write(buf[:m]); err != nil {
						f.Close()
						return 0, err
					}
					n += int64(m)
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					f.Close()
					return 0, rerr
				}
			}
			f.Close()
		}
		pw.Close()
		return n, cmd.Wait()
	case "drain":
		cmd := exec.CommandContext(ctx, "sh", "-c", `for f in "$@"; do dd if="$f" bs=4096 status=none; done`, "sh")
		cmd.Args = append(cmd.Args, files...)
		cmd.Stdout = pw
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		pw.Close()
		buf := make([]byte, 128<<10)
		for {
			m, err := pr.Read(buf)
			n += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, err
			}
			if mode == "paced" && m < len(buf)/2 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		return n, cmd.Wait()
	}
	return 0, fmt.Errorf("%s: feed or drain?", name)
}

// queued returns the bytes waiting in a pipe (FIONREAD).
func queued(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	rc.Control(func(fd uintptr) {
		syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	})
	return int(n)
}

// consume is the slow consumer of the feed:…:slow variants (the hidden
// -consume CHUNK:RATE mode): it reads its standard input CHUNK bytes at a
// time and spins so as not to exceed RATE bytes per second, as a client
// that parses and sends what it reads would.
func consume(spec string) error {
	c, r, _ := strings.Cut(spec, ":")
	chunk, err1 := strconv.Atoi(c)
	rate, err2 := strconv.ParseFloat(r, 64)
	if err := errors.Join(err1, err2); err != nil || chunk < 1 || rate <= 0 {
		return fmt.Errorf("-consume %q: want CHUNK:RATE", spec)
	}
	buf := make([]byte, chunk)
	start := time.Now()
	var total int64
	for {
		n, err := os.Stdin.Read(buf)
		total += int64(n)
		for time.Since(start).Seconds() < float64(total)/rate {
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

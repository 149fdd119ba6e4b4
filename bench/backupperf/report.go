package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where the benchmark ran.
type machine struct {
	Started   string   `json:"started"`
	CPUs      int      `json:"cpus"`
	CPUModel  string   `json:"cpuModel"`
	Memory    string   `json:"memory"`
	Kernel    string   `json:"kernel"`
	Go        string   `json:"go"`
	Tools     []string `json:"tools"`
	Repo      string   `json:"repo"`
	Alts      []string `json:"alts,omitempty"`
	LoadStart string   `json:"loadStart"`
	LoadEnd   string   `json:"loadEnd"`
	Duration  string   `json:"duration"`
}

func machineInfo(engines []string) *machine {
	m := &machine{Started: time.Now().UTC().Format("20060102T150405Z"), CPUs: runtime.NumCPU(), LoadStart: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimPrefix(sc.Text(), "MemTotal:"), "%d", &kb)
				m.Memory = fmtBytes(kb << 10)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	version := func(path string, args ...string) {
		if path == "" {
			return
		}
		out, err := exec.Command(path, args...).CombinedOutput()
		if err == nil {
			m.Tools = append(m.Tools, strings.TrimSpace(firstLine(string(out))))
		}
	}
	for _, e := range engines {
		if e == engMariaDB {
			for _, n := range []string{"mariadbd", "mariadb-dump", "mariadb"} {
				p, _ := lookPath(n)
				version(p, "--version")
			}
		} else if bin, err := postgresBinDir(); err == nil {
			for _, n := range []string{"postgres", "pg_dump", "pg_restore"} {
				version(filepath.Join(bin, n), "--version")
			}
		}
	}
	return m
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(f []float64) float64 {
	if len(f) == 0 {
		return 0
	}
	s := slices.Clone(f)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *engineResult) walls(arm string) []time.Duration {
	var out []time.Duration
	for _, a := range r.Arms {
		if a.Arm == arm {
			out = append(out, a.Wall)
		}
	}
	return out
}

func (r *engineResult) arm(arm string, run int) *armResult {
	for _, a := range r.Arms {
		if a.Arm == arm && a.Run == run {
			return a
		}
	}
	return nil
}

// pairedRatios are num/den of the same run, for every run with both.
func (r *engineResult) pairedRatios(num, den string) []float64 {
	var out []float64
	for _, a := range r.Arms {
		if a.Arm != num {
			continue
		}
		if b := r.arm(den, a.Run); b != nil && b.Wall > 0 {
			out = append(out, a.Wall.Seconds()/b.Wall.Seconds())
		}
	}
	return out
}

func (r *engineResult) peak(arm string) int64 {
	var p int64
	for _, a := range r.Arms {
		if a.Arm == arm {
			p = max(p, a.PeakRSS, a.HWM)
		}
	}
	return p
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func medMin(d []time.Duration) string {
	if len(d) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s)", secs(median(d)), secs(slices.Min(d)))
}

func ratioCell(r *engineResult, num, den string) string {
	p := r.pairedRatios(num, den)
	n, d := r.walls(num), r.walls(den)
	if len(p) == 0 || len(n) == 0 || len(d) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f (%.3f)", medianF(p), slices.Min(n).Seconds()/slices.Min(d).Seconds())
}

func engineName(e string) string {
	if e == engMariaDB {
		return "MariaDB"
	}
	return "PostgreSQL"
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// report prints the Markdown report.
func report(w io.Writer, o *options, m *machine, results []*engineResult) {
	labels := []string{""}
	for _, a := range o.alts {
		labels = append(labels, a.label)
	}
	fmt.Fprintf(w, "\n## Machine\n\n")
	fmt.Fprintf(w, "- %d CPUs: %s; %s memory; Linux %s\n", m.CPUs, m.CPUModel, m.Memory, m.Kernel)
	fmt.Fprintf(w, "- %s\n", m.Go)
	for _, t := range m.Tools {
		fmt.Fprintf(w, "- %s\n", t)
	}
	fmt.Fprintf(w, "- rdsbackup: %s\n", m.Repo)
	for _, a := range m.Alts {
		fmt.Fprintf(w, "- alternative: %s\n", a)
	}
	fmt.Fprintf(w, "- load average (1/5/15 min) at start: %s; at end: %s; duration %s\n", m.LoadStart, m.LoadEnd, m.Duration)
	cmd := fmt.Sprintf("go run ./bench/backupperf -size %s -engines %s -runs %d", fmtSizeFlag(o.size), strings.Join(o.engines, ","), o.runs)
	for _, a := range o.alts {
		cmd += fmt.Sprintf(" -alt %s=%s", a.label, a.repo)
	}
	fmt.Fprintf(w, "- command: `%s`\n", cmd)

	fmt.Fprintf(w, "\n## Summary (median of %d runs, minimum in parentheses)\n\n", o.runs)
	fmt.Fprintln(w, "| engine | database on disk | dump (bare) | set (zstd) | bare dump → /dev/null | rdsbackup backup | backup ratio | direct pipe → client | rdsbackup restore | restore ratio | service peak RSS | restore peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		for _, l := range labels {
			name := engineName(r.Engine)
			if l != "" {
				name += " [" + l + "]"
			}
			ba, ra := backupArm(l), restoreArm(l)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				name, fmtBytes(r.Source.TotalBytes), fmtBytes(r.DumpSize), fmtBytes(r.SetSize),
				medMin(r.walls(armBareDump)), medMin(r.walls(ba)), ratioCell(r, ba, armBareDump),
				medMin(r.walls(armDirectPipe)), medMin(r.walls(ra)), ratioCell(r, ra, armDirectPipe),
				fmtBytes(r.peak(ba)), fmtBytes(r.peak(ra)))
		}
	}
	fmt.Fprintln(w, "\nRatios: median of the per-run ratios (each run measures every arm back to back), and in parentheses min/min.")
	for _, r := range results {
		if z := r.walls(armZstdCLI); len(z) > 0 {
			fmt.Fprintf(w, "\n%s reference, `%s` (fsynced): %s; ratio to the bare dump %s; rdsbackup backup / this: %s\n",
				engineName(r.Engine), armZstdCLI, medMin(z), ratioCell(r, armZstdCLI, armBareDump), ratioCell(r, armRdsBackup, armZstdCLI))
		}
	}

	fmt.Fprintln(w, "\n## Targets")
	fmt.Fprintln(w)
	for _, r := range results {
		for _, l := range labels {
			name := engineName(r.Engine)
			if l != "" {
				name += " [" + l + "]"
			}
			ba, ra := backupArm(l), restoreArm(l)
			if p := r.pairedRatios(ba, armBareDump); len(p) > 0 {
				fmt.Fprintf(w, "- %s backup ≤ 1.10× bare dump: %s (%.3f)\n", name, verdict(medianF(p) <= 1.10), medianF(p))
			}
			if p := r.pairedRatios(ra, armDirectPipe); len(p) > 0 {
				fmt.Fprintf(w, "- %s restore ≤ 1.10× direct pipe: %s (%.3f)\n", name, verdict(medianF(p) <= 1.10), medianF(p))
			}
			if p := r.peak(ba); p > 0 {
				fmt.Fprintf(w, "- %s service RSS < 100 MiB during the backup: %s (%s)\n", name, verdict(p < 100<<20), fmtBytes(p))
			}
			if p := r.peak(ra); p > 0 {
				fmt.Fprintf(w, "- %s restore command RSS < 100 MiB: %s (%s)\n", name, verdict(p < 100<<20), fmtBytes(p))
			}
		}
	}

	fmt.Fprintln(w, "\n## Runs")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CPU columns: the rdsbackup process itself (service or restore command); the engine tools it or the benchmark ran; the database server's process tree.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| engine | run | arm | order | wall | rdsbackup CPU | tools CPU | server CPU | rdsbackup peak RSS (VmHWM) | note | load avg before |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		for _, a := range r.Arms {
			rss, note := "–", ""
			if a.PeakRSS > 0 || a.HWM > 0 {
				rss = fmt.Sprintf("%s (%s)", fmtBytes(a.PeakRSS), fmtBytes(a.HWM))
			}
			switch {
			case strings.HasPrefix(a.Arm, armRdsBackup):
				note = fmt.Sprintf("API start→end %v, set %s", a.APIDuration, fmtBytes(a.Bytes))
			case strings.HasPrefix(a.Arm, armRdsRestore) && a.Download > 0:
				note = fmt.Sprintf("download+CRC %s", secs(a.Download))
			}
			if a.SysR+a.SysW > 0 {
				note += fmt.Sprintf("; %dk reads, %dk writes", a.SysR/1000, a.SysW/1000)
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", engineName(r.Engine), a.Run, a.Arm, a.Order+1,
				secs(a.Wall), secs(a.RdsCPU), secs(a.ToolCPU), secs(a.ServerCPU), rss, note, a.LoadBefore)
		}
	}
	fmt.Fprintln(w)
	for _, r := range results {
		s := r.Source
		fmt.Fprintf(w, "%s source: %d orders + %d events rows; on disk %s (table data %s); generated in %ds.\n",
			engineName(r.Engine), s.Orders, s.Events, fmtBytes(s.TotalBytes), fmtBytes(s.DataBytes), s.GenSeconds)
	}
}

func fmtSizeFlag(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprint(n)
}

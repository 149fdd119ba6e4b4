package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pgVersion is a PostgreSQL major version as a number: 1500 for 15, 906 for
// 9.6 (before version 10 the major version had two parts).
type pgVersion int

func (v pgVersion) String() string {
	if v >= 1000 {
		return strconv.Itoa(int(v) / 100)
	}
	return fmt.Sprintf("%d.%d", v/100, v%100)
}

// versionFromNum converts server_version_num (150010, 90624) to a major
// version.
func versionFromNum(num int) pgVersion {
	if num >= 100000 {
		return pgVersion(num / 10000 * 100)
	}
	return pgVersion(num / 100)
}

var toolVersionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// parseToolVersion reads the major version from "pg_dump (PostgreSQL) 15.10
// (Debian 15.10-1)".
func parseToolVersion(out string) (pgVersion, error) {
	m := toolVersionRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected --version output %q", strings.TrimSpace(out))
	}
	major, _ := strconv.Atoi(m[1])
	if major >= 10 {
		return pgVersion(major * 100), nil
	}
	minor, _ := strconv.Atoi(m[2])
	return pgVersion(major*100 + minor), nil
}

// debianBinGlob is where Debian and Ubuntu install each major version.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

var versionCache sync.Map // tool path → pgVersion

// toolVersion runs path --version (once per path).
func toolVersion(ctx context.Context, path string) (pgVersion, error) {
	if v, ok := versionCache.Load(path); ok {
		return v.(pgVersion), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("run %s --version: %w", path, err)
	}
	v, err := parseToolVersion(string(out))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	versionCache.Store(path, v)
	return v, nil
}

// candidate is one installed copy of a tool.
type candidate struct {
	path    string
	version pgVersion
}

// candidates lists the installed copies of a tool, oldest first.
func (e *Engine) candidates(ctx context.Context, name string) ([]candidate, error) {
	var paths []string
	if e.BinDir != "" {
		p := filepath.Join(e.BinDir, name)
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s is not in BinDir %s", name, e.BinDir)
		}
		paths = []string{p}
	} else {
		dirs, _ := filepath.Glob(debianBinGlob)
		for _, d := range dirs {
			if fi, err := os.Stat(filepath.Join(d, name)); err == nil && !fi.IsDir() {
				paths = append(paths, filepath.Join(d, name))
			}
		}
		if len(paths) == 0 {
			p, err := exec.LookPath(name)
			if err != nil {
				return nil, fmt.Errorf("%s is not installed: found neither %s/%s nor %s in PATH; install the PostgreSQL client tools or set BinDir",
					name, debianBinGlob, name, name)
			}
			paths = []string{p}
		}
	}
	var out []candidate
	var errs []error
	for _, p := range paths {
		v, err := toolVersion(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, candidate{p, v})
	}
	if len(out) == 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// findTool picks the copy of a tool to use against a server of version
// server: one not older than the server (pg_dump refuses newer servers, and
// the other tools are only promised to work with servers up to their own
// version) — the oldest such for dumping, so archives stay readable by the
// pg_restore of the server's version, or the newest for restoring, which
// reads archives of every older pg_dump.
func (e *Engine) findTool(ctx context.Context, name string, server pgVersion, newest bool) (string, error) {
	cands, err := e.candidates(ctx, name)
	if err != nil {
		return "", err
	}
	var fit []candidate
	for _, c := range cands {
		if c.version >= server {
			fit = append(fit, c)
		}
	}
	if len(fit) == 0 {
		var found []string
		for _, c := range cands {
			found = append(found, fmt.Sprintf("%s %s (%s)", name, c.version, c.path))
		}
		return "", fmt.Errorf("no %s for a PostgreSQL %s server: found %s, and %s refuses servers newer than itself; install the PostgreSQL %s client tools (e.g. the postgresql-client-%s package) or set BinDir",
			name, server, strings.Join(found, ", "), name, server, server)
	}
	if newest {
		return fit[len(fit)-1].path, nil
	}
	return fit[0].path, nil
}

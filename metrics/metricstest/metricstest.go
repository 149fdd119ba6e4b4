// Package metricstest reads the Prometheus text format for tests.
package metricstest

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Parse returns each sample of a scrape by its name and labels as written,
// e.g. `rdsbackup_backups_total{engine="MariaDB",method="Logical",result="Success"}`.
func Parse(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("sample %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

package columns

import (
	"encoding/json"
	"fmt"

	"github.com/rdsbackup/rdsbackup"
)

// EncodePosition renders a log position as JSON ("" for none).
func EncodePosition(p rdsbackup.LogPosition) string {
	if p.IsZero() {
		return ""
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// DecodePosition reads a column EncodePosition wrote.
func DecodePosition(s string) (rdsbackup.LogPosition, error) {
	var p rdsbackup.LogPosition
	if s == "" {
		return p, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("log position: %w", err)
	}
	return p, nil
}

// EncodeNameMap renders a database name map as a JSON object ("" for none).
func EncodeNameMap(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// DecodeNameMap reads a column EncodeNameMap wrote.
func DecodeNameMap(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("database names: %w", err)
	}
	return m, nil
}

// Package columns encodes the list-valued columns every catalog stores as
// text: a backup set's artifacts and database names, a job's databases.
// Keeping one format for all catalogs lets `rdsbackup catalog copy` move
// these columns as they are.
package columns

import (
	"encoding/json"
	"fmt"

	"github.com/rdsbackup/rdsbackup"
)

// JoinList stores a list of names as a JSON array: database names may hold
// any character, commas included.
func JoinList(s []string) string {
	if len(s) == 0 {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// SplitList reads a list JoinList wrote (nil for an unreadable one).
func SplitList(s string) []string {
	if s == "" {
		return nil
	}
	if out, ok := parseStringList(s); ok {
		return out
	}
	var out []string
	if json.Unmarshal([]byte(s), &out) != nil {
		return nil
	}
	return out
}

// storedArtifact is an artifact in the artifacts column (JSON, short keys:
// it is read for every set of every page).
type storedArtifact struct {
	Database string `json:"db"`
	Kind     string `json:"kind,omitempty"`
	Offset   int64  `json:"off"`
	Length   int64  `json:"len"`
	Checksum string `json:"crc"`
}

// EncodeArtifacts renders a set's artifacts for its artifacts column.
func EncodeArtifacts(as []rdsbackup.Artifact) string {
	if len(as) == 0 {
		return ""
	}
	out := make([]storedArtifact, len(as))
	for i, a := range as {
		out[i] = storedArtifact{a.Database, a.Kind, a.Offset, a.Length, a.Checksum}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// DecodeArtifacts reads an artifacts column.
func DecodeArtifacts(s string) ([]rdsbackup.Artifact, error) {
	if s == "" {
		return nil, nil
	}
	if out, ok := parseArtifacts(s); ok {
		return out, nil
	}
	var in []storedArtifact
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	out := make([]rdsbackup.Artifact, len(in))
	for i, a := range in {
		out[i] = rdsbackup.Artifact{Database: a.Database, Kind: a.Kind, Offset: a.Offset, Length: a.Length, Checksum: a.Checksum}
	}
	return out, nil
}

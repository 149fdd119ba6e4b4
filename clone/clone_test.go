package clone

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

// TestLoadCleansUp: a clone that was being made when rdsbackup stopped is
// Failed with a reason and its files removed; a directory no record names
// is removed; a Failed clone stays listed; other files stay.
func TestLoadCleansUp(t *testing.T) {
	dir := t.TempDir()
	recs := []rdsbackup.Clone{
		{ID: "clone-rm-making000001", Engine: rdsbackup.EngineMariaDB, Status: rdsbackup.CloneRestoring, Port: 34001},
		{ID: "clone-rm-failed000001", Engine: rdsbackup.EngineMariaDB, Status: rdsbackup.CloneFailed, Reason: "earlier", Port: 34002},
	}
	buf, _ := json.Marshal(recs)
	if err := os.WriteFile(filepath.Join(dir, stateFile), buf, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"clone-rm-making000001/data", "clone-pgm-orphan00001/data", "not-a-clone"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m := &Manager{Dir: dir, Bind: "127.0.0.1", FirstPort: 34000, LastPort: 34009, Max: 2}
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.FindClones(context.Background())
	if err != nil || len(got) != 2 {
		t.Fatalf("clones after Load: %v %v", got, err)
	}
	byID := map[string]*rdsbackup.Clone{}
	for _, c := range got {
		byID[c.ID] = c
	}
	if c := byID["clone-rm-making000001"]; c.Status != rdsbackup.CloneFailed || c.Reason != "rdsbackup stopped while the clone was being made" {
		t.Errorf("the interrupted clone: %+v", c)
	}
	if c := byID["clone-rm-failed000001"]; c.Status != rdsbackup.CloneFailed || c.Reason != "earlier" {
		t.Errorf("the failed clone: %+v", c)
	}
	for _, d := range []string{"clone-rm-making000001", "clone-pgm-orphan00001"} {
		if _, err := os.Stat(filepath.Join(dir, d)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "not-a-clone")); err != nil {
		t.Errorf("a directory that is not a clone's was removed: %v", err)
	}
	// The records on disk say the same, 0600.
	fi, err := os.Stat(filepath.Join(dir, stateFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("records file: %v %v", fi, err)
	}
	// FindClone of an unknown id; DeleteClone of a Failed one.
	if _, err := m.FindClone(context.Background(), "clone-rm-nosuch"); rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		t.Errorf("FindClone of an unknown id: %v", err)
	}
	if err := m.DeleteClone(context.Background(), "clone-rm-failed000001"); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.FindClones(context.Background()); len(got) != 1 {
		t.Errorf("after DeleteClone: %v", got)
	}
}

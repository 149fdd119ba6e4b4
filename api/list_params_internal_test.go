package api

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// listInstances knows one instance, rm-known.
type listInstances struct{ rdsbackup.InstanceService }

func (listInstances) FindInstance(ctx context.Context, id string) (*rdsbackup.Instance, error) {
	if id == "rm-known" {
		return &rdsbackup.Instance{ID: id, Engine: rdsbackup.EngineMariaDB}, nil
	}
	return nil, rdsbackup.Errorf(rdsbackup.ENOTFOUND, "no instance %s", id)
}

// recordingStarter keeps the options of the backups it is asked to start.
type recordingStarter struct{ got []rdsbackup.BackupOptions }

func (r *recordingStarter) StartBackup(ctx context.Context, id string, opts rdsbackup.BackupOptions) (*rdsbackup.Job, error) {
	r.got = append(r.got, opts)
	return &rdsbackup.Job{ID: 42, InstanceID: id}, nil
}

func listServer() (*Server, *recordingStarter) {
	s := NewServer()
	st := &recordingStarter{}
	s.Instances, s.Backup = listInstances{}, st
	return s, st
}

func paramCall(kv ...string) *call {
	p := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		p.Set(kv[i], kv[i+1])
	}
	return &call{req: &rpc.Request{Params: p, RequestID: "R"}}
}

// names returns "db0,db1,…" of n names.
func names(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "db%d", i)
	}
	return b.String()
}

// allocatedBytes is what one call of f allocates, averaged over a few calls
// after a first one.
func allocatedBytes(f func()) uint64 {
	f()
	var before, after runtime.MemStats
	const runs = 3
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// smallAlloc bounds what refusing an oversized list may allocate: the
// error, not anything in proportion to the list (20,000 names are 128 KiB of
// text; splitting them alone allocates 320 KiB).
const smallAlloc = 16 << 10

func wantCode(t *testing.T, err error, code, inMessage string) {
	t.Helper()
	if rdsbackup.ErrorCode(err) != code || !strings.Contains(rdsbackup.ErrorMessage(err), inMessage) {
		t.Fatalf("got %v, want %s mentioning %q", err, code, inMessage)
	}
}

// TestCreateBackupHugeDBNameList: a DBName list of 20,000 names is refused
// without being split or de-duplicated, whether the instance is unknown
// (checked first) or known (the list is over its cap); the cost does not
// grow with the list.
func TestCreateBackupHugeDBNameList(t *testing.T) {
	s, st := listServer()
	huge := names(20000)
	for _, tc := range []struct{ inst, code, msg string }{
		{"rm-unknown", rdsbackup.EInstanceIdNotFound, "does not exist"},
		{"rm-known", rdsbackup.EINVALID, "at most 1000 names per call, got 20000"},
	} {
		c := paramCall("DBInstanceId", tc.inst, "BackupMethod", "Logical", "DBName", huge)
		_, err := s.createBackup(t.Context(), c)
		wantCode(t, err, tc.code, tc.msg)
		if n := allocatedBytes(func() { s.createBackup(t.Context(), c) }); n > smallAlloc {
			t.Errorf("%s: refusing 20,000 names allocates %d bytes per call", tc.inst, n)
		}
	}
	if len(st.got) != 0 {
		t.Errorf("backups started: %d", len(st.got))
	}
}

// TestCreateBackupDBNameDeduplicated: at the cap, names are trimmed, empty
// entries and repeats dropped, first occurrences kept in order.
func TestCreateBackupDBNameDeduplicated(t *testing.T) {
	s, st := listServer()
	var list []string
	var want []string
	for i := range 500 {
		name := fmt.Sprintf("db%d", i)
		list = append(list, " "+name, name+" ")
		want = append(want, name)
	}
	list[len(list)-1] = "" // 1000 entries, one empty
	c := paramCall("DBInstanceId", "rm-known", "BackupMethod", "Logical", "DBName", strings.Join(list, ","))
	if _, err := s.createBackup(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if len(st.got) != 1 || !slices.Equal(st.got[0].Databases, want) || st.got[0].Strategy != "db" {
		t.Fatalf("started with %+v", st.got)
	}
	// One more entry is over the cap.
	c = paramCall("DBInstanceId", "rm-known", "BackupMethod", "Logical", "DBName", strings.Join(list, ",")+",x")
	_, err := s.createBackup(t.Context(), c)
	wantCode(t, err, rdsbackup.EINVALID, "at most 1000 names")
}

// TestInstanceIDListCap: a DBInstanceId list over 100 ids is refused by
// counting, before authorization would evaluate a resource per id.
func TestInstanceIDListCap(t *testing.T) {
	ok := strings.Repeat("rm-a,", maxInstanceIDs-1) + "rm-a"
	if err := checkInstanceIDCount(paramCall("DBInstanceId", ok)); err != nil {
		t.Errorf("%d ids: %v", maxInstanceIDs, err)
	}
	if err := checkInstanceIDCount(paramCall()); err != nil {
		t.Errorf("no DBInstanceId: %v", err)
	}
	c := paramCall("DBInstanceId", names(200000))
	wantCode(t, checkInstanceIDCount(c), rdsbackup.EINVALID, "at most 100 ids per call, got 200000")
	if n := allocatedBytes(func() { checkInstanceIDCount(c) }); n > smallAlloc {
		t.Errorf("refusing 200,000 ids allocates %d bytes per call", n)
	}
}

// TestDeleteBackupHugeIDList: an oversized BackupId list is refused by
// counting, before it is split.
func TestDeleteBackupHugeIDList(t *testing.T) {
	s, _ := listServer()
	s.Deleter = noDeleter{}
	c := paramCall("DBInstanceId", "rm-known", "BackupId", strings.Repeat("1,", 100000)+"1")
	_, err := s.deleteBackup(t.Context(), c)
	wantCode(t, err, rdsbackup.EINVALID, "at most 100 ids per call, got 100001")
	if n := allocatedBytes(func() { s.deleteBackup(t.Context(), c) }); n > smallAlloc {
		t.Errorf("refusing 100,001 ids allocates %d bytes per call", n)
	}
}

type noDeleter struct{}

func (noDeleter) Delete(ctx context.Context, sets []*rdsbackup.BackupSet) error {
	return fmt.Errorf("nothing may be deleted")
}

// BenchmarkCreateBackupDBName: the handler on DBName lists of 20,000 and
// 200,000 names, for an unknown instance and a known one (over the cap),
// and at the cap.
func BenchmarkCreateBackupDBName(b *testing.B) {
	s, _ := listServer()
	for _, bc := range []struct {
		name, inst string
		n          int
	}{
		{"unknown-instance-20000", "rm-unknown", 20000}, {"known-instance-20000", "rm-known", 20000},
		{"unknown-instance-200000", "rm-unknown", 200000}, {"known-instance-200000", "rm-known", 200000},
		{"known-instance-1000", "rm-known", 1000},
	} {
		c := paramCall("DBInstanceId", bc.inst, "BackupMethod", "Logical", "DBName", names(bc.n))
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.createBackup(b.Context(), c)
			}
		})
	}
}

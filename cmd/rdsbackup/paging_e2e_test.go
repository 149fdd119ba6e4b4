package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// pagingSpecs makes n sets of instance whose ids (offset+1 … offset+n) are
// shuffled against their start times, and whose start times come in groups
// of three equal ones, so that the order needs the BackupId tie-break.
func pagingSpecs(instance string, offset int64, n int) []setSpec {
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	specs := make([]setSpec, n)
	for i := range n {
		specs[i] = setSpec{
			ID:       offset + int64((i*7)%n) + 1,
			Instance: instance,
			Start:    base.Add(time.Duration((i*13)%n/3) * time.Minute),
		}
	}
	return specs
}

// expectedOrder is newest first, ties by BackupId descending.
func expectedOrder(specs []setSpec) []string {
	s := slices.Clone(specs)
	slices.SortFunc(s, func(a, b setSpec) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	ids := make([]string, len(s))
	for i, sp := range s {
		ids[i] = strconv.FormatInt(sp.ID, 10)
	}
	return ids
}

func TestDescribeBackupsPaging(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 30, 31, 1000}
	var ids []string
	for _, n := range sizes {
		ids = append(ids, fmt.Sprintf("rm-p%d", n))
	}
	dir := t.TempDir()
	s := startService(t, dir, instancesYAML(ids...), testEnv(nil))
	db := openCatalog(t, dir)
	want := map[int][]string{}
	began := time.Now()
	for k, n := range sizes {
		specs := pagingSpecs(ids[k], int64(k+1)*10000, n)
		insertSets(t, db, specs...)
		want[n] = expectedOrder(specs)
	}
	t.Logf("inserted %d sets in %v", 1062, time.Since(began))
	c := rootClients(t, s)

	for k, n := range sizes {
		for _, size := range []int{0, 30, 50, 100} { // 0: PageSize not sent, default 30
			t.Run(fmt.Sprintf("sets=%d/PageSize=%d", n, size), func(t *testing.T) {
				t.Parallel()
				c := rootClients(t, s) // an SDK client is not safe for concurrent use
				effective := cmp.Or(size, 30)
				pages := (n + effective - 1) / effective
				var got []string
				seen := map[string]bool{}
				// Walk every page, then one past the end (page 1 when empty).
				for page := 1; page <= max(pages+1, 1); page++ {
					resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
						r.DBInstanceId = ids[k]
						if size != 0 {
							r.PageSize = requests.NewInteger(size)
						}
						if page != 1 || size == 50 { // also test the default page number
							r.PageNumber = requests.NewInteger(page)
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					wantCount := min(effective, max(n-(page-1)*effective, 0))
					if resp.PageNumber != strconv.Itoa(page) || resp.PageRecordCount != strconv.Itoa(wantCount) ||
						resp.TotalRecordCount != strconv.Itoa(n) || len(resp.Items.Backup) != wantCount {
						t.Fatalf("page %d: PageNumber %q PageRecordCount %q (items %d) TotalRecordCount %q, want %d/%d/%d",
							page, resp.PageNumber, resp.PageRecordCount, len(resp.Items.Backup), resp.TotalRecordCount, page, wantCount, n)
					}
					if ps := pageSize(t, resp); ps != effective {
						t.Fatalf("page %d: PageSize %d, want %d", page, ps, effective)
					}
					for _, id := range backupIDs(resp) {
						if seen[id] {
							t.Fatalf("page %d: BackupId %s repeated", page, id)
						}
						seen[id] = true
						got = append(got, id)
					}
				}
				if !slices.Equal(got, want[n]) {
					t.Fatalf("order over all pages:\n got %v\nwant %v", got, want[n])
				}
			})
		}
	}

	// A page far past the end.
	resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
		r.DBInstanceId, r.PageSize, r.PageNumber = "rm-p31", requests.NewInteger(30), requests.NewInteger(1000000)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Items.Backup) != 0 || resp.PageRecordCount != "0" || resp.TotalRecordCount != "31" || resp.PageNumber != "1000000" {
		t.Fatalf("far page: %s", resp.GetHttpContentString())
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

func TestDescribeBackupsJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	strs := []string{"", "rm-a1", "2026-11-27T01:02:03Z", "Success", `q"uote\`, "<&>", "日本語", "\n\t\x01", "\u2028", "bad\xff", "https://h/download/1?Expires=1&Signature=ab-_"}
	s := func() string { return strs[r.IntN(len(strs))] + strs[r.IntN(len(strs))] }
	n := func() int64 { return r.Int64N(1<<62) - 1<<61 }
	for i := range 300 {
		resp := &describeBackupsResponse{
			RequestId: s(), PageNumber: s(), PageRecordCount: s(), TotalRecordCount: s(),
			PageSize: int(n()), TotalEcsSnapshotSize: n(), TotalBackupSize: n(),
		}
		if r.IntN(10) > 0 {
			resp.Items.Backup = []backupItem{}
		}
		for range r.IntN(4) {
			it := backupItem{
				BackupId: s(), DBInstanceId: s(), BackupStatus: s(), BackupStartTime: s(), BackupEndTime: s(),
				BackupType: s(), BackupMode: s(), BackupMethod: s(), BackupInitiator: s(), BackupDownloadURL: s(),
				BackupIntranetDownloadURL: s(), BackupSize: n(), IsAvail: int(n()), StoreStatus: s(), MetaStatus: s(),
				StorageClass: s(), CopyOnlyBackup: s(), ConsistentTime: n(), Checksum: s(), HostInstanceID: s(),
				Encryption: s(), Engine: s(), EngineVersion: s(), ResourceGroupId: s(), ExpectExpireTime: s(),
				BackupLocation: s(), BackupScale: s(), BackupExtractionStatus: s(), BackupDBNames: s(),
				TotalBackupSize: n(), SlaveStatus: s(), DBInstanceComment: s(), FailureReason: s(),
				VerifyStatus: s(), VerifyTime: s(), VerifyFailureReason: s(),
			}
			if r.IntN(4) > 0 {
				it.BackupDownloadLinkByDB.BackupDownloadLinkByDB = []downloadLink{}
				for range r.IntN(3) {
					it.BackupDownloadLinkByDB.BackupDownloadLinkByDB = append(it.BackupDownloadLinkByDB.BackupDownloadLinkByDB,
						downloadLink{DataBase: s(), DownloadLink: s(), IntranetDownloadLink: s()})
				}
			}
			resp.Items.Backup = append(resp.Items.Backup, it)
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(resp); err != nil {
			t.Fatal(err)
		}
		got := resp.AppendJSON([]byte("x"))
		if !bytes.Equal(got[1:], bytes.TrimSuffix(want.Bytes(), []byte("\n"))) || got[0] != 'x' {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got[1:], want.Bytes())
		}
	}
}

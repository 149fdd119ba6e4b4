package api

import (
	"strconv"

	"github.com/rdsbackup/rdsbackup/rpc"
)

// AppendJSON renders the response without reflection: DescribeBackups is
// the hot action and encoding/json took about a tenth of its CPU. The
// output is byte for byte encoding/json's (TestDescribeBackupsJSONMatches
// EncodingJSON), so the struct tags stay the definition of the wire.
func (r *describeBackupsResponse) AppendJSON(b []byte) []byte {
	b = append(b, `{"RequestId":`...)
	b = rpc.AppendJSONString(b, r.RequestId)
	b = append(b, `,"PageNumber":`...)
	b = rpc.AppendJSONString(b, r.PageNumber)
	b = append(b, `,"PageRecordCount":`...)
	b = rpc.AppendJSONString(b, r.PageRecordCount)
	b = append(b, `,"TotalRecordCount":`...)
	b = rpc.AppendJSONString(b, r.TotalRecordCount)
	b = append(b, `,"PageSize":`...)
	b = strconv.AppendInt(b, int64(r.PageSize), 10)
	b = append(b, `,"TotalEcsSnapshotSize":`...)
	b = strconv.AppendInt(b, r.TotalEcsSnapshotSize, 10)
	b = append(b, `,"TotalBackupSize":`...)
	b = strconv.AppendInt(b, r.TotalBackupSize, 10)
	b = append(b, `,"Items":{"Backup":`...)
	if r.Items.Backup == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Items.Backup {
			if i > 0 {
				b = append(b, ',')
			}
			b = r.Items.Backup[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, "}}"...)
}

func (it *backupItem) appendJSON(b []byte) []byte {
	str := func(b []byte, key, v string) []byte {
		b = append(b, key...)
		return rpc.AppendJSONString(b, v)
	}
	num := func(b []byte, key string, v int64) []byte {
		b = append(b, key...)
		return strconv.AppendInt(b, v, 10)
	}
	b = str(b, `{"BackupId":`, it.BackupId)
	b = str(b, `,"DBInstanceId":`, it.DBInstanceId)
	b = str(b, `,"BackupStatus":`, it.BackupStatus)
	b = str(b, `,"BackupStartTime":`, it.BackupStartTime)
	b = str(b, `,"BackupEndTime":`, it.BackupEndTime)
	b = str(b, `,"BackupType":`, it.BackupType)
	b = str(b, `,"BackupMode":`, it.BackupMode)
	b = str(b, `,"BackupMethod":`, it.BackupMethod)
	b = str(b, `,"BackupInitiator":`, it.BackupInitiator)
	b = str(b, `,"BackupDownloadURL":`, it.BackupDownloadURL)
	b = str(b, `,"BackupIntranetDownloadURL":`, it.BackupIntranetDownloadURL)
	b = append(b, `,"BackupDownloadLinkByDB":{"BackupDownloadLinkByDB":`...)
	if links := it.BackupDownloadLinkByDB.BackupDownloadLinkByDB; links == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, l := range links {
			if i > 0 {
				b = append(b, ',')
			}
			b = str(b, `{"DataBase":`, l.DataBase)
			b = str(b, `,"DownloadLink":`, l.DownloadLink)
			b = str(b, `,"IntranetDownloadLink":`, l.IntranetDownloadLink)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	b = num(b, `,"BackupSize":`, it.BackupSize)
	b = num(b, `,"IsAvail":`, int64(it.IsAvail))
	b = str(b, `,"StoreStatus":`, it.StoreStatus)
	b = str(b, `,"MetaStatus":`, it.MetaStatus)
	b = str(b, `,"StorageClass":`, it.StorageClass)
	b = str(b, `,"CopyOnlyBackup":`, it.CopyOnlyBackup)
	b = num(b, `,"ConsistentTime":`, it.ConsistentTime)
	b = str(b, `,"Checksum":`, it.Checksum)
	b = str(b, `,"HostInstanceID":`, it.HostInstanceID)
	b = str(b, `,"Encryption":`, it.Encryption)
	b = str(b, `,"Engine":`, it.Engine)
	b = str(b, `,"EngineVersion":`, it.EngineVersion)
	b = str(b, `,"ResourceGroupId":`, it.ResourceGroupId)
	b = str(b, `,"ExpectExpireTime":`, it.ExpectExpireTime)
	b = str(b, `,"BackupLocation":`, it.BackupLocation)
	b = str(b, `,"BackupScale":`, it.BackupScale)
	b = str(b, `,"BackupExtractionStatus":`, it.BackupExtractionStatus)
	b = str(b, `,"BackupDBNames":`, it.BackupDBNames)
	b = num(b, `,"TotalBackupSize":`, it.TotalBackupSize)
	b = str(b, `,"SlaveStatus":`, it.SlaveStatus)
	b = str(b, `,"DBInstanceComment":`, it.DBInstanceComment)
	if it.FailureReason != "" {
		b = str(b, `,"FailureReason":`, it.FailureReason)
	}
	if it.VerifyStatus != "" {
		b = str(b, `,"VerifyStatus":`, it.VerifyStatus)
	}
	if it.VerifyTime != "" {
		b = str(b, `,"VerifyTime":`, it.VerifyTime)
	}
	if it.VerifyFailureReason != "" {
		b = str(b, `,"VerifyFailureReason":`, it.VerifyFailureReason)
	}
	return append(b, '}')
}

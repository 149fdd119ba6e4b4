package api

import (
	"context"
	"regexp"
	"strconv"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

type describeBackupsResponse struct {
	RequestId            string               `json:"RequestId" xml:"RequestId"`
	PageNumber           string               `json:"PageNumber" xml:"PageNumber"`
	PageRecordCount      string               `json:"PageRecordCount" xml:"PageRecordCount"`
	TotalRecordCount     string               `json:"TotalRecordCount" xml:"TotalRecordCount"`
	PageSize             int                  `json:"PageSize" xml:"PageSize"`
	TotalEcsSnapshotSize int64                `json:"TotalEcsSnapshotSize" xml:"TotalEcsSnapshotSize"`
	TotalBackupSize      int64                `json:"TotalBackupSize" xml:"TotalBackupSize"`
	Items                describeBackupsItems `json:"Items" xml:"Items"`
}

type describeBackupsItems struct {
	Backup []backupItem `json:"Backup" xml:"Backup"`
}

// backupItem is one set on the wire. Types follow the reference (§1.4):
// strings except IsAvail, BackupSize, ConsistentTime and TotalBackupSize.
type backupItem struct {
	BackupId                  string           `json:"BackupId" xml:"BackupId"`
	DBInstanceId              string           `json:"DBInstanceId" xml:"DBInstanceId"`
	BackupStatus              string           `json:"BackupStatus" xml:"BackupStatus"`
	BackupStartTime           string           `json:"BackupStartTime" xml:"BackupStartTime"`
	BackupEndTime             string           `json:"BackupEndTime" xml:"BackupEndTime"`
	BackupType                string           `json:"BackupType" xml:"BackupType"`
	BackupMode                string           `json:"BackupMode" xml:"BackupMode"`
	BackupMethod              string           `json:"BackupMethod" xml:"BackupMethod"`
	BackupInitiator           string           `json:"BackupInitiator" xml:"BackupInitiator"`
	BackupDownloadURL         string           `json:"BackupDownloadURL" xml:"BackupDownloadURL"`
	BackupIntranetDownloadURL string           `json:"BackupIntranetDownloadURL" xml:"BackupIntranetDownloadURL"`
	BackupDownloadLinkByDB    downloadLinksOut `json:"BackupDownloadLinkByDB" xml:"BackupDownloadLinkByDB"`
	BackupSize                int64            `json:"BackupSize" xml:"BackupSize"`
	IsAvail                   int              `json:"IsAvail" xml:"IsAvail"`
	StoreStatus               string           `json:"StoreStatus" xml:"StoreStatus"`
	MetaStatus                string           `json:"MetaStatus" xml:"MetaStatus"`
	StorageClass              string           `json:"StorageClass" xml:"StorageClass"`
	CopyOnlyBackup            string           `json:"CopyOnlyBackup" xml:"CopyOnlyBackup"`
	ConsistentTime            int64            `json:"ConsistentTime" xml:"ConsistentTime"`
	Checksum                  string           `json:"Checksum" xml:"Checksum"`
	HostInstanceID            string           `json:"HostInstanceID" xml:"HostInstanceID"`
	Encryption                string           `json:"Encryption" xml:"Encryption"`
	Engine                    string           `json:"Engine" xml:"Engine"`
	EngineVersion             string           `json:"EngineVersion" xml:"EngineVersion"`
	ResourceGroupId           string           `json:"ResourceGroupId" xml:"ResourceGroupId"`
	ExpectExpireTime          string           `json:"ExpectExpireTime" xml:"ExpectExpireTime"`
	BackupLocation            string           `json:"BackupLocation" xml:"BackupLocation"`
	BackupScale               string           `json:"BackupScale" xml:"BackupScale"`
	BackupExtractionStatus    string           `json:"BackupExtractionStatus" xml:"BackupExtractionStatus"`
	BackupDBNames             string           `json:"BackupDBNames" xml:"BackupDBNames"`
	TotalBackupSize           int64            `json:"TotalBackupSize" xml:"TotalBackupSize"`
	SlaveStatus               string           `json:"SlaveStatus" xml:"SlaveStatus"`
	DBInstanceComment         string           `json:"DBInstanceComment" xml:"DBInstanceComment"`
	// FailureReason is an rdsbackup extension: why a Failed set failed.
	FailureReason string `json:"FailureReason,omitempty" xml:"FailureReason,omitempty"`
	// VerifyStatus, VerifyTime and VerifyFailureReason are rdsbackup
	// extensions: the last restore drill's verdict (docs/drills.md).
	VerifyStatus        string `json:"VerifyStatus,omitempty" xml:"VerifyStatus,omitempty"`
	VerifyTime          string `json:"VerifyTime,omitempty" xml:"VerifyTime,omitempty"`
	VerifyFailureReason string `json:"VerifyFailureReason,omitempty" xml:"VerifyFailureReason,omitempty"`
}

// downloadLinksOut is the double-nested BackupDownloadLinkByDB.
type downloadLinksOut struct {
	BackupDownloadLinkByDB []downloadLink `json:"BackupDownloadLinkByDB" xml:"BackupDownloadLinkByDB"`
}

type downloadLink struct {
	DataBase             string `json:"DataBase" xml:"DataBase"`
	DownloadLink         string `json:"DownloadLink" xml:"DownloadLink"`
	IntranetDownloadLink string `json:"IntranetDownloadLink" xml:"IntranetDownloadLink"`
}

var validPageSizes = map[int]bool{30: true, 50: true, 100: true}

// backupLocationPattern: BackupLocation is accepted (the Go SDK can send it)
// but does not filter, since every set lives in rdsbackup's own storage.
var backupLocationPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

func (s *Server) describeBackups(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	f := rdsbackup.BackupFilter{InstanceID: id, Limit: 30}
	if v := c.param("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || !validPageSizes[n] {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidPageSize, "Specified record number is not valid. PageSize must be 30, 50 or 100, got %s.", rdsbackup.QuoteValue(v))
		}
		f.Limit = n
	}
	page := 1
	if v := c.param("PageNumber"); v != "" {
		n, ok := positiveInt(v)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidPageNumber, "Specified page number is not valid. PageNumber must be a positive integer, got %s.", rdsbackup.QuoteValue(v))
		}
		page = n
	}
	f.Offset = (page - 1) * f.Limit
	if v := c.param("StartTime"); v != "" {
		t, ok := parseQueryTime(v)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidStartTime, "Specified start time is not valid. Use yyyy-MM-ddTHH:mmZ (UTC), got %s.", rdsbackup.QuoteValue(v))
		}
		f.StartFrom = &t
	}
	if v := c.param("EndTime"); v != "" {
		t, ok := parseQueryTime(v)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidEndTime, "Specified end time is not valid. Use yyyy-MM-ddTHH:mmZ (UTC), got %s.", rdsbackup.QuoteValue(v))
		}
		f.StartTo = &t
	}
	if f.StartFrom != nil && f.StartTo != nil && !f.StartTo.After(*f.StartFrom) {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "The end time must be greater than the start time")
	}
	if v, err := enumParam(c, "BackupStatus", string(rdsbackup.BackupSuccess), string(rdsbackup.BackupFailed)); err != nil {
		return nil, err
	} else if v != "" {
		st := rdsbackup.BackupStatus(v)
		f.Status = &st
	}
	if v, err := enumParam(c, "BackupMode", string(rdsbackup.BackupAutomated), string(rdsbackup.BackupManual)); err != nil {
		return nil, err
	} else if v != "" {
		m := rdsbackup.BackupMode(v)
		f.Mode = &m
	}
	if v, err := enumParam(c, "BackupType", string(rdsbackup.FullBackup), string(rdsbackup.IncrementalBackup)); err != nil {
		return nil, err
	} else if v != "" {
		t := rdsbackup.BackupType(v)
		f.Type = &t
	}
	if v := c.param("BackupId"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, rdsbackup.InvalidParameter("BackupId", "must be a backup set id (a positive number), got "+rdsbackup.QuoteValue(v))
		}
		f.ID = &n
	}
	if v := c.param("BackupLocation"); v != "" && !backupLocationPattern.MatchString(v) {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidBackupLocation, "Specified backup set location is not valid.")
	}
	if _, err := s.findInstance(ctx, id); err != nil {
		return nil, err
	}

	sets, total, err := s.Backups.FindBackupSets(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &describeBackupsResponse{
		RequestId:        c.req.RequestID,
		PageNumber:       strconv.Itoa(page),
		PageRecordCount:  strconv.Itoa(len(sets)),
		TotalRecordCount: strconv.Itoa(total),
		PageSize:         f.Limit,
		Items:            describeBackupsItems{Backup: make([]backupItem, 0, len(sets))},
	}
	var expires int64
	if s.Links != nil {
		expires = s.Links.Expiry()
	}
	for _, set := range sets {
		item := s.backupItem(set, expires)
		resp.TotalBackupSize += set.Size
		resp.Items.Backup = append(resp.Items.Backup, item)
	}
	return resp, nil
}

// findInstance looks up an instance, answering the documented not-found code.
func (s *Server) findInstance(ctx context.Context, id string) (*rdsbackup.Instance, error) {
	inst, err := s.Instances.FindInstance(ctx, id)
	if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
		return nil, rdsbackup.Errorf(rdsbackup.EInstanceIdNotFound, "The DBInstanceId provided does not exist in records.")
	}
	return inst, err
}

func (s *Server) backupItem(set *rdsbackup.BackupSet, expires int64) backupItem {
	item := backupItem{
		BackupId:               itoa(set.ID),
		DBInstanceId:           set.InstanceID,
		BackupStatus:           string(set.Status),
		BackupStartTime:        formatTime(set.StartTime),
		BackupEndTime:          formatTime(set.EndTime),
		BackupType:             string(set.Type),
		BackupMode:             string(set.Mode),
		BackupMethod:           string(set.Method),
		BackupInitiator:        string(set.Initiator),
		BackupDownloadLinkByDB: downloadLinksOut{BackupDownloadLinkByDB: make([]downloadLink, 0, len(set.Artifacts))},
		BackupSize:             set.Size,
		IsAvail:                boolInt(set.Available),
		StoreStatus:            string(set.StoreStatus),
		MetaStatus:             set.MetaStatus,
		StorageClass:           set.StorageClass,
		CopyOnlyBackup:         strconv.Itoa(boolInt(set.CopyOnly)),
		ConsistentTime:         set.ConsistentTime,
		Checksum:               set.Checksum,
		HostInstanceID:         set.HostInstanceID,
		Encryption:             set.Encryption,
		Engine:                 string(set.Engine),
		EngineVersion:          set.EngineVersion,
		ResourceGroupId:        set.ResourceGroupID,
		ExpectExpireTime:       formatTime(set.ExpectExpireTime),
		BackupLocation:         set.Location,
		BackupScale:            set.Scale,
		BackupExtractionStatus: "",
		BackupDBNames:          strings.Join(set.DBNames, ","),
		TotalBackupSize:        set.Size,
		FailureReason:          set.FailureReason,
		VerifyStatus:           string(set.VerifyStatus),
		VerifyFailureReason:    set.VerifyFailureReason,
	}
	if !set.VerifyTime.IsZero() {
		item.VerifyTime = formatTime(set.VerifyTime)
	}
	if item.Encryption == "" {
		item.Encryption = "{}"
	}
	if item.StorageClass == "" {
		item.StorageClass = "0"
	}
	// Links only for data that is there to download.
	if s.Links != nil && set.Available && set.ObjectKey != "" {
		item.BackupDownloadURL, item.BackupIntranetDownloadURL = s.Links.Link(set.ID, -1, expires)
		// The bucket holds an encrypted set as ciphertext that only
		// rdsbackup can open, so such a set keeps its proxied links.
		if s.Presigner != nil && (set.Encryption == "" || set.Encryption == rdsbackup.NoEncryption) {
			// The bucket has one address for both; a URL that cannot be
			// made leaves the proxied links, which work as well.
			if u, err := s.Presigner.PresignSet(set, expires); err == nil {
				item.BackupDownloadURL, item.BackupIntranetDownloadURL = u, u
			} else if s.Logger != nil {
				s.Logger.Warn("cannot presign a download URL; handing out the proxied link", "backupId", set.ID, "err", err)
			}
		}
		for i, a := range set.Artifacts {
			if a.Kind != "" && a.Kind != rdsbackup.PartDatabase {
				continue // roles and physical images are not databases
			}
			pub, intra := s.Links.Link(set.ID, i, expires)
			item.BackupDownloadLinkByDB.BackupDownloadLinkByDB = append(item.BackupDownloadLinkByDB.BackupDownloadLinkByDB,
				downloadLink{DataBase: a.Database, DownloadLink: pub, IntranetDownloadLink: intra})
		}
	}
	return item
}

package api

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/rdsbackup/rdsbackup"
)

// Point-in-time recovery actions (docs/pitr.md): DescribeBinlogFiles,
// DescribeLocalAvailableRecoveryTime, RecoveryDBInstance.

// Recovery is what the PITR actions need of the recoverer
// (backup.Recoverer).
type Recovery interface {
	Windows(ctx context.Context, instanceID string) ([]rdsbackup.RecoveryWindow, error)
	Plan(ctx context.Context, instanceID string, t time.Time) (*rdsbackup.PointInTimePlan, error)
	Start(ctx context.Context, job *rdsbackup.RecoveryJob) error
}

// LogSource checks that an instance's server can stream its log (the
// engine's LogStreamer.CheckLogSource).
type LogSource interface {
	CheckLogSource(ctx context.Context, inst *rdsbackup.Instance) error
}

// DatabaseLister lists an instance's user databases (the engine's).
type DatabaseLister interface {
	Databases(ctx context.Context, inst *rdsbackup.Instance) ([]string, error)
}

// LogLinkSigner makes the download links of a log file.
type LogLinkSigner interface {
	LogLink(instanceID, name string, expires int64) (public, intranet string)
}

// pitrTimeLayout is the time format of these actions: to the second.
const pitrTimeLayout = "2006-01-02T15:04:05Z"

func parsePITRTime(v string) (time.Time, bool) {
	t, err := time.Parse(pitrTimeLayout, v)
	return t, err == nil
}

func formatPITRTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(pitrTimeLayout)
}

type binLogFileOut struct {
	LogFileName          string `json:"LogFileName" xml:"LogFileName"`
	LogBeginTime         string `json:"LogBeginTime" xml:"LogBeginTime"`
	LogEndTime           string `json:"LogEndTime" xml:"LogEndTime"`
	FileSize             int64  `json:"FileSize" xml:"FileSize"`
	Checksum             string `json:"Checksum" xml:"Checksum"`
	DownloadLink         string `json:"DownloadLink" xml:"DownloadLink"`
	IntranetDownloadLink string `json:"IntranetDownloadLink" xml:"IntranetDownloadLink"`
	LinkExpiredTime      string `json:"LinkExpiredTime" xml:"LinkExpiredTime"`
	HostInstanceID       string `json:"HostInstanceID" xml:"HostInstanceID"`
	RemoteStatus         string `json:"RemoteStatus" xml:"RemoteStatus"`
}

type describeBinlogFilesResponse struct {
	RequestId        string `json:"RequestId" xml:"RequestId"`
	TotalRecordCount int    `json:"TotalRecordCount" xml:"TotalRecordCount"`
	PageNumber       int    `json:"PageNumber" xml:"PageNumber"`
	PageRecordCount  int    `json:"PageRecordCount" xml:"PageRecordCount"`
	TotalFileSize    int64  `json:"TotalFileSize" xml:"TotalFileSize"`
	Items            struct {
		BinLogFile []binLogFileOut `json:"BinLogFile" xml:"BinLogFile"`
	} `json:"Items" xml:"Items"`
}

func (s *Server) describeBinlogFiles(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	sv, err := c.required("StartTime")
	if err != nil {
		return nil, err
	}
	ev, err := c.required("EndTime")
	if err != nil {
		return nil, err
	}
	start, ok := parsePITRTime(sv)
	if !ok {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidStartTime, "Specified start time is not valid. Use yyyy-MM-ddTHH:mm:ssZ (UTC), got %s.", rdsbackup.QuoteValue(sv))
	}
	end, ok := parsePITRTime(ev)
	if !ok {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidEndTime, "Specified end time is not valid. Use yyyy-MM-ddTHH:mm:ssZ (UTC), got %s.", rdsbackup.QuoteValue(ev))
	}
	if !end.After(start) {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "The end time must be greater than the start time")
	}
	size := 30
	if v := c.param("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 30 || n > 100 {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidPageSize, "Specified record number is not valid. PageSize must be 30 to 100, got %s.", rdsbackup.QuoteValue(v))
		}
		size = n
	}
	page := 1
	if v := c.param("PageNumber"); v != "" {
		n, ok := positiveInt(v)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidPageNumber, "Specified page number is not valid. PageNumber must be a positive integer, got %s.", rdsbackup.QuoteValue(v))
		}
		page = n
	}
	if v := c.param("Latest"); v != "" {
		// Undocumented in the reference: accepted, checked, ignored.
		if _, err := strconv.Atoi(v); err != nil {
			return nil, rdsbackup.InvalidParameter("Latest", "must be an integer, got "+rdsbackup.QuoteValue(v))
		}
	}
	if _, err := s.findInstance(ctx, id); err != nil {
		return nil, err
	}
	resp := &describeBinlogFilesResponse{RequestId: c.req.RequestID, PageNumber: page}
	resp.Items.BinLogFile = []binLogFileOut{}
	if s.LogFiles == nil {
		return resp, nil
	}
	f := rdsbackup.LogFileFilter{InstanceID: id, StartTime: start, EndTime: end}
	all, total, err := s.LogFiles.FindLogFiles(ctx, f)
	if err != nil {
		return nil, err
	}
	resp.TotalRecordCount = total
	for _, lf := range all {
		resp.TotalFileSize += lf.Size
	}
	from := min((page-1)*size, len(all))
	to := min(from+size, len(all))
	var expires int64
	signer, _ := s.Links.(LogLinkSigner)
	if s.Links != nil {
		expires = s.Links.Expiry()
	}
	for _, lf := range all[from:to] {
		out := binLogFileOut{
			LogFileName: lf.Name, LogBeginTime: formatPITRTime(lf.BeginTime), LogEndTime: formatPITRTime(lf.EndTime),
			FileSize: lf.Size, Checksum: lf.Checksum, HostInstanceID: lf.HostID, RemoteStatus: string(lf.Status),
		}
		if signer != nil {
			out.DownloadLink, out.IntranetDownloadLink = signer.LogLink(lf.InstanceID, lf.Name, expires)
			out.LinkExpiredTime = formatPITRTime(time.Unix(expires, 0))
		}
		resp.Items.BinLogFile = append(resp.Items.BinLogFile, out)
	}
	resp.PageRecordCount = len(resp.Items.BinLogFile)
	return resp, nil
}

func (s *Server) describeLocalAvailableRecoveryTime(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	if _, err := s.findInstance(ctx, id); err != nil {
		return nil, err
	}
	resp := &struct {
		RequestId         string `json:"RequestId" xml:"RequestId"`
		DBInstanceId      string `json:"DBInstanceId" xml:"DBInstanceId"`
		RecoveryBeginTime string `json:"RecoveryBeginTime" xml:"RecoveryBeginTime"`
		RecoveryEndTime   string `json:"RecoveryEndTime" xml:"RecoveryEndTime"`
	}{RequestId: c.req.RequestID, DBInstanceId: id}
	if s.Recovery == nil {
		return resp, nil
	}
	ws, err := s.Recovery.Windows(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(ws) > 0 {
		// The latest continuous window; older ones (before a gap) are
		// named by InvalidRestoreTime.NotCovered.
		w := ws[len(ws)-1]
		resp.RecoveryBeginTime, resp.RecoveryEndTime = formatPITRTime(w.Begin), formatPITRTime(w.End)
	}
	return resp, nil
}

// parseDbNames reads DbNames: a JSON object {"source":"target", …} or a
// comma-separated list of names restored under their own names ("a,b"),
// where an entry may also be "source:target".
func parseDbNames(v string) (map[string]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	out := map[string]string{}
	if strings.HasPrefix(v, "{") {
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return nil, rdsbackup.InvalidParameter("DbNames", `must be a JSON object such as {"shop":"shop_restored"} or a comma list of names, got `+rdsbackup.QuoteValue(v))
		}
	} else {
		for _, e := range strings.Split(v, ",") {
			src, dst, ok := strings.Cut(strings.TrimSpace(e), ":")
			if !ok {
				dst = src
			}
			out[strings.TrimSpace(src)] = strings.TrimSpace(dst)
		}
	}
	seen := map[string]bool{}
	for src, dst := range out {
		if src == "" || dst == "" {
			return nil, rdsbackup.InvalidParameter("DbNames", "a database name is empty in "+rdsbackup.QuoteValue(v))
		}
		if seen[dst] {
			return nil, rdsbackup.InvalidParameter("DbNames", "two databases would be restored as "+rdsbackup.QuoteValue(dst))
		}
		seen[dst] = true
	}
	return out, nil
}

func (s *Server) recoveryDBInstance(ctx context.Context, c *call) (any, error) {
	srcID, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	dstID, err := c.required("TargetDBInstanceId")
	if err != nil {
		return nil, err
	}
	backupParam, timeParam := c.param("BackupId"), c.param("RestoreTime")
	if (backupParam == "") == (timeParam == "") {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "Give exactly one of BackupId (restore a backup set) or RestoreTime (restore to a time).")
	}
	job := &rdsbackup.RecoveryJob{SourceID: srcID, TargetID: dstID}
	if timeParam != "" {
		t, ok := parsePITRTime(timeParam)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidRestoreTime, "Specified restore time is not valid. Use yyyy-MM-ddTHH:mm:ssZ (UTC), got %s.", rdsbackup.QuoteValue(timeParam))
		}
		job.RestoreTime = t
	}
	if job.Databases, err = parseDbNames(c.param("DbNames")); err != nil {
		return nil, err
	}
	src, err := s.findInstance(ctx, srcID)
	if err != nil {
		return nil, err
	}
	dst, err := s.findInstance(ctx, dstID)
	if err != nil {
		return nil, err
	}
	if src.Engine != dst.Engine {
		return nil, rdsbackup.Errorf(rdsbackup.EEngineMismatch, "The target instance %s runs %s and the source %s runs %s: restore into an instance of the same engine.", dstID, dst.Engine, srcID, src.Engine)
	}
	if srcID == dstID {
		if len(job.Databases) == 0 {
			return nil, rdsbackup.InvalidParameter("DbNames", "a restore into the source instance itself needs new names for the databases (DbNames)")
		}
		for from, to := range job.Databases {
			if from == to {
				return nil, rdsbackup.InvalidParameter("DbNames", "a restore into the source instance itself needs a new name for "+rdsbackup.QuoteValue(from))
			}
		}
	}
	if s.Recovery == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedEngine, "Restores into another instance are not enabled on this service.")
	}
	set, err := s.restoreSet(ctx, srcID, backupParam, job.RestoreTime)
	if err != nil {
		return nil, err
	}
	job.BackupID = set.ID
	if backupParam == "" {
		job.BackupID = 0 // chosen again when the restore runs
	}
	inSet := setDatabases(set)
	targets := map[string]string{} // target name → source name
	if len(job.Databases) == 0 {
		for db := range inSet {
			targets[db] = db
		}
	}
	for from, to := range job.Databases {
		if !inSet[from] {
			return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The backup set %d holds no database %s.", set.ID, rdsbackup.QuoteValue(from))
		}
		targets[to] = from
	}
	if lister := s.TargetDatabases[dst.Engine]; lister != nil {
		have, err := lister.Databases(ctx, dst)
		if err != nil {
			return nil, err
		}
		for _, d := range have {
			if _, clash := targets[d]; clash {
				return nil, rdsbackup.Errorf(rdsbackup.EDatabaseExists, "The database %s already exists on %s; a restore never overwrites a database: choose new names with DbNames (e.g. {%q:%q}).",
					rdsbackup.QuoteValue(d), dstID, targets[d], d+"_restored")
			}
		}
	}
	if err := s.Recovery.Start(ctx, job); rdsbackup.ErrorCode(err) == rdsbackup.ECONFLICT {
		return nil, rdsbackup.Errorf(rdsbackup.EIncorrectInstanceState, "The instance %s is already being restored; wait until it is Running again.", dstID)
	} else if err != nil {
		return nil, err
	}
	return &struct {
		RequestId    string `json:"RequestId" xml:"RequestId"`
		DBInstanceId string `json:"DBInstanceId" xml:"DBInstanceId"`
		OrderId      string `json:"OrderId" xml:"OrderId"`
	}{c.req.RequestID, dstID, strconv.FormatInt(job.ID, 10)}, nil
}

// restoreSet is the set a restore of srcID starts from: the set named by
// backupParam (a Success, available set of that instance), or the base
// set of a restore to t.
func (s *Server) restoreSet(ctx context.Context, srcID, backupParam string, t time.Time) (*rdsbackup.BackupSet, error) {
	if backupParam == "" {
		plan, err := s.Recovery.Plan(ctx, srcID, t)
		if err != nil {
			return nil, err
		}
		return plan.Set, nil
	}
	n, err := strconv.ParseInt(backupParam, 10, 64)
	var set *rdsbackup.BackupSet
	if err == nil {
		set, err = s.Backups.FindBackupSet(ctx, n)
	}
	if err != nil || set.InstanceID != srcID || set.Status != rdsbackup.BackupSuccess || !set.Available {
		return nil, rdsbackup.Errorf(rdsbackup.EBackupNotFound, "The backup set %s of instance %s does not exist or cannot be restored.", rdsbackup.QuoteValue(backupParam), srcID)
	}
	return set, nil
}

// setDatabases are the databases a set holds.
func setDatabases(set *rdsbackup.BackupSet) map[string]bool {
	inSet := map[string]bool{}
	for _, a := range set.Artifacts {
		if a.Kind == rdsbackup.PartDatabase || a.Kind == "" {
			inSet[a.Database] = true
		}
	}
	if set.Method == rdsbackup.MethodPhysical {
		for _, d := range set.DBNames {
			inSet[d] = true
		}
	}
	return inSet
}

// recoveryResources: RecoveryDBInstance acts on both instances.
func recoveryResources(s *Server, c *call) []string {
	out := instanceResources(s, c)
	if t := c.param("TargetDBInstanceId"); t != "" {
		out = append(out, s.instanceARN(t))
	}
	return out
}

// instanceStatus is an instance's DBInstanceStatus: Restoring while a
// recovery into it runs.
func (s *Server) instanceStatus(ctx context.Context, id string) string {
	if s.Recoveries == nil {
		return instanceStatus
	}
	jobs, err := s.Recoveries.FindRecoveries(ctx, rdsbackup.RecoveryFilter{TargetID: id, Statuses: []rdsbackup.JobStatus{rdsbackup.JobPreparing}, Limit: 1})
	if err == nil && len(jobs) > 0 {
		return "Restoring"
	}
	return instanceStatus
}

// recoveryTasks lists the instance's recoveries in DescribeBackupTasks'
// shape: BackupJobId "R" + OrderId, TaskAction RecoveryDBInstance.
func (s *Server) recoveryTasks(ctx context.Context, instanceID string, jobID string, statuses []rdsbackup.JobStatus) ([]backupJobOut, error) {
	if s.Recoveries == nil {
		return nil, nil
	}
	f := rdsbackup.RecoveryFilter{TargetID: instanceID, Limit: 100}
	if jobID != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(jobID, "R"), 10, 64)
		if err != nil {
			return nil, nil
		}
		f.ID = &n
	} else {
		f.Statuses = statuses
	}
	jobs, err := s.Recoveries.FindRecoveries(ctx, f)
	if err != nil {
		return nil, err
	}
	var out []backupJobOut
	for _, j := range jobs {
		o := backupJobOut{
			BackupJobId: "R" + strconv.FormatInt(j.ID, 10), BackupStatus: string(j.Status), BackupProgressStatus: string(j.Status),
			JobMode: string(rdsbackup.BackupManual), Process: strconv.Itoa(j.Progress), TaskAction: "RecoveryDBInstance", FailureReason: j.Error,
		}
		if j.Status == rdsbackup.JobFailed {
			o.BackupProgressStatus = string(rdsbackup.JobFinished)
		}
		if j.BackupID != 0 {
			o.BackupId = itoa(j.BackupID)
		}
		out = append(out, o)
	}
	return out, nil
}

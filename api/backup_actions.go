package api

import (
	"context"
	"strconv"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

// maxDBNames caps CreateBackup's DBName list (RDS documents no limit): far
// more databases than one backup of one instance would name, and a bound on
// what a call can make the service hold and check.
const maxDBNames = 1000

func (s *Server) createBackup(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	if s.Backup == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EServiceUnavailable, "Backups are not enabled on this service.")
	}
	// The instance first: a call on an unknown one costs nothing more.
	if _, err := s.findInstance(ctx, id); err != nil {
		return nil, err
	}
	method, err := enumParam(c, "BackupMethod", string(rdsbackup.MethodLogical), string(rdsbackup.MethodPhysical), string(rdsbackup.MethodSnapshot))
	if err != nil {
		return nil, err
	} else if method == "" {
		method = string(rdsbackup.MethodPhysical) // the RDS default
	}
	strategy, err := enumParam(c, "BackupStrategy", "db", "instance")
	if err != nil {
		return nil, err
	}
	if _, err := enumParam(c, "BackupType", "Auto", "FullBackup"); err != nil {
		return nil, err
	}
	dbs, err := dbNames(c.param("DBName"))
	if err != nil {
		return nil, err
	}
	switch {
	case strategy == "" && len(dbs) > 0:
		strategy = "db"
	case strategy == "db" && len(dbs) == 0:
		return nil, rdsbackup.MissingParameter("DBName")
	case strategy == "instance" && len(dbs) > 0:
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "DBName is only used with BackupStrategy db.")
	case strategy == "":
		strategy = "instance"
	}
	if strategy == "db" && method != string(rdsbackup.MethodLogical) {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "BackupStrategy db needs BackupMethod Logical: a physical backup always covers the whole instance.")
	}
	job, err := s.Backup.StartBackup(ctx, id, rdsbackup.BackupOptions{
		Method: rdsbackup.BackupMethod(method), Strategy: strategy, Databases: dbs,
		Mode: rdsbackup.BackupManual, Initiator: rdsbackup.InitiatorUser, StoreStatus: rdsbackup.StoreEnabled,
	})
	if err != nil {
		return nil, err
	}
	return &struct {
		RequestId   string `json:"RequestId" xml:"RequestId"`
		BackupJobId string `json:"BackupJobId" xml:"BackupJobId"`
	}{c.req.RequestID, itoa(job.ID)}, nil
}

// dbNames reads DBName: a comma list of at most maxDBNames names, trimmed,
// empty entries and repeats dropped, first occurrences kept in order. The
// count is checked before anything is split, so an oversized list costs one
// pass over its bytes.
func dbNames(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	if n := strings.Count(v, ",") + 1; n > maxDBNames {
		return nil, rdsbackup.InvalidParameter("DBName", "at most "+strconv.Itoa(maxDBNames)+" names per call, got "+strconv.Itoa(n))
	}
	var dbs []string
	seen := map[string]bool{}
	for name := range strings.SplitSeq(v, ",") {
		if name = strings.TrimSpace(name); name != "" && !seen[name] {
			seen[name] = true
			dbs = append(dbs, name)
		}
	}
	return dbs, nil
}

// backupJobOut is one job on the wire; every field is a string.
type backupJobOut struct {
	BackupJobId          string `json:"BackupJobId" xml:"BackupJobId"`
	BackupId             string `json:"BackupId" xml:"BackupId"`
	BackupStatus         string `json:"BackupStatus" xml:"BackupStatus"`
	BackupProgressStatus string `json:"BackupProgressStatus" xml:"BackupProgressStatus"`
	JobMode              string `json:"JobMode" xml:"JobMode"`
	Process              string `json:"Process" xml:"Process"`
	TaskAction           string `json:"TaskAction" xml:"TaskAction"`
	// FailureReason is an rdsbackup extension: why a Failed job failed.
	FailureReason string `json:"FailureReason,omitempty" xml:"FailureReason,omitempty"`
	// NodeId is an rdsbackup extension: the node that holds (runs or
	// settled) the job (docs/nodes.md).
	NodeId string `json:"NodeId,omitempty" xml:"NodeId,omitempty"`
}

// progressing are the job states DescribeBackupTasks calls "Progressing".
var progressing = []rdsbackup.JobStatus{rdsbackup.JobPreparing, rdsbackup.JobWaiting, rdsbackup.JobUploading, rdsbackup.JobChecking}

func (s *Server) describeBackupTasks(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	f := rdsbackup.JobFilter{InstanceID: id, Limit: 100}
	if v := c.param("BackupJobId"); strings.HasPrefix(v, "R") {
		// A RecoveryDBInstance task (OrderId R…), whatever its state.
		if _, err := s.findInstance(ctx, id); err != nil {
			return nil, err
		}
		tasks, err := s.recoveryTasks(ctx, id, v, nil)
		if err != nil {
			return nil, err
		}
		resp := &backupTasksResponse{RequestId: c.req.RequestID}
		resp.Items.BackupJob = append([]backupJobOut{}, tasks...)
		return resp, nil
	} else if v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return nil, rdsbackup.InvalidParameter("BackupJobId", "must be a backup job id (a positive number), got "+rdsbackup.QuoteValue(v))
		}
		f.ID = &n
	}
	if v, err := enumParam(c, "BackupMode", string(rdsbackup.BackupAutomated), string(rdsbackup.BackupManual)); err != nil {
		return nil, err
	} else if v != "" {
		m := rdsbackup.BackupMode(v)
		f.Mode = &m
	}
	status, err := enumParam(c, "BackupJobStatus", "NoStart", "Progressing", "Finished", "Failed")
	if err != nil {
		return nil, err
	}
	switch status {
	case "NoStart":
		f.Statuses = []rdsbackup.JobStatus{rdsbackup.JobNoStart}
	case "Progressing":
		f.Statuses = progressing
	case "Finished", "Failed": // rdsbackup extension: look at ended jobs
		f.Statuses = []rdsbackup.JobStatus{rdsbackup.JobStatus(status)}
	default:
		// As RDS: without a job id, only the jobs not yet ended; with one,
		// that job whatever its state (Terraform polls it until Finished).
		if f.ID == nil {
			f.Statuses = append([]rdsbackup.JobStatus{rdsbackup.JobNoStart}, progressing...)
		}
	}
	if _, err := s.findInstance(ctx, id); err != nil {
		return nil, err
	}
	jobs, err := s.Jobs.FindJobs(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &backupTasksResponse{RequestId: c.req.RequestID}
	resp.Items.BackupJob = []backupJobOut{}
	for _, j := range jobs {
		out := backupJobOut{
			BackupJobId:          itoa(j.ID),
			BackupStatus:         string(j.Status),
			BackupProgressStatus: string(j.Status),
			JobMode:              string(j.Mode),
			Process:              strconv.Itoa(j.Progress),
			TaskAction:           "TempBackupTask",
			FailureReason:        j.Error,
			NodeId:               j.Node,
		}
		if j.Mode == rdsbackup.BackupAutomated {
			out.TaskAction = "NormalBackupTask"
		}
		if j.Status == rdsbackup.JobFailed {
			// BackupProgressStatus has no Failed: the job's progress ended.
			out.BackupProgressStatus = string(rdsbackup.JobFinished)
		}
		if j.Status.Done() && f.ID != nil && j.BackupSetID != 0 {
			out.BackupId = itoa(j.BackupSetID)
		}
		resp.Items.BackupJob = append(resp.Items.BackupJob, out)
	}
	if f.ID == nil && f.Mode == nil {
		// Restores into this instance (RecoveryDBInstance), in the same
		// shape; see docs/pitr.md.
		tasks, err := s.recoveryTasks(ctx, id, "", f.Statuses)
		if err != nil {
			return nil, err
		}
		resp.Items.BackupJob = append(resp.Items.BackupJob, tasks...)
	}
	return resp, nil
}

type backupTasksResponse struct {
	RequestId string `json:"RequestId" xml:"RequestId"`
	Items     struct {
		BackupJob []backupJobOut `json:"BackupJob" xml:"BackupJob"`
	} `json:"Items" xml:"Items"`
}

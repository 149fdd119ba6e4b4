package api

import (
	"context"
	"strconv"

	"github.com/rdsbackup/rdsbackup"
)

// Clones (docs/clones.md): CloneDBInstance and DeleteDBInstance, and the
// clones' place in DescribeDBInstances / DescribeDBInstanceAttribute.

func (s *Server) cloneDBInstance(ctx context.Context, c *call) (any, error) {
	srcID, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	backupParam, timeParam := c.param("BackupId"), c.param("RestoreTime")
	if (backupParam == "") == (timeParam == "") {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "Give exactly one of BackupId (clone a backup set) or RestoreTime (clone the instance as it was at a time).")
	}
	req := rdsbackup.CloneRequest{Description: c.param("DBInstanceDescription")}
	if timeParam != "" {
		t, ok := parsePITRTime(timeParam)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidRestoreTime, "Specified restore time is not valid. Use yyyy-MM-ddTHH:mm:ssZ (UTC), got %s.", rdsbackup.QuoteValue(timeParam))
		}
		req.RestoreTime = t
	}
	if req.Databases, err = parseDbNames(c.param("DbNames")); err != nil {
		return nil, err
	}
	// BackupType, PayType, class, storage, zone, VPC, …: the cloud's
	// choices for a new instance, which mean nothing here.
	src, err := s.findInstance(ctx, srcID)
	if err != nil {
		return nil, err
	}
	if s.Clones == nil || s.Recovery == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EClonesDisabled, "Clones are not enabled on this service: add a clones section to its config (see docs/clones.md).")
	}
	set, err := s.restoreSet(ctx, srcID, backupParam, req.RestoreTime)
	if err != nil {
		return nil, err
	}
	if backupParam != "" && set.Method == rdsbackup.MethodPhysical {
		switch src.Engine {
		case rdsbackup.EnginePostgreSQL:
			// The image becomes the clone's data directory.
			if len(req.Databases) > 0 {
				return nil, rdsbackup.Errorf(rdsbackup.EInvalidCombination, "Backup set %d is a Physical backup: its clone is the whole instance, so DbNames cannot be given.", set.ID)
			}
			req.Physical = true
		case rdsbackup.EngineMariaDB:
			// Restored into the clone's running server by the engine (a
			// throwaway server on the image, then a dump), so that the
			// clone's root keeps the admin password.
		default:
			return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "Backup set %d is a Physical backup: %s clones are made from Logical sets.", set.ID, src.Engine)
		}
	} else if backupParam != "" && set.Method != rdsbackup.MethodLogical {
		return nil, rdsbackup.Errorf(rdsbackup.EUnsupportedMethod, "Backup set %d is a %s backup: clones are made from Logical or Physical sets, or from a RestoreTime.", set.ID, set.Method)
	}
	req.Source, req.BackupID = src, set.ID
	inSet := setDatabases(set)
	for from := range req.Databases {
		if !inSet[from] {
			return nil, rdsbackup.Errorf(rdsbackup.EDBNameNotFound, "The backup set %d holds no database %s.", set.ID, rdsbackup.QuoteValue(from))
		}
	}
	clone, err := s.Clones.CreateClone(ctx, req)
	if err != nil {
		return nil, err
	}
	return &struct {
		RequestId        string `json:"RequestId" xml:"RequestId"`
		DBInstanceId     string `json:"DBInstanceId" xml:"DBInstanceId"`
		Port             string `json:"Port" xml:"Port"`
		ConnectionString string `json:"ConnectionString" xml:"ConnectionString"`
		OrderId          string `json:"OrderId" xml:"OrderId"`
	}{c.req.RequestID, clone.ID, strconv.Itoa(clone.Port), clone.Host, clone.ID}, nil
}

func (s *Server) deleteDBInstance(ctx context.Context, c *call) (any, error) {
	id, err := c.required("DBInstanceId")
	if err != nil {
		return nil, err
	}
	if _, err := s.Instances.FindInstance(ctx, id); err == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EInstanceNotDeletable, "The instance %s comes from the service's config: remove it there. Only clones are deleted with DeleteDBInstance.", id)
	} else if rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		return nil, err
	}
	if s.Clones == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EInstanceIdNotFound, "The DBInstanceId provided does not exist in records: %s.", rdsbackup.QuoteValue(id))
	}
	if err := s.Clones.DeleteClone(ctx, id); rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
		return nil, rdsbackup.Errorf(rdsbackup.EInstanceIdNotFound, "The DBInstanceId provided does not exist in records: %s.", rdsbackup.QuoteValue(id))
	} else if err != nil {
		return nil, err
	}
	return &struct {
		RequestId string `json:"RequestId" xml:"RequestId"`
		RegionId  string `json:"RegionId" xml:"RegionId"`
	}{c.req.RequestID, s.Region}, nil
}

// cloneInstance is a clone as the instance actions show it.
func cloneInstance(cl *rdsbackup.Clone) *rdsbackup.Instance {
	return &rdsbackup.Instance{ID: cl.ID, Engine: cl.Engine, Description: cloneDescription(cl), CreatedAt: cl.CreatedAt, UpdatedAt: cl.CreatedAt}
}

// cloneDescription tells where a clone comes from, what is being done to
// it, and why it failed.
func cloneDescription(cl *rdsbackup.Clone) string {
	d := cl.Description
	switch {
	case cl.Status == rdsbackup.CloneFailed && cl.Reason != "":
		d += " (Failed: " + cl.Reason + ")"
	case cl.Status == rdsbackup.CloneCreating:
		d += " (starting its server)"
	case cl.Status == rdsbackup.CloneRestoring:
		d += " (restoring backup set " + strconv.FormatInt(cl.BackupID, 10) + ")"
	}
	return d
}

// cloneStatus is a clone's DBInstanceStatus: Creating until the data is
// in, through the restore too, because Terraform's
// alicloud_rds_clone_db_instance waits with Creating as the only pending
// state and fails on any other (the restore phase shows in the
// description).
func cloneStatus(cl *rdsbackup.Clone) string {
	if cl.Status == rdsbackup.CloneRestoring {
		return string(rdsbackup.CloneCreating)
	}
	return string(cl.Status)
}

// clones lists the clones (none when they are off).
func (s *Server) clones(ctx context.Context) ([]*rdsbackup.Clone, error) {
	if s.Clones == nil {
		return nil, nil
	}
	return s.Clones.FindClones(ctx)
}

// cloneAttribute is DescribeDBInstanceAttribute's item for a clone: where
// its server is, how much disk it takes, what it is a clone of.
func (s *Server) cloneAttribute(cl *rdsbackup.Clone) instanceAttributeOut {
	common := s.instanceCommon(cloneInstance(cl))
	common.DBInstanceStatus = cloneStatus(cl)
	a := instanceAttributeOut{
		instanceCommon:     common,
		CreationTime:       formatTime(cl.CreatedAt),
		ConnectionString:   cl.Host,
		Port:               strconv.Itoa(cl.Port),
		DBInstanceDiskUsed: strconv.FormatInt(cl.DiskUsed, 10),
		AccountType:        "Normal",
		SlaveZones:         slaveZones{SlaveZone: []slaveZone{}},
		DBClusterNodes:     dbClusterNodes{DBClusterNode: []struct{}{}},
	}
	if cl.Status == rdsbackup.CloneFailed {
		a.ConnectionString, a.Port = "", ""
	}
	a.Extra.DBInstanceIds.DBInstanceId = []string{}
	return a
}

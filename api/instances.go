package api

import (
	"context"

	"github.com/rdsbackup/rdsbackup"
)

func (s *Server) rdsActions() map[string]action {
	return map[string]action{
		"DescribeBackups":             {fn: s.describeBackups, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeDBInstances":         {fn: s.describeDBInstances, resources: instanceResources},
		"DescribeDBInstanceAttribute": {fn: s.describeDBInstanceAttribute, resources: instanceResources, required: []string{"DBInstanceId"}},
		"CreateBackup":                {fn: s.createBackup, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeBackupTasks":         {fn: s.describeBackupTasks, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeBackupPolicy":        {fn: s.describeBackupPolicy, resources: instanceResources, required: []string{"DBInstanceId"}},
		"ModifyBackupPolicy":          {fn: s.modifyBackupPolicy, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DeleteBackup":                {fn: s.deleteBackup, resources: instanceResources, required: []string{"DBInstanceId", "BackupId"}},
	}
}

// instanceOut is what DescribeDBInstances shows of an instance. Counters of
// this action are numbers, unlike DescribeBackups (reference §1.4).
type instanceOut struct {
	DBInstanceId          string `json:"DBInstanceId" xml:"DBInstanceId"`
	DBInstanceDescription string `json:"DBInstanceDescription" xml:"DBInstanceDescription"`
	Engine                string `json:"Engine" xml:"Engine"`
	EngineVersion         string `json:"EngineVersion" xml:"EngineVersion"`
	DBInstanceStatus      string `json:"DBInstanceStatus" xml:"DBInstanceStatus"`
	RegionId              string `json:"RegionId" xml:"RegionId"`
	ZoneId                string `json:"ZoneId" xml:"ZoneId"`
	DBInstanceType        string `json:"DBInstanceType" xml:"DBInstanceType"`
	DBInstanceClass       string `json:"DBInstanceClass" xml:"DBInstanceClass"`
	DBInstanceNetType     string `json:"DBInstanceNetType" xml:"DBInstanceNetType"`
	InstanceNetworkType   string `json:"InstanceNetworkType" xml:"InstanceNetworkType"`
	PayType               string `json:"PayType" xml:"PayType"`
	LockMode              string `json:"LockMode" xml:"LockMode"`
	CreateTime            string `json:"CreateTime" xml:"CreateTime"`
	ExpireTime            string `json:"ExpireTime" xml:"ExpireTime"`
	ResourceGroupId       string `json:"ResourceGroupId" xml:"ResourceGroupId"`
	MutriORsignle         bool   `json:"MutriORsignle" xml:"MutriORsignle"`
	DeletionProtection    bool   `json:"DeletionProtection" xml:"DeletionProtection"`
}

type describeDBInstancesResponse struct {
	RequestId        string `json:"RequestId" xml:"RequestId"`
	PageNumber       int    `json:"PageNumber" xml:"PageNumber"`
	PageRecordCount  int    `json:"PageRecordCount" xml:"PageRecordCount"`
	TotalRecordCount int    `json:"TotalRecordCount" xml:"TotalRecordCount"`
	NextToken        string `json:"NextToken" xml:"NextToken"`
	Items            struct {
		DBInstance []instanceOut `json:"DBInstance" xml:"DBInstance"`
	} `json:"Items" xml:"Items"`
}

// instanceStatus: a registered instance is always "Running" from the API's
// point of view; reachability is checked when a backup runs, so that the
// service starts and answers without the database servers.
const instanceStatus = "Running"

func (s *Server) instanceOut(inst *rdsbackup.Instance) instanceOut {
	return instanceOut{
		DBInstanceId:          inst.ID,
		DBInstanceDescription: inst.Description,
		Engine:                string(inst.Engine),
		EngineVersion:         inst.EngineVersion,
		DBInstanceStatus:      instanceStatus,
		RegionId:              s.Region,
		ZoneId:                s.Region + "-a",
		DBInstanceType:        "Primary",
		DBInstanceClass:       "self-hosted",
		DBInstanceNetType:     "Intranet",
		InstanceNetworkType:   "Classic",
		PayType:               "Postpaid",
		LockMode:              "Unlock",
		CreateTime:            formatTime(inst.CreatedAt),
	}
}

func (s *Server) describeDBInstances(ctx context.Context, c *call) (any, error) {
	pageSize, page := 30, 1
	if v := c.param("PageSize"); v != "" {
		n, ok := positiveInt(v)
		if !ok || n > 100 {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidPageSize, "Specified record number is not valid. PageSize must be 1 to 100, got %s.", rdsbackup.QuoteValue(v))
		}
		pageSize = n
	}
	if v := c.param("PageNumber"); v != "" {
		n, ok := positiveInt(v)
		if !ok {
			return nil, rdsbackup.Errorf(rdsbackup.EInvalidPageNumber, "Specified page number is not valid. PageNumber must be a positive integer, got %s.", rdsbackup.QuoteValue(v))
		}
		page = n
	}
	engine, err := enumParam(c, "Engine", "MySQL", "MariaDB", "PostgreSQL", "SQLServer")
	if err != nil {
		return nil, err
	}
	var wantIDs map[string]bool
	if ids := instanceIDs(c); len(ids) > 0 {
		wantIDs = map[string]bool{}
		for _, id := range ids {
			wantIDs[id] = true
		}
	}
	status := c.param("DBInstanceStatus")
	all, _, err := s.Instances.FindInstances(ctx, 0, 0)
	if err != nil {
		return nil, err
	}
	// Instances come from the configuration, so they are few: filter here.
	var match []*rdsbackup.Instance
	for _, inst := range all {
		if (wantIDs == nil || wantIDs[inst.ID]) && (engine == "" || string(inst.Engine) == engine) &&
			(status == "" || status == instanceStatus) {
			match = append(match, inst)
		}
	}
	resp := &describeDBInstancesResponse{RequestId: c.req.RequestID, PageNumber: page, TotalRecordCount: len(match)}
	resp.Items.DBInstance = []instanceOut{}
	for i := (page - 1) * pageSize; i < len(match) && i < page*pageSize; i++ {
		resp.Items.DBInstance = append(resp.Items.DBInstance, s.instanceOut(match[i]))
	}
	resp.PageRecordCount = len(resp.Items.DBInstance)
	return resp, nil
}

type instanceAttributeOut struct {
	instanceOut
	DBInstanceStorage     int    `json:"DBInstanceStorage" xml:"DBInstanceStorage"`
	DBInstanceMemory      int64  `json:"DBInstanceMemory" xml:"DBInstanceMemory"`
	DBInstanceCPU         string `json:"DBInstanceCPU" xml:"DBInstanceCPU"`
	MaxConnections        int    `json:"MaxConnections" xml:"MaxConnections"`
	MaxIOPS               int    `json:"MaxIOPS" xml:"MaxIOPS"`
	DBMaxQuantity         int    `json:"DBMaxQuantity" xml:"DBMaxQuantity"`
	AccountMaxQuantity    int    `json:"AccountMaxQuantity" xml:"AccountMaxQuantity"`
	Category              string `json:"Category" xml:"Category"`
	DBInstanceStorageType string `json:"DBInstanceStorageType" xml:"DBInstanceStorageType"`
	MaintainTime          string `json:"MaintainTime" xml:"MaintainTime"`
	AccountType           string `json:"AccountType" xml:"AccountType"`
	SupportUpgradeAccount string `json:"SupportUpgradeAccountType" xml:"SupportUpgradeAccountType"`
}

type describeDBInstanceAttributeResponse struct {
	RequestId string `json:"RequestId" xml:"RequestId"`
	Items     struct {
		DBInstanceAttribute []instanceAttributeOut `json:"DBInstanceAttribute" xml:"DBInstanceAttribute"`
	} `json:"Items" xml:"Items"`
}

func (s *Server) describeDBInstanceAttribute(ctx context.Context, c *call) (any, error) {
	ids := instanceIDs(c)
	if len(ids) == 0 {
		return nil, rdsbackup.MissingParameter("DBInstanceId")
	}
	resp := &describeDBInstanceAttributeResponse{RequestId: c.req.RequestID}
	resp.Items.DBInstanceAttribute = []instanceAttributeOut{}
	for _, id := range ids {
		inst, err := s.Instances.FindInstance(ctx, id)
		if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
			return nil, rdsbackup.Errorf(rdsbackup.EInstanceNotFound, "The specified instance %s does not exist or is not supported.", rdsbackup.QuoteValue(id))
		} else if err != nil {
			return nil, err
		}
		resp.Items.DBInstanceAttribute = append(resp.Items.DBInstanceAttribute, instanceAttributeOut{
			instanceOut: s.instanceOut(inst),
			Category:    "Basic",
			AccountType: "Normal",
		})
	}
	return resp, nil
}

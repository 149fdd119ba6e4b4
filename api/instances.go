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

		"DescribeBinlogFiles":                {fn: s.describeBinlogFiles, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeLocalAvailableRecoveryTime": {fn: s.describeLocalAvailableRecoveryTime, resources: instanceResources, required: []string{"DBInstanceId"}},
		"RecoveryDBInstance":                 {fn: s.recoveryDBInstance, resources: recoveryResources, required: []string{"DBInstanceId", "TargetDBInstanceId"}},

		"CloneDBInstance":  {fn: s.cloneDBInstance, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DeleteDBInstance": {fn: s.deleteDBInstance, resources: instanceResources, required: []string{"DBInstanceId"}},

		// What Terraform's alicloud_rds_clone_db_instance reads (instance_net.go).
		"DescribeDBInstanceNetInfo":     {fn: s.describeDBInstanceNetInfo, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeDBInstanceIPArrayList": {fn: s.describeDBInstanceIPArrayList, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeDBInstanceSSL":         {fn: s.describeDBInstanceSSL, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeDBInstanceHAConfig":    {fn: s.describeDBInstanceHAConfig, resources: instanceResources, required: []string{"DBInstanceId"}},
		"DescribeParameters":            {fn: s.describeParameters, resources: instanceResources, required: []string{"DBInstanceId"}},
	}
}

// The instance actions answer with the official SDK's field names and JSON
// types (services/rds: DBInstance, DBInstanceAttribute), and send every
// nested object and list of those structs even when it is empty: clients
// index them without checking (Terraform's alicloud_db_instances panics on a
// missing ReadOnlyDBInstanceIds.ReadOnlyDBInstanceId or SlaveZones.SlaveZone).
// A field rdsbackup has nothing true to say about is empty, never made up.

// instanceCommon is what both actions show alike. EngineVersion is what the
// server reported the last time a backup talked to it; "" before that.
type instanceCommon struct {
	DBInstanceId          string                `json:"DBInstanceId" xml:"DBInstanceId"`
	DBInstanceDescription string                `json:"DBInstanceDescription" xml:"DBInstanceDescription"`
	Engine                string                `json:"Engine" xml:"Engine"`
	EngineVersion         string                `json:"EngineVersion" xml:"EngineVersion"`
	DBInstanceStatus      string                `json:"DBInstanceStatus" xml:"DBInstanceStatus"`
	RegionId              string                `json:"RegionId" xml:"RegionId"`
	ZoneId                string                `json:"ZoneId" xml:"ZoneId"`
	DBInstanceType        string                `json:"DBInstanceType" xml:"DBInstanceType"`
	DBInstanceClass       string                `json:"DBInstanceClass" xml:"DBInstanceClass"`
	DBInstanceNetType     string                `json:"DBInstanceNetType" xml:"DBInstanceNetType"`
	InstanceNetworkType   string                `json:"InstanceNetworkType" xml:"InstanceNetworkType"`
	ConnectionMode        string                `json:"ConnectionMode" xml:"ConnectionMode"`
	DBInstanceStorageType string                `json:"DBInstanceStorageType" xml:"DBInstanceStorageType"`
	Category              string                `json:"Category" xml:"Category"`
	PayType               string                `json:"PayType" xml:"PayType"`
	LockMode              string                `json:"LockMode" xml:"LockMode"`
	LockReason            string                `json:"LockReason" xml:"LockReason"`
	ExpireTime            string                `json:"ExpireTime" xml:"ExpireTime"`
	ResourceGroupId       string                `json:"ResourceGroupId" xml:"ResourceGroupId"`
	VpcId                 string                `json:"VpcId" xml:"VpcId"`
	VSwitchId             string                `json:"VSwitchId" xml:"VSwitchId"`
	MasterInstanceId      string                `json:"MasterInstanceId" xml:"MasterInstanceId"`
	GuardDBInstanceId     string                `json:"GuardDBInstanceId" xml:"GuardDBInstanceId"`
	TempDBInstanceId      string                `json:"TempDBInstanceId" xml:"TempDBInstanceId"`
	DeletionProtection    bool                  `json:"DeletionProtection" xml:"DeletionProtection"`
	ReadOnlyDBInstanceIds readOnlyDBInstanceIds `json:"ReadOnlyDBInstanceIds" xml:"ReadOnlyDBInstanceIds"`
}

// readOnlyDBInstanceIds lists read-only replicas; rdsbackup's instances have
// none that it knows of.
type readOnlyDBInstanceIds struct {
	ReadOnlyDBInstanceId []readOnlyDBInstanceId `json:"ReadOnlyDBInstanceId" xml:"ReadOnlyDBInstanceId"`
}

type readOnlyDBInstanceId struct {
	DBInstanceId string `json:"DBInstanceId" xml:"DBInstanceId"`
}

// instanceOut is one item of DescribeDBInstances (the SDK's DBInstance).
// Counters of this action are numbers, unlike DescribeBackups (reference
// §1.4).
type instanceOut struct {
	instanceCommon
	CreateTime    string `json:"CreateTime" xml:"CreateTime"`
	MutriORsignle bool   `json:"MutriORsignle" xml:"MutriORsignle"`
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

func (s *Server) instanceCommon(inst *rdsbackup.Instance) instanceCommon {
	return instanceCommon{
		DBInstanceId:          inst.ID,
		DBInstanceDescription: inst.Description,
		Engine:                string(inst.Engine),
		EngineVersion:         inst.EngineVersion,
		DBInstanceStatus:      instanceStatus,
		RegionId:              s.Region,
		DBInstanceType:        "Primary",
		DBInstanceClass:       "self-hosted",
		DBInstanceNetType:     "Intranet",
		InstanceNetworkType:   "Classic",
		Category:              "Basic",
		PayType:               "Postpaid",
		LockMode:              "Unlock",
		ReadOnlyDBInstanceIds: readOnlyDBInstanceIds{ReadOnlyDBInstanceId: []readOnlyDBInstanceId{}},
	}
}

func (s *Server) instanceOut(inst *rdsbackup.Instance) instanceOut {
	return instanceOut{instanceCommon: s.instanceCommon(inst), CreateTime: formatTime(inst.CreatedAt)}
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
	statuses := map[string]string{}
	for _, inst := range all {
		if (wantIDs == nil || wantIDs[inst.ID]) && (engine == "" || string(inst.Engine) == engine) {
			st := s.instanceStatus(ctx, inst.ID)
			if status == "" || status == st {
				match = append(match, inst)
				statuses[inst.ID] = st
			}
		}
	}
	// Clones after the instances of the config.
	clones, err := s.clones(ctx)
	if err != nil {
		return nil, err
	}
	for _, cl := range clones {
		inst := cloneInstance(cl)
		if (wantIDs == nil || wantIDs[inst.ID]) && (engine == "" || string(inst.Engine) == engine) && (status == "" || status == cloneStatus(cl)) {
			match = append(match, inst)
			statuses[inst.ID] = cloneStatus(cl)
		}
	}
	resp := &describeDBInstancesResponse{RequestId: c.req.RequestID, PageNumber: page, TotalRecordCount: len(match)}
	resp.Items.DBInstance = []instanceOut{}
	for i := (page - 1) * pageSize; i < len(match) && i < page*pageSize; i++ {
		out := s.instanceOut(match[i])
		out.DBInstanceStatus = statuses[match[i].ID]
		resp.Items.DBInstance = append(resp.Items.DBInstance, out)
	}
	resp.PageRecordCount = len(resp.Items.DBInstance)
	return resp, nil
}

// instanceAttributeOut is one item of DescribeDBInstanceAttribute (the
// SDK's DBInstanceAttribute). Where the server is (ConnectionString, Port)
// is left out for the instances of the config, as everything else in the
// DSN is; a clone's is shown (and its disk use, DBInstanceDiskUsed, bytes).
type instanceAttributeOut struct {
	instanceCommon
	CreationTime              string           `json:"CreationTime" xml:"CreationTime"`
	ConnectionString          string           `json:"ConnectionString" xml:"ConnectionString"`
	Port                      string           `json:"Port" xml:"Port"`
	DBInstanceDiskUsed        string           `json:"DBInstanceDiskUsed" xml:"DBInstanceDiskUsed"`
	MasterZone                string           `json:"MasterZone" xml:"MasterZone"`
	DBInstanceStorage         int              `json:"DBInstanceStorage" xml:"DBInstanceStorage"`
	DBInstanceMemory          int64            `json:"DBInstanceMemory" xml:"DBInstanceMemory"`
	DBInstanceCPU             string           `json:"DBInstanceCPU" xml:"DBInstanceCPU"`
	MaxConnections            int              `json:"MaxConnections" xml:"MaxConnections"`
	MaxIOPS                   int              `json:"MaxIOPS" xml:"MaxIOPS"`
	DBMaxQuantity             int              `json:"DBMaxQuantity" xml:"DBMaxQuantity"`
	AccountMaxQuantity        int              `json:"AccountMaxQuantity" xml:"AccountMaxQuantity"`
	MaintainTime              string           `json:"MaintainTime" xml:"MaintainTime"`
	AccountType               string           `json:"AccountType" xml:"AccountType"`
	SupportUpgradeAccountType string           `json:"SupportUpgradeAccountType" xml:"SupportUpgradeAccountType"`
	SecurityIPMode            string           `json:"SecurityIPMode" xml:"SecurityIPMode"`
	AutoUpgradeMinorVersion   string           `json:"AutoUpgradeMinorVersion" xml:"AutoUpgradeMinorVersion"`
	CurrentKernelVersion      string           `json:"CurrentKernelVersion" xml:"CurrentKernelVersion"`
	TimeZone                  string           `json:"TimeZone" xml:"TimeZone"`
	Collation                 string           `json:"Collation" xml:"Collation"`
	PGBouncerEnabled          string           `json:"PGBouncerEnabled" xml:"PGBouncerEnabled"`
	BurstingEnabled           bool             `json:"BurstingEnabled" xml:"BurstingEnabled"`
	ColdDataEnabled           bool             `json:"ColdDataEnabled" xml:"ColdDataEnabled"`
	SlaveZones                slaveZones       `json:"SlaveZones" xml:"SlaveZones"`
	Extra                     instanceExtra    `json:"Extra" xml:"Extra"`
	ServerlessConfig          serverlessConfig `json:"ServerlessConfig" xml:"ServerlessConfig"`
	BabelfishConfig           babelfishConfig  `json:"BabelfishConfig" xml:"BabelfishConfig"`
	DBClusterNodes            dbClusterNodes   `json:"DBClusterNodes" xml:"DBClusterNodes"`
}

type slaveZones struct {
	SlaveZone []slaveZone `json:"SlaveZone" xml:"SlaveZone"`
}

type slaveZone struct {
	ZoneId string `json:"ZoneId" xml:"ZoneId"`
}

type instanceExtra struct {
	RecoveryModel             string `json:"RecoveryModel" xml:"RecoveryModel"`
	ReplicaGroupID            string `json:"ReplicaGroupID" xml:"ReplicaGroupID"`
	ReplicaGroupStatus        string `json:"ReplicaGroupStatus" xml:"ReplicaGroupStatus"`
	ActiveReplicaDBInstanceID string `json:"ActiveReplicaDBInstanceID" xml:"ActiveReplicaDBInstanceID"`
	DBInstanceIds             struct {
		DBInstanceId []string `json:"DBInstanceId" xml:"DBInstanceId"`
	} `json:"DBInstanceIds" xml:"DBInstanceIds"`
}

type serverlessConfig struct {
	ScaleMin    string `json:"ScaleMin" xml:"ScaleMin"`
	ScaleMax    string `json:"ScaleMax" xml:"ScaleMax"`
	AutoPause   bool   `json:"AutoPause" xml:"AutoPause"`
	SwitchForce bool   `json:"SwitchForce" xml:"SwitchForce"`
}

type babelfishConfig struct {
	BabelfishEnabled string `json:"BabelfishEnabled" xml:"BabelfishEnabled"`
	MigrationMode    string `json:"MigrationMode" xml:"MigrationMode"`
}

// dbClusterNodes would list a cluster's nodes; an instance here is one server.
type dbClusterNodes struct {
	DBClusterNode []struct{} `json:"DBClusterNode" xml:"DBClusterNode"`
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
		if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND && s.Clones != nil {
			if cl, cerr := s.Clones.FindClone(ctx, id); cerr == nil {
				resp.Items.DBInstanceAttribute = append(resp.Items.DBInstanceAttribute, s.cloneAttribute(cl))
				continue
			}
		}
		if rdsbackup.ErrorCode(err) == rdsbackup.ENOTFOUND {
			return nil, rdsbackup.Errorf(rdsbackup.EInstanceIdNotFound, "The DBInstanceId provided does not exist in records: %s.", rdsbackup.QuoteValue(id))
		} else if err != nil {
			return nil, err
		}
		common := s.instanceCommon(inst)
		common.DBInstanceStatus = s.instanceStatus(ctx, inst.ID)
		a := instanceAttributeOut{
			instanceCommon: common,
			CreationTime:   formatTime(inst.CreatedAt),
			AccountType:    "Normal",
			SlaveZones:     slaveZones{SlaveZone: []slaveZone{}},
			DBClusterNodes: dbClusterNodes{DBClusterNode: []struct{}{}},
		}
		a.Extra.DBInstanceIds.DBInstanceId = []string{}
		resp.Items.DBInstanceAttribute = append(resp.Items.DBInstanceAttribute, a)
	}
	return resp, nil
}

package api

import (
	"context"
	"net"
	"strconv"

	"github.com/rdsbackup/rdsbackup"
)

// The instance actions Terraform's alicloud_rds_clone_db_instance reads
// after it made a clone (resourceAlicloudRdsCloneDbInstanceRead):
// DescribeDBInstanceNetInfo, DescribeDBInstanceIPArrayList,
// DescribeDBInstanceSSL, DescribeDBInstanceHAConfig, DescribeParameters.
// A clone's answers are true (its address and port, who may connect, no
// SSL); for an instance of the config rdsbackup knows none of it (the
// address is in the DSN, which the API never shows), so the lists are empty
// and the strings "". Shapes and JSON types are the official SDK's.

// instanceOrClone finds an instance of the config, or a clone (nil
// instance then).
func (s *Server) instanceOrClone(ctx context.Context, id string) (*rdsbackup.Instance, *rdsbackup.Clone, error) {
	inst, err := s.Instances.FindInstance(ctx, id)
	if err == nil {
		return inst, nil, nil
	}
	if rdsbackup.ErrorCode(err) != rdsbackup.ENOTFOUND {
		return nil, nil, err
	}
	if s.Clones != nil {
		if cl, cerr := s.Clones.FindClone(ctx, id); cerr == nil {
			return nil, cl, nil
		}
	}
	return nil, nil, rdsbackup.Errorf(rdsbackup.EInstanceIdNotFound, "The DBInstanceId provided does not exist in records: %s.", rdsbackup.QuoteValue(id))
}

// cloneServes reports whether a clone has a server to describe.
func cloneServes(cl *rdsbackup.Clone) bool {
	return cl != nil && cl.Status != rdsbackup.CloneFailed
}

type netInfoOut struct {
	ConnectionString     string `json:"ConnectionString" xml:"ConnectionString"`
	IPAddress            string `json:"IPAddress" xml:"IPAddress"`
	IPType               string `json:"IPType" xml:"IPType"`
	Port                 string `json:"Port" xml:"Port"`
	VPCId                string `json:"VPCId" xml:"VPCId"`
	VSwitchId            string `json:"VSwitchId" xml:"VSwitchId"`
	Upgradeable          string `json:"Upgradeable" xml:"Upgradeable"`
	ExpiredTime          string `json:"ExpiredTime" xml:"ExpiredTime"`
	ConnectionStringType string `json:"ConnectionStringType" xml:"ConnectionStringType"`
	SecurityIPGroups     struct {
		SecurityIPGroup []struct{} `json:"securityIPGroup" xml:"securityIPGroup"`
	} `json:"SecurityIPGroups" xml:"SecurityIPGroups"`
	DBInstanceWeights struct {
		DBInstanceWeight []struct{} `json:"DBInstanceWeight" xml:"DBInstanceWeight"`
	} `json:"DBInstanceWeights" xml:"DBInstanceWeights"`
}

func (s *Server) describeDBInstanceNetInfo(ctx context.Context, c *call) (any, error) {
	_, cl, err := s.instanceOrClone(ctx, c.param("DBInstanceId"))
	if err != nil {
		return nil, err
	}
	resp := &struct {
		RequestId           string `json:"RequestId" xml:"RequestId"`
		InstanceNetworkType string `json:"InstanceNetworkType" xml:"InstanceNetworkType"`
		SecurityIPMode      string `json:"SecurityIPMode" xml:"SecurityIPMode"`
		DBInstanceNetInfos  struct {
			DBInstanceNetInfo []netInfoOut `json:"DBInstanceNetInfo" xml:"DBInstanceNetInfo"`
		} `json:"DBInstanceNetInfos" xml:"DBInstanceNetInfos"`
	}{RequestId: c.req.RequestID, InstanceNetworkType: "Classic"}
	resp.DBInstanceNetInfos.DBInstanceNetInfo = []netInfoOut{}
	if cloneServes(cl) {
		n := netInfoOut{ConnectionString: cl.Host, Port: strconv.Itoa(cl.Port), IPType: "Private", ConnectionStringType: "Normal", Upgradeable: "Disabled"}
		if net.ParseIP(cl.Host) != nil {
			n.IPAddress = cl.Host
		} else if ip := net.ParseIP(cl.Bind); ip != nil && !ip.IsUnspecified() {
			n.IPAddress = cl.Bind
		}
		if ip := net.ParseIP(n.IPAddress); ip != nil && !ip.IsLoopback() && !ip.IsPrivate() {
			n.IPType = "Public"
		}
		n.SecurityIPGroups.SecurityIPGroup = []struct{}{}
		n.DBInstanceWeights.DBInstanceWeight = []struct{}{}
		resp.DBInstanceNetInfos.DBInstanceNetInfo = append(resp.DBInstanceNetInfos.DBInstanceNetInfo, n)
	}
	return resp, nil
}

type ipArrayOut struct {
	DBInstanceIPArrayName      string `json:"DBInstanceIPArrayName" xml:"DBInstanceIPArrayName"`
	DBInstanceIPArrayAttribute string `json:"DBInstanceIPArrayAttribute" xml:"DBInstanceIPArrayAttribute"`
	SecurityIPType             string `json:"SecurityIPType" xml:"SecurityIPType"`
	SecurityIPList             string `json:"SecurityIPList" xml:"SecurityIPList"`
	WhitelistNetworkType       string `json:"WhitelistNetworkType" xml:"WhitelistNetworkType"`
}

func (s *Server) describeDBInstanceIPArrayList(ctx context.Context, c *call) (any, error) {
	_, cl, err := s.instanceOrClone(ctx, c.param("DBInstanceId"))
	if err != nil {
		return nil, err
	}
	resp := &struct {
		RequestId string `json:"RequestId" xml:"RequestId"`
		Items     struct {
			DBInstanceIPArray []ipArrayOut `json:"DBInstanceIPArray" xml:"DBInstanceIPArray"`
		} `json:"Items" xml:"Items"`
	}{RequestId: c.req.RequestID}
	resp.Items.DBInstanceIPArray = []ipArrayOut{}
	if cloneServes(cl) {
		// Who can reach the clone's server: this host alone on a loopback
		// bind, anyone who reaches the address otherwise (with the
		// password).
		list := "0.0.0.0/0"
		if ip := net.ParseIP(cl.Bind); ip != nil && ip.IsLoopback() {
			list = cl.Bind
		}
		resp.Items.DBInstanceIPArray = append(resp.Items.DBInstanceIPArray,
			ipArrayOut{DBInstanceIPArrayName: "default", SecurityIPType: "IPv4", SecurityIPList: list, WhitelistNetworkType: "MIX"})
	}
	return resp, nil
}

func (s *Server) describeDBInstanceSSL(ctx context.Context, c *call) (any, error) {
	_, cl, err := s.instanceOrClone(ctx, c.param("DBInstanceId"))
	if err != nil {
		return nil, err
	}
	resp := &struct {
		RequestId                string `json:"RequestId" xml:"RequestId"`
		ConnectionString         string `json:"ConnectionString" xml:"ConnectionString"`
		SSLEnabled               string `json:"SSLEnabled" xml:"SSLEnabled"`
		SSLExpireTime            string `json:"SSLExpireTime" xml:"SSLExpireTime"`
		SSLCreateTime            string `json:"SSLCreateTime" xml:"SSLCreateTime"`
		RequireUpdate            string `json:"RequireUpdate" xml:"RequireUpdate"`
		RequireUpdateItem        string `json:"RequireUpdateItem" xml:"RequireUpdateItem"`
		RequireUpdateReason      string `json:"RequireUpdateReason" xml:"RequireUpdateReason"`
		CAType                   string `json:"CAType" xml:"CAType"`
		ServerCAUrl              string `json:"ServerCAUrl" xml:"ServerCAUrl"`
		ServerCert               string `json:"ServerCert" xml:"ServerCert"`
		ServerKey                string `json:"ServerKey" xml:"ServerKey"`
		ClientCACert             string `json:"ClientCACert" xml:"ClientCACert"`
		ClientCACertExpireTime   string `json:"ClientCACertExpireTime" xml:"ClientCACertExpireTime"`
		ClientCertRevocationList string `json:"ClientCertRevocationList" xml:"ClientCertRevocationList"`
		ACL                      string `json:"ACL" xml:"ACL"`
		ReplicationACL           string `json:"ReplicationACL" xml:"ReplicationACL"`
		LastModifyStatus         string `json:"LastModifyStatus" xml:"LastModifyStatus"`
		ModifyStatusReason       string `json:"ModifyStatusReason" xml:"ModifyStatusReason"`
		ForceEncryption          string `json:"ForceEncryption" xml:"ForceEncryption"`
		TlsVersion               string `json:"TlsVersion" xml:"TlsVersion"`
	}{RequestId: c.req.RequestID}
	if cloneServes(cl) {
		// The clones' servers are started without TLS.
		resp.ConnectionString, resp.SSLEnabled = cl.Host, "off"
	}
	return resp, nil
}

func (s *Server) describeDBInstanceHAConfig(ctx context.Context, c *call) (any, error) {
	id := c.param("DBInstanceId")
	if _, _, err := s.instanceOrClone(ctx, id); err != nil {
		return nil, err
	}
	// One server, no replica that rdsbackup knows of: no HA mode to tell.
	resp := &struct {
		RequestId         string `json:"RequestId" xml:"RequestId"`
		DBInstanceId      string `json:"DBInstanceId" xml:"DBInstanceId"`
		HAMode            string `json:"HAMode" xml:"HAMode"`
		SyncMode          string `json:"SyncMode" xml:"SyncMode"`
		HostInstanceInfos struct {
			NodeInfo []struct{} `json:"NodeInfo" xml:"NodeInfo"`
		} `json:"HostInstanceInfos" xml:"HostInstanceInfos"`
	}{RequestId: c.req.RequestID, DBInstanceId: id}
	resp.HostInstanceInfos.NodeInfo = []struct{}{}
	return resp, nil
}

func (s *Server) describeParameters(ctx context.Context, c *call) (any, error) {
	inst, cl, err := s.instanceOrClone(ctx, c.param("DBInstanceId"))
	if err != nil {
		return nil, err
	}
	if inst == nil {
		inst = cloneInstance(cl)
	}
	// No parameter is managed through rdsbackup: both lists are empty.
	resp := &struct {
		RequestId      string `json:"RequestId" xml:"RequestId"`
		Engine         string `json:"Engine" xml:"Engine"`
		EngineVersion  string `json:"EngineVersion" xml:"EngineVersion"`
		ParamGroupInfo struct {
			ParameterGroupName string `json:"ParameterGroupName" xml:"ParameterGroupName"`
			ParameterGroupDesc string `json:"ParameterGroupDesc" xml:"ParameterGroupDesc"`
			ParameterGroupType string `json:"ParameterGroupType" xml:"ParameterGroupType"`
			ParamGroupId       string `json:"ParamGroupId" xml:"ParamGroupId"`
		} `json:"ParamGroupInfo" xml:"ParamGroupInfo"`
		ConfigParameters struct {
			DBInstanceParameter []struct{} `json:"DBInstanceParameter" xml:"DBInstanceParameter"`
		} `json:"ConfigParameters" xml:"ConfigParameters"`
		RunningParameters struct {
			DBInstanceParameter []struct{} `json:"DBInstanceParameter" xml:"DBInstanceParameter"`
		} `json:"RunningParameters" xml:"RunningParameters"`
	}{RequestId: c.req.RequestID, Engine: string(inst.Engine), EngineVersion: inst.EngineVersion}
	resp.ConfigParameters.DBInstanceParameter = []struct{}{}
	resp.RunningParameters.DBInstanceParameter = []struct{}{}
	return resp, nil
}

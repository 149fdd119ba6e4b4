package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// mixedInstancesYAML registers one instance of each engine. Every DSN has
// the password dsnPassword, which no response may show.
const (
	dsnPassword        = "Sup3rS3cretDsnPw"
	mixedInstancesYAML = `instances:
  - id: rm-a1
    engine: MySQL
    dsn: "root:` + dsnPassword + `@tcp(127.0.0.1:3306)/"
    description: shop database
  - id: rm-m1
    engine: MariaDB
    dsn: "root:` + dsnPassword + `@tcp(127.0.0.1:3307)/"
  - id: pg-1
    engine: PostgreSQL
    dsn: "postgres://backup:` + dsnPassword + `@127.0.0.1:5432/app"
  - id: ms-1
    engine: SQLServer
    dsn: "sqlserver://sa:` + dsnPassword + `@127.0.0.1:1433?database=app"
`
)

func TestDescribeDBInstances(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), mixedInstancesYAML, testEnv(nil))
	c := rootClients(t, s)
	call := func(setup func(*rds.DescribeDBInstancesRequest)) *rds.DescribeDBInstancesResponse {
		t.Helper()
		req := rds.CreateDescribeDBInstancesRequest()
		setup(req)
		resp, err := c.RDS.DescribeDBInstances(req)
		if err != nil {
			t.Fatal(err)
		}
		checkRequestID(t, resp, resp.RequestId)
		if strings.Contains(resp.GetHttpContentString(), dsnPassword) {
			t.Fatalf("DescribeDBInstances shows a DSN password: %s", resp.GetHttpContentString())
		}
		return resp
	}
	ids := func(resp *rds.DescribeDBInstancesResponse) []string {
		var out []string
		for _, i := range resp.Items.DBInstance {
			out = append(out, i.DBInstanceId)
		}
		return out
	}

	all := call(func(r *rds.DescribeDBInstancesRequest) {})
	if all.TotalRecordCount != 4 || all.PageRecordCount != 4 || all.PageNumber != 1 {
		t.Fatalf("counters %d %d %d: %s", all.TotalRecordCount, all.PageRecordCount, all.PageNumber, all.GetHttpContentString())
	}
	engines := map[string]string{"rm-a1": "MySQL", "rm-m1": "MariaDB", "pg-1": "PostgreSQL", "ms-1": "SQLServer"}
	for _, i := range all.Items.DBInstance {
		if i.DBInstanceStatus != "Running" || i.Engine != engines[i.DBInstanceId] || i.RegionId != testRegion {
			t.Errorf("%s: status %q engine %q region %q", i.DBInstanceId, i.DBInstanceStatus, i.Engine, i.RegionId)
		}
		if i.DBInstanceId == "rm-a1" && i.DBInstanceDescription != "shop database" {
			t.Errorf("rm-a1 description %q", i.DBInstanceDescription)
		}
	}
	// The counters are JSON numbers for this action.
	var raw map[string]any
	if err := json.Unmarshal(all.GetHttpContentBytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PageNumber", "PageRecordCount", "TotalRecordCount"} {
		if _, ok := raw[name].(float64); !ok {
			t.Errorf("%s is %T, want a JSON number", name, raw[name])
		}
	}

	if got := ids(call(func(r *rds.DescribeDBInstancesRequest) { r.Engine = "PostgreSQL" })); !slices.Equal(got, []string{"pg-1"}) {
		t.Errorf("Engine=PostgreSQL: %v", got)
	}
	got := ids(call(func(r *rds.DescribeDBInstancesRequest) { r.DBInstanceId = "rm-a1,ms-1" }))
	slices.Sort(got)
	if !slices.Equal(got, []string{"ms-1", "rm-a1"}) {
		t.Errorf("DBInstanceId=rm-a1,ms-1: %v", got)
	}
	if got := call(func(r *rds.DescribeDBInstancesRequest) { r.DBInstanceStatus = "Running" }); got.TotalRecordCount != 4 {
		t.Errorf("DBInstanceStatus=Running: %d", got.TotalRecordCount)
	}
	if got := call(func(r *rds.DescribeDBInstancesRequest) { r.DBInstanceStatus = "Stopped" }); got.TotalRecordCount != 0 || len(got.Items.DBInstance) != 0 {
		t.Errorf("DBInstanceStatus=Stopped: %s", got.GetHttpContentString())
	}
	p1 := call(func(r *rds.DescribeDBInstancesRequest) { r.PageSize = requests.NewInteger(3) })
	p2 := call(func(r *rds.DescribeDBInstancesRequest) {
		r.PageSize, r.PageNumber = requests.NewInteger(3), requests.NewInteger(2)
	})
	if p1.PageRecordCount != 3 || p2.PageRecordCount != 1 || p2.PageNumber != 2 || p2.TotalRecordCount != 4 {
		t.Errorf("paging: %s / %s", p1.GetHttpContentString(), p2.GetHttpContentString())
	}
	if both := append(ids(p1), ids(p2)...); !slices.Equal(both, ids(all)) {
		t.Errorf("pages %v, all %v", both, ids(all))
	}

	req := rds.CreateDescribeDBInstancesRequest()
	req.Engine = "Oracle"
	_, err := c.RDS.DescribeDBInstances(req)
	if se := wantServerError(t, err, "InvalidParameter", 400); !strings.Contains(se.Message(), "Engine") {
		t.Errorf("message %q does not name Engine", se.Message())
	}
}

func TestDescribeDBInstanceAttribute(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), mixedInstancesYAML, testEnv(nil))
	c := rootClients(t, s)
	req := rds.CreateDescribeDBInstanceAttributeRequest()
	req.DBInstanceId = "pg-1"
	resp, err := c.RDS.DescribeDBInstanceAttribute(req)
	if err != nil {
		t.Fatal(err)
	}
	checkRequestID(t, resp, resp.RequestId)
	if bytes.Contains(resp.GetHttpContentBytes(), []byte(dsnPassword)) {
		t.Fatalf("DescribeDBInstanceAttribute shows a DSN password: %s", resp.GetHttpContentString())
	}
	if len(resp.Items.DBInstanceAttribute) != 1 {
		t.Fatalf("want one instance: %s", resp.GetHttpContentString())
	}
	a := resp.Items.DBInstanceAttribute[0]
	if a.DBInstanceId != "pg-1" || a.Engine != "PostgreSQL" || a.DBInstanceStatus != "Running" || a.RegionId != testRegion {
		t.Errorf("attribute: %s", resp.GetHttpContentString())
	}
	// The SDK's int fields decode (they are numbers on the wire).
	var raw struct {
		Items struct{ DBInstanceAttribute []map[string]any }
	}
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &raw); err != nil || len(raw.Items.DBInstanceAttribute) != 1 {
		t.Fatalf("%v: %s", err, resp.GetHttpContentBytes())
	}
	for _, name := range []string{"DBInstanceStorage", "DBInstanceMemory", "MaxConnections", "MaxIOPS", "DBMaxQuantity", "AccountMaxQuantity"} {
		if _, ok := raw.Items.DBInstanceAttribute[0][name].(float64); !ok {
			t.Errorf("%s is %T, want a JSON number", name, raw.Items.DBInstanceAttribute[0][name])
		}
	}

	req = rds.CreateDescribeDBInstanceAttributeRequest()
	req.DBInstanceId = "rm-nope"
	_, err = c.RDS.DescribeDBInstanceAttribute(req)
	wantServerError(t, err, "InvalidDBInstance.NotFound", 404)

	req = rds.CreateDescribeDBInstanceAttributeRequest()
	_, err = c.RDS.DescribeDBInstanceAttribute(req)
	if se := wantServerError(t, err, "MissingParameter", 400); !strings.Contains(se.Message(), "DBInstanceId") {
		t.Errorf("message %q does not name DBInstanceId", se.Message())
	}
}

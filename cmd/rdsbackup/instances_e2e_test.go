package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"

	"github.com/rdsbackup/rdsbackup/engine/enginetest"
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
	// terraform-provider-alicloud's DescribeDBInstance treats only this code
	// as "gone" (a resource deleted outside Terraform is then dropped).
	wantServerError(t, err, "InvalidDBInstanceId.NotFound", 400)

	req = rds.CreateDescribeDBInstanceAttributeRequest()
	_, err = c.RDS.DescribeDBInstanceAttribute(req)
	if se := wantServerError(t, err, "MissingParameter", 400); !strings.Contains(se.Message(), "DBInstanceId") {
		t.Errorf("message %q does not name DBInstanceId", se.Message())
	}
}

// What terraform-provider-alicloud (v1.289.0) reads of the instance actions,
// as JSON kinds: a missing "object" or "array" is a type assertion that
// panics in the provider, a missing scalar a "<nil>" in the state. From
// data_source_alicloud_db_instances.go (dataSourceAlicloudDBInstancesRead,
// rdsInstancesDescription), resource_alicloud_db_instance.go
// (resourceAliCloudDBInstanceRead) and service_alicloud_rds.go
// (RdsService.DescribeDBInstance).
var (
	tfDescribeDBInstancesPaths = map[string]string{
		"Items.DBInstance": "array", "TotalRecordCount": "number",
	}
	tfDBInstancePaths = map[string]string{
		"ReadOnlyDBInstanceIds":                      "object",
		"ReadOnlyDBInstanceIds.ReadOnlyDBInstanceId": "array",
		"DBInstanceId":                               "string", "DBInstanceDescription": "string", "PayType": "string", "DBInstanceType": "string",
		"RegionId": "string", "ExpireTime": "string", "DBInstanceStatus": "string", "Engine": "string",
		"EngineVersion": "string", "DBInstanceNetType": "string", "ConnectionMode": "string", "DBInstanceClass": "string",
		"ZoneId": "string", "MasterInstanceId": "string", "GuardDBInstanceId": "string", "TempDBInstanceId": "string",
		"VpcId": "string", "VSwitchId": "string",
	}
	tfDescribeDBInstanceAttributePaths = map[string]string{"Items.DBInstanceAttribute": "array"}
	tfDBInstanceAttributePaths         = map[string]string{
		"SlaveZones": "object", "SlaveZones.SlaveZone": "array",
		"Extra": "object", "Extra.RecoveryModel": "string",
		"ServerlessConfig": "object", "ServerlessConfig.ScaleMax": "string", "ServerlessConfig.ScaleMin": "string",
		"ServerlessConfig.AutoPause": "bool", "ServerlessConfig.SwitchForce": "bool",
		"Engine": "string", "EngineVersion": "string", "DBInstanceStorageType": "string", "PayType": "string",
		"ConnectionString": "string", "Port": "string", "DBInstanceStorage": "number", "MasterZone": "string",
		"DeletionProtection": "bool", "DBInstanceType": "string", "ResourceGroupId": "string", "SecurityIPMode": "string",
		"DBInstanceClass": "string", "ZoneId": "string", "DBInstanceStatus": "string", "CreationTime": "string",
		"BurstingEnabled": "bool", "PGBouncerEnabled": "string", "ColdDataEnabled": "bool", "VSwitchId": "string",
		"DBInstanceDescription": "string", "MaintainTime": "string", "AutoUpgradeMinorVersion": "string",
		"CurrentKernelVersion": "string", "VpcId": "string", "Category": "string", "TimeZone": "string", "Collation": "string",
	}
)

// decodeAsProvider decodes a body as the provider's Tea client does: into
// maps, numbers kept as json.Number.
func decodeAsProvider(t testing.TB, body []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	return m
}

// jsonAt follows a dotted path of object members.
func jsonAt(v any, path string) (any, bool) {
	for _, name := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// jsonList is the list at path, if there is one.
func jsonList(v any, path string) ([]any, bool) {
	v, _ = jsonAt(v, path)
	l, ok := v.([]any)
	return l, ok
}

// checkReadPaths checks that every path is present with its JSON kind.
func checkReadPaths(t testing.TB, where string, v any, paths map[string]string) {
	t.Helper()
	for path, kind := range paths {
		got, ok := jsonAt(v, path)
		if !ok {
			t.Errorf("%s: %s is missing", where, path)
		} else if k := jsonKind(got); k != kind {
			t.Errorf("%s: %s is a JSON %s (%v), want %s", where, path, k, got, kind)
		}
	}
}

// checkSDKShape checks a decoded body against the official SDK's struct
// for it: every member must be a field of typ with the JSON kind of the
// field's Go type (the SDK is the reference for types), and every nested
// struct or slice of typ must be there, even when empty (clients index
// them without checking).
func checkSDKShape(t testing.TB, where string, v any, typ reflect.Type) {
	t.Helper()
	switch typ.Kind() {
	case reflect.Pointer:
		checkSDKShape(t, where, v, typ.Elem())
		return
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s is a JSON %s, want an object (%s)", where, jsonKind(v), typ)
			return
		}
		fields := map[string]reflect.StructField{}
		for _, f := range reflect.VisibleFields(typ) {
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" && !f.Anonymous {
				fields[name] = f
			}
		}
		for name, member := range obj {
			f, ok := fields[name]
			if !ok {
				t.Errorf("%s.%s is not a field of the SDK's %s", where, name, typ)
				continue
			}
			checkSDKShape(t, where+"."+name, member, f.Type)
		}
		for name, f := range fields {
			if k := f.Type.Kind(); k == reflect.Struct || k == reflect.Slice {
				if _, ok := obj[name]; !ok {
					t.Errorf("%s.%s (%s) is missing; nested objects and lists must be sent even when empty", where, name, f.Type)
				}
			}
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			t.Errorf("%s is a JSON %s, want an array (%s)", where, jsonKind(v), typ)
			return
		}
		for i, e := range list {
			checkSDKShape(t, fmt.Sprintf("%s[%d]", where, i), e, typ.Elem())
		}
	default:
		want := map[reflect.Kind]string{reflect.String: "string", reflect.Bool: "bool",
			reflect.Int: "number", reflect.Int64: "number", reflect.Float64: "number"}[typ.Kind()]
		if got := jsonKind(v); got != want {
			t.Errorf("%s is a JSON %s (%v), the SDK's %s wants a %s", where, got, v, typ, want)
		}
	}
}

// TestInstanceActionsShape: DescribeDBInstances and
// DescribeDBInstanceAttribute send what the official SDK declares, with its
// types, and everything Terraform's provider reads, for every engine, so
// that the next missing field is caught here rather than by a provider
// panic. Where rdsbackup has nothing true to say, the value is empty.
func TestInstanceActionsShape(t *testing.T) {
	t.Parallel()
	s := startService(t, t.TempDir(), mixedInstancesYAML, testEnv(nil))
	c := rootClients(t, s)

	list, err := c.RDS.DescribeDBInstances(rds.CreateDescribeDBInstancesRequest())
	if err != nil {
		t.Fatal(err)
	}
	body := decodeAsProvider(t, list.GetHttpContentBytes())
	checkSDKShape(t, "DescribeDBInstances", body, reflect.TypeOf(rds.DescribeDBInstancesResponse{}))
	checkReadPaths(t, "DescribeDBInstances", body, tfDescribeDBInstancesPaths)
	items, _ := jsonList(body, "Items.DBInstance")
	if len(items) != 4 {
		t.Fatalf("%d instances, want 4", len(items))
	}
	for _, item := range items {
		id, _ := jsonAt(item, "DBInstanceId")
		where := fmt.Sprintf("DescribeDBInstances item %v", id)
		checkReadPaths(t, where, item, tfDBInstancePaths)
		if ro, ok := jsonList(item, "ReadOnlyDBInstanceIds.ReadOnlyDBInstanceId"); !ok || len(ro) != 0 {
			t.Errorf("%s: read-only replicas %v, want an empty list", where, ro)
		}
		// Nothing true to say: no zone, no network, no replica set.
		for _, name := range []string{"ZoneId", "VpcId", "VSwitchId", "MasterInstanceId", "ConnectionMode"} {
			if v, _ := jsonAt(item, name); v != "" {
				t.Errorf("%s: %s = %v, want empty", where, name, v)
			}
		}
	}

	xreq := rds.CreateDescribeDBInstancesRequest()
	xreq.AcceptFormat = "XML"
	if x, err := c.RDS.DescribeDBInstances(xreq); err != nil || len(x.Items.DBInstance) != 4 || x.TotalRecordCount != 4 {
		t.Errorf("DescribeDBInstances as XML: %v", err)
	}

	for _, id := range []string{"rm-a1", "rm-m1", "pg-1", "ms-1"} {
		req := rds.CreateDescribeDBInstanceAttributeRequest()
		req.DBInstanceId = id
		resp, err := c.RDS.DescribeDBInstanceAttribute(req)
		if err != nil {
			t.Fatal(err)
		}
		where := "DescribeDBInstanceAttribute " + id
		body := decodeAsProvider(t, resp.GetHttpContentBytes())
		checkSDKShape(t, where, body, reflect.TypeOf(rds.DescribeDBInstanceAttributeResponse{}))
		checkReadPaths(t, where, body, tfDescribeDBInstanceAttributePaths)
		attrs, _ := jsonList(body, "Items.DBInstanceAttribute")
		if len(attrs) != 1 {
			t.Fatalf("%s: %d items, want 1", where, len(attrs))
		}
		a := attrs[0]
		checkReadPaths(t, where, a, tfDBInstanceAttributePaths)
		for _, path := range []string{"SlaveZones.SlaveZone", "ReadOnlyDBInstanceIds.ReadOnlyDBInstanceId", "Extra.DBInstanceIds.DBInstanceId", "DBClusterNodes.DBClusterNode"} {
			if v, ok := jsonList(a, path); !ok || len(v) != 0 {
				t.Errorf("%s: %s = %v, want an empty list", where, path, v)
			}
		}
		// The server's address is part of the DSN, which is never shown.
		for _, name := range []string{"ConnectionString", "Port", "ZoneId", "MasterZone"} {
			if v, _ := jsonAt(a, name); v != "" {
				t.Errorf("%s: %s = %v, want empty", where, name, v)
			}
		}
		if v, _ := jsonAt(a, "CreationTime"); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(fmt.Sprint(v)) {
			t.Errorf("%s: CreationTime %q", where, v)
		}

		// The XML form decodes into the SDK's struct too.
		req = rds.CreateDescribeDBInstanceAttributeRequest()
		req.DBInstanceId = id
		req.AcceptFormat = "XML"
		x, err := c.RDS.DescribeDBInstanceAttribute(req)
		if err != nil {
			t.Fatalf("%s as XML: %v", where, err)
		}
		if len(x.Items.DBInstanceAttribute) != 1 || x.Items.DBInstanceAttribute[0].DBInstanceId != id || x.Items.DBInstanceAttribute[0].Engine == "" {
			t.Errorf("%s as XML: %s", where, x.GetHttpContentString())
		}
	}
}

// TestInstanceEngineVersion: EngineVersion is empty until a backup has
// talked to the server, then what the server reported, in both instance
// actions and after a restart; an instance whose server cannot be reached
// keeps it empty.
func TestInstanceEngineVersion(t *testing.T) {
	t.Parallel()
	maria, pg := enginetest.SharedMariaDB(t), enginetest.SharedPostgres(t)
	mariaDSN, _, mariaRoot := polDatabase(t, maria, 50)
	pgDB := pg.NewDatabase(t)
	enginetest.FillPostgres(t, pg.DB(t, pgDB), 50)
	mariaVersion := mariadbVersion(t, mariaRoot)
	pgVersion, _ := postgresVersion(t, pg.DB(t, "postgres"))
	fx := newBackupFixture(t,
		backupInstance{"rm-ver", "MariaDB", mariaDSN},
		backupInstance{"pg-ver", "PostgreSQL", pg.URL("postgres")},
		backupInstance{"rm-unreachable", "MariaDB", fmt.Sprintf("root:x@tcp(127.0.0.1:%d)/", freeTCPPort(t))})
	svc := fx.start(t)
	c := rootClients(t, svc)

	check := func(when string, want map[string]string) {
		t.Helper()
		list, err := c.RDS.DescribeDBInstances(rds.CreateDescribeDBInstancesRequest())
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items.DBInstance) != len(want) {
			t.Fatalf("%s: %d instances, want %d", when, len(list.Items.DBInstance), len(want))
		}
		for _, inst := range list.Items.DBInstance {
			if inst.EngineVersion != want[inst.DBInstanceId] {
				t.Errorf("%s: DescribeDBInstances shows %s with EngineVersion %q, want %q", when, inst.DBInstanceId, inst.EngineVersion, want[inst.DBInstanceId])
			}
		}
		for id, v := range want {
			req := rds.CreateDescribeDBInstanceAttributeRequest()
			req.DBInstanceId = id
			resp, err := c.RDS.DescribeDBInstanceAttribute(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Items.DBInstanceAttribute[0].EngineVersion; got != v {
				t.Errorf("%s: DescribeDBInstanceAttribute shows %s with EngineVersion %q, want %q", when, id, got, v)
			}
		}
	}
	check("before any backup", map[string]string{"rm-ver": "", "pg-ver": "", "rm-unreachable": ""})

	waitFinished(t, c, "rm-ver", createBackup(t, c, "rm-ver", "Logical", nil))
	waitFinished(t, c, "pg-ver", createBackup(t, c, "pg-ver", "Logical", func(r *rds.CreateBackupRequest) { r.DBName = pgDB }))
	id := createBackup(t, c, "rm-unreachable", "Logical", nil)
	if tr := waitJob(t, c, "rm-unreachable", id, time.Minute); tr.Final.BackupStatus != "Failed" {
		t.Fatalf("backup of an unreachable server: %+v", tr.Final)
	}
	want := map[string]string{"rm-ver": mariaVersion, "pg-ver": pgVersion, "rm-unreachable": ""}
	check("after the backups", want)

	svc.Stop()
	svc = fx.start(t)
	c = rootClients(t, svc)
	check("after a restart", want)
}

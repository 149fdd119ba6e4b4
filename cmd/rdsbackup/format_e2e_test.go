package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/rds"
)

// TestDescribeBackupsJSONAndXML decodes the same query in both formats with
// the SDK and compares the data.
func TestDescribeBackupsJSONAndXML(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	c := rootClients(t, s)
	query := func(format string) *rds.DescribeBackupsResponse {
		resp, err := describeBackups(t, c, func(r *rds.DescribeBackupsRequest) {
			r.DBInstanceId, r.PageSize, r.BackupMode = "rm-a1", requests.NewInteger(50), "Manual"
			r.AcceptFormat = format
		})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		return resp
	}
	j, x := query("JSON"), query("XML")
	if ct := headerValue(j.GetHttpHeaders(), "Content-Type"); ct != "application/json;charset=utf-8" {
		t.Errorf("JSON Content-Type %q", ct)
	}
	if ct := headerValue(x.GetHttpHeaders(), "Content-Type"); ct != "text/xml;charset=utf-8" {
		t.Errorf("XML Content-Type %q", ct)
	}
	if !bytes.HasPrefix(x.GetHttpContentBytes(), []byte("<?xml")) {
		t.Errorf("XML body does not start with a declaration: %.80s", x.GetHttpContentBytes())
	}
	if len(j.Items.Backup) != 3 {
		t.Fatalf("want 3 sets: %s", j.GetHttpContentString())
	}
	// encoding/xml leaves an empty list nil where JSON has [].
	for _, r := range []*rds.DescribeBackupsResponse{j, x} {
		for i := range r.Items.Backup {
			if l := &r.Items.Backup[i].BackupDownloadLinkByDB.BackupDownloadLinkByDBItem; len(*l) == 0 {
				*l = nil
			}
		}
	}
	if !reflect.DeepEqual(j.Items, x.Items) {
		t.Errorf("items differ:\nJSON %+v\n XML %+v", j.Items, x.Items)
	}
	if j.PageNumber != x.PageNumber || j.PageRecordCount != x.PageRecordCount || j.TotalRecordCount != x.TotalRecordCount ||
		j.TotalBackupSize != x.TotalBackupSize || j.TotalEcsSnapshotSize != x.TotalEcsSnapshotSize {
		t.Errorf("counters differ: JSON %s %s %s %d %d, XML %s %s %s %d %d",
			j.PageNumber, j.PageRecordCount, j.TotalRecordCount, j.TotalBackupSize, j.TotalEcsSnapshotSize,
			x.PageNumber, x.PageRecordCount, x.TotalRecordCount, x.TotalBackupSize, x.TotalEcsSnapshotSize)
	}
	if x.RequestId == "" || x.RequestId == j.RequestId {
		t.Errorf("request ids: JSON %q XML %q", j.RequestId, x.RequestId)
	}
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number:
		return "number"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case bool:
		return "bool"
	case nil:
		return "null"
	}
	return "?"
}

// TestDescribeBackupsRawJSONTypes checks the wire types of reference §1.4.
func TestDescribeBackupsRawJSONTypes(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	r := rawCall(t, s.Addr, rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "Format", "JSON")))
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/json;charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	wantKinds := func(obj map[string]any, where string, kinds map[string]string) {
		t.Helper()
		for name, kind := range kinds {
			v, ok := obj[name]
			if !ok {
				t.Errorf("%s: %s missing", where, name)
			} else if got := jsonKind(v); got != kind {
				t.Errorf("%s: %s is a JSON %s (%v), want %s", where, name, got, v, kind)
			}
		}
	}
	wantKinds(body, "top", map[string]string{
		"RequestId": "string", "PageNumber": "string", "PageRecordCount": "string", "TotalRecordCount": "string",
		"PageSize": "number", "TotalEcsSnapshotSize": "number", "Items": "object",
	})
	if body["PageNumber"] != "1" || body["PageRecordCount"] != "5" || body["TotalRecordCount"] != "5" || body["PageSize"] != json.Number("30") {
		t.Errorf("counters: %v %v %v %v", body["PageNumber"], body["PageRecordCount"], body["TotalRecordCount"], body["PageSize"])
	}
	items, _ := body["Items"].(map[string]any)
	list, ok := items["Backup"].([]any)
	if !ok || len(list) != 5 {
		t.Fatalf("Items.Backup is not an array of 5: %v", body["Items"])
	}
	for _, v := range list {
		b, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("backup is a JSON %s", jsonKind(v))
		}
		where := "backup " + jsonKind(b["BackupId"])
		if id, ok := b["BackupId"].(string); ok {
			where = "backup " + id
		}
		wantKinds(b, where, map[string]string{
			"BackupId": "string", "HostInstanceID": "string", "StorageClass": "string", "CopyOnlyBackup": "string",
			"EngineVersion": "string", "Encryption": "string", "DBInstanceId": "string", "BackupStartTime": "string",
			"IsAvail": "number", "BackupSize": "number", "ConsistentTime": "number",
			"BackupDownloadLinkByDB": "object",
		})
		if b["Encryption"] != "{}" {
			t.Errorf("%s: Encryption %v, want the string \"{}\"", where, b["Encryption"])
		}
		if b["StorageClass"] != "0" || b["CopyOnlyBackup"] != "0" || b["EngineVersion"] != "8.0" || b["HostInstanceID"] != "5882781" {
			t.Errorf("%s: StorageClass %v CopyOnlyBackup %v EngineVersion %v HostInstanceID %v", where,
				b["StorageClass"], b["CopyOnlyBackup"], b["EngineVersion"], b["HostInstanceID"])
		}
		links, _ := b["BackupDownloadLinkByDB"].(map[string]any)
		inner, ok := links["BackupDownloadLinkByDB"].([]any)
		if !ok {
			t.Errorf("%s: BackupDownloadLinkByDB.BackupDownloadLinkByDB is a JSON %s, want an array (double nesting)", where, jsonKind(links["BackupDownloadLinkByDB"]))
			continue
		}
		// Only an available set has links: one per database.
		wantDBs := []string{"shop", "crm"}
		if b["BackupStatus"] == "Failed" {
			wantDBs = nil
			if b["BackupDownloadURL"] != "" {
				t.Errorf("%s: a failed set has a download URL %v", where, b["BackupDownloadURL"])
			}
		} else if u, _ := b["BackupDownloadURL"].(string); !strings.HasPrefix(u, "http://") {
			t.Errorf("%s: BackupDownloadURL %q", where, u)
		}
		if len(inner) != len(wantDBs) {
			t.Errorf("%s: %d download links, want %d", where, len(inner), len(wantDBs))
			continue
		}
		for i, l := range inner {
			link, _ := l.(map[string]any)
			if link["DataBase"] != wantDBs[i] || jsonKind(link["DownloadLink"]) != "string" || jsonKind(link["IntranetDownloadLink"]) != "string" {
				t.Errorf("%s: link %d: %v", where, i, l)
			}
		}
	}
}

// xmlBackups is the shape of reference §1.5.
type xmlBackups struct {
	XMLName          xml.Name
	RequestId        string
	PageNumber       string
	PageRecordCount  string
	TotalRecordCount string
	PageSize         string
	Items            struct {
		Backup []struct {
			BackupId               string
			DBInstanceId           string
			BackupStatus           string
			Encryption             string
			IsAvail                string
			BackupDownloadLinkByDB struct {
				XMLName xml.Name
			}
		}
	}
}

func TestDescribeBackupsRawXML(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	for _, format := range []string{"XML", "xml", ""} { // "": the documented default
		t.Run("Format="+format, func(t *testing.T) {
			t.Parallel()
			r := rawCall(t, s.Addr, rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "BackupStatus", "Success", "Format", format)))
			if r.Status != 200 || r.Header.Get("Content-Type") != "text/xml;charset=utf-8" {
				t.Fatalf("status %d, Content-Type %q: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
			}
			var v xmlBackups
			if err := xml.Unmarshal(r.Body, &v); err != nil {
				t.Fatal(err)
			}
			if v.XMLName.Local != "DescribeBackupsResponse" {
				t.Errorf("root <%s>, want <DescribeBackupsResponse>", v.XMLName.Local)
			}
			if v.PageNumber != "1" || v.PageRecordCount != "3" || v.TotalRecordCount != "3" || v.PageSize != "30" {
				t.Errorf("counters %s %s %s %s", v.PageNumber, v.PageRecordCount, v.TotalRecordCount, v.PageSize)
			}
			if bytes.Contains(r.Body, []byte("?Expires=")) && !bytes.Contains(r.Body, []byte("&amp;")) {
				t.Errorf("download links with an unescaped &: %s", r.Body)
			}
			if len(v.Items.Backup) != 3 {
				t.Fatalf("want 3 <Items><Backup>: %s", r.Body)
			}
			for i, b := range v.Items.Backup {
				if b.BackupId != idStrings(104, 103, 101)[i] || b.DBInstanceId != "rm-a1" || b.BackupStatus != "Success" ||
					b.Encryption != "{}" || b.IsAvail != "1" || b.BackupDownloadLinkByDB.XMLName.Local != "BackupDownloadLinkByDB" {
					t.Errorf("backup %d: %+v", i, b)
				}
			}
		})
	}
}

func TestErrorBodyXML(t *testing.T) {
	t.Parallel()
	s := startFilterService(t)
	r := rawCall(t, s.Addr, rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "PageSize", "20", "Format", "XML")))
	if r.Status != 403 {
		t.Errorf("status %d, want 403", r.Status)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/xml;charset=utf-8" {
		t.Errorf("Content-Type %q, want exactly text/xml;charset=utf-8", ct)
	}
	var e struct {
		XMLName xml.Name
		apiError
	}
	if err := xml.Unmarshal(r.Body, &e); err != nil {
		t.Fatal(err)
	}
	if e.XMLName.Local != "Error" || e.Code != "InvalidMaxRecordsPerPage.Malformed" || e.Message == "" || e.RequestId == "" {
		t.Errorf("error body: %s", r.Body)
	}

	// An error found before authentication is in XML too.
	p := rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "Format", "XML"))
	p.Set("Signature", "AAAA"+p.Get("Signature"))
	r = rawCall(t, s.Addr, p)
	if r.Status != 400 || !strings.Contains(string(r.Body), "<Code>SignatureDoesNotMatch</Code>") ||
		r.Header.Get("Content-Type") != "text/xml;charset=utf-8" {
		t.Errorf("status %d, Content-Type %q: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}

	// JSON error bodies carry Code, Message, RequestId, HostId, Recommend.
	r = rawCall(t, s.Addr, rootSigned(describeBackupsParams("DBInstanceId", "rm-a1", "PageSize", "20")))
	je := wantRawError(t, r, "InvalidMaxRecordsPerPage.Malformed", 403)
	if r.Header.Get("Content-Type") != "application/json;charset=utf-8" || je.Message == "" || je.HostId == "" || je.Recommend == "" {
		t.Errorf("JSON error: Content-Type %q: %s", r.Header.Get("Content-Type"), r.Body)
	}
}

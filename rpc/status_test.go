package rpc

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rdsbackup/rdsbackup"
)

// wantStatus lists every code in error.go with its documented status.
var wantStatus = map[string]int{
	rdsbackup.EINTERNAL:                 500,
	rdsbackup.ENOTFOUND:                 404,
	rdsbackup.ECONFLICT:                 409,
	rdsbackup.EINVALID:                  400,
	rdsbackup.ENOSPACE:                  507,
	rdsbackup.EEncryptionKeyUnavailable: 500,
	rdsbackup.EObjectCorrupt:            500,
	rdsbackup.EMissingParameter:         400,
	rdsbackup.EInvalidAction:            404,
	rdsbackup.EInvalidVersion:           400,
	rdsbackup.EAccessKeyNotFound:        404,
	rdsbackup.EAccessKeyDisabled:        403,
	rdsbackup.ESignatureDoesNotMatch:    400,
	rdsbackup.EIncompleteSignature:      400,
	rdsbackup.ETimestampExpired:         400,
	rdsbackup.ETimestampFormat:          400,
	rdsbackup.ENonceUsed:                400,
	rdsbackup.EThrottling:               400,
	rdsbackup.EServiceUnavailable:       503,
	rdsbackup.EForbiddenRAM:             403,
	rdsbackup.EUnsupportedSignature:     400,
	rdsbackup.EInvalidFormat:            400,
	rdsbackup.EInvalidPageNumber:        400,
	rdsbackup.EInvalidPageSize:          403,
	rdsbackup.EInvalidStartTime:         400,
	rdsbackup.EInvalidEndTime:           400,
	rdsbackup.EInvalidCombination:       400,
	rdsbackup.EInvalidBackupLocation:    400,
	rdsbackup.EInstanceIdNotFound:       400,
	rdsbackup.EIncorrectInstanceState:   403,
	rdsbackup.EEntityNotExistUser:       404,
	rdsbackup.EEntityNotExistPolicy:     404,
	rdsbackup.EEntityNotExistAccessKey:  404,
	rdsbackup.EEntityAlreadyExistsUser:  409,
	rdsbackup.EEntityAlreadyExistsPol:   409,
	rdsbackup.EEntityAlreadyAttached:    409,
	rdsbackup.EEntityNotAttached:        404,
	rdsbackup.EDeleteConflictUserPolicy: 409,
	rdsbackup.EDeleteConflictUserKey:    409,
	rdsbackup.EDeleteConflictPolicyUser: 409,
	rdsbackup.EInvalidPolicyDocument:    400,
	rdsbackup.ELimitExceededAccessKey:   409,
	rdsbackup.ENoPermissionSystemPolicy: 403,
	rdsbackup.EUnsupportedEngine:        403,
	rdsbackup.EUnsupportedMethod:        400,
	rdsbackup.EDBNameNotFound:           404,
	rdsbackup.EBackupNotFound:           404,
	rdsbackup.EDownloadDenied:           403,
	rdsbackup.EBackupNotDeletable:       403,
	rdsbackup.EMethodNotAllowed:         405,
	rdsbackup.ENoSuchKey:                404,
	rdsbackup.EInvalidRange:             416,
	rdsbackup.EInvalidRestoreTime:       400,
	rdsbackup.EPITRNotCovered:           400,
	rdsbackup.EEngineMismatch:           400,
	rdsbackup.EDatabaseExists:           400,
	rdsbackup.ELogBackupDenied:          403,
	rdsbackup.EClonesDisabled:           403,
	rdsbackup.EQuotaClones:              403,
	rdsbackup.EInstanceNotDeletable:     403,
}

func TestHTTPStatus(t *testing.T) {
	for code, want := range wantStatus {
		got, ok := knownStatus(code)
		if !ok {
			t.Errorf("%s is not in the status table", code)
		}
		if got != want || HTTPStatus(code) != want {
			t.Errorf("HTTPStatus(%s) = %d, want %d", code, got, want)
		}
	}
	if got := HTTPStatus("Some.Unknown"); got != 400 {
		t.Errorf("unknown code: %d", got)
	}
	if got := HTTPStatus("InternalError.Dependency"); got != 500 {
		t.Errorf("InternalError.*: %d", got)
	}
}

// TestEveryCodeListed fails when error.go gains a code that wantStatus (and
// so the table review) does not cover.
func TestEveryCodeListed(t *testing.T) {
	codes := errorGoCodes(t)
	for code, name := range codes {
		if _, ok := wantStatus[code]; !ok {
			t.Errorf("error.go %s = %q is missing from wantStatus", name, code)
		}
	}
	if len(codes) < len(wantStatus) {
		t.Errorf("found %d codes in error.go, wantStatus has %d", len(codes), len(wantStatus))
	}
}

// TestErrorsDocumented walks the code table and docs/errors.md: every code
// in error.go is documented with its status, and the page lists no code the
// service does not have.
func TestErrorsDocumented(t *testing.T) {
	codes := errorGoCodes(t)
	buf, err := os.ReadFile("../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`^\| (\d{3}) \| ([A-Za-z0-9.]+) \|`)
	documented := map[string]int{}
	for _, line := range strings.Split(string(buf), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		status, _ := strconv.Atoi(m[1])
		if prev, ok := documented[m[2]]; ok && prev != status {
			t.Errorf("docs/errors.md gives %s both %d and %d", m[2], prev, status)
		}
		documented[m[2]] = status
	}
	for code := range codes {
		status, ok := documented[code]
		if !ok {
			t.Errorf("%s is not in docs/errors.md", code)
		} else if status != HTTPStatus(code) {
			t.Errorf("docs/errors.md gives %s HTTP %d, the table %d", code, status, HTTPStatus(code))
		}
	}
	for code := range documented {
		if _, ok := codes[code]; !ok {
			t.Errorf("docs/errors.md lists %s, which error.go does not have", code)
		}
	}
	if len(documented) < 50 {
		t.Errorf("only %d codes read from docs/errors.md", len(documented))
	}
}

// errorGoCodes returns the codes declared in error.go (string constants),
// with the name of their constant.
func errorGoCodes(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../error.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					code, _ := strconv.Unquote(lit.Value)
					codes[code] = name.Name
				}
			}
		}
	}
	return codes
}

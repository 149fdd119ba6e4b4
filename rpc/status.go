package rpc

import (
	"net/http"
	"strings"

	"github.com/rdsbackup/rdsbackup"
)

// statusByCode is the one code → HTTP status table, from the RDS and RAM
// docs (spec §1.3, §3.6). Every code in error.go must be covered here or by
// statusByPrefix; status_test.go checks that.
var statusByCode = map[string]int{
	rdsbackup.EINTERNAL: http.StatusInternalServerError,
	rdsbackup.ENOTFOUND: http.StatusNotFound,
	rdsbackup.ECONFLICT: http.StatusConflict,
	rdsbackup.EINVALID:  http.StatusBadRequest,
	rdsbackup.ENOSPACE:  http.StatusInsufficientStorage,

	rdsbackup.EEncryptionKeyUnavailable: http.StatusInternalServerError,
	rdsbackup.EObjectCorrupt:            http.StatusInternalServerError,

	rdsbackup.EMissingParameter:      http.StatusBadRequest,
	rdsbackup.EInvalidAction:         http.StatusNotFound,
	rdsbackup.EInvalidVersion:        http.StatusBadRequest,
	rdsbackup.EAccessKeyNotFound:     http.StatusNotFound,
	rdsbackup.EAccessKeyDisabled:     http.StatusForbidden,
	rdsbackup.ESignatureDoesNotMatch: http.StatusBadRequest,
	rdsbackup.EIncompleteSignature:   http.StatusBadRequest,
	rdsbackup.ETimestampExpired:      http.StatusBadRequest,
	rdsbackup.ETimestampFormat:       http.StatusBadRequest,
	rdsbackup.ENonceUsed:             http.StatusBadRequest,
	rdsbackup.EThrottling:            http.StatusBadRequest, // as Alibaba does, not 429
	rdsbackup.EServiceUnavailable:    http.StatusServiceUnavailable,
	rdsbackup.EForbiddenRAM:          http.StatusForbidden,
	rdsbackup.EUnsupportedSignature:  http.StatusBadRequest,
	rdsbackup.EInvalidFormat:         http.StatusBadRequest,

	rdsbackup.EInvalidPageNumber:      http.StatusBadRequest,
	rdsbackup.EInvalidPageSize:        http.StatusForbidden, // sic, as documented
	rdsbackup.EInvalidStartTime:       http.StatusBadRequest,
	rdsbackup.EInvalidEndTime:         http.StatusBadRequest,
	rdsbackup.EInvalidCombination:     http.StatusBadRequest,
	rdsbackup.EInvalidBackupLocation:  http.StatusBadRequest,
	rdsbackup.EInstanceIdNotFound:     http.StatusBadRequest, // sic, as documented
	rdsbackup.EIncorrectInstanceState: http.StatusForbidden,

	rdsbackup.EInvalidPolicyDocument: http.StatusBadRequest,

	rdsbackup.EUnsupportedEngine: http.StatusForbidden,
	rdsbackup.EUnsupportedMethod: http.StatusBadRequest,
	rdsbackup.EDBNameNotFound:    http.StatusNotFound,
	rdsbackup.EBackupNotFound:    http.StatusNotFound,
	rdsbackup.EDownloadDenied:    http.StatusForbidden,

	rdsbackup.EBackupNotDeletable: http.StatusForbidden,

	rdsbackup.EInvalidRestoreTime: http.StatusBadRequest,
	rdsbackup.EPITRNotCovered:     http.StatusBadRequest,
	rdsbackup.EEngineMismatch:     http.StatusBadRequest,
	rdsbackup.EDatabaseExists:     http.StatusBadRequest,
	rdsbackup.ELogBackupDenied:    http.StatusForbidden,

	rdsbackup.EClonesDisabled:       http.StatusForbidden,
	rdsbackup.EQuotaClones:          http.StatusForbidden,
	rdsbackup.EInstanceNotDeletable: http.StatusForbidden,

	rdsbackup.EMethodNotAllowed: http.StatusMethodNotAllowed,
	rdsbackup.ENoSuchKey:        http.StatusNotFound,
	rdsbackup.EInvalidRange:     http.StatusRequestedRangeNotSatisfiable,
}

// statusByPrefix covers the RAM code families (EntityNotExist.User, ...).
var statusByPrefix = []struct {
	prefix string
	status int
}{
	{"EntityNotExist.", http.StatusNotFound},
	{"EntityAlreadyExists.", http.StatusConflict},
	{"DeleteConflict.", http.StatusConflict},
	{"LimitExceeded.", http.StatusConflict},
	{"NoPermission.", http.StatusForbidden},
	{"Forbidden.", http.StatusForbidden},
	{"InternalError.", http.StatusInternalServerError},
}

// HTTPStatus returns the HTTP status for an error code. Codes missing from
// the table are treated as the caller's fault (400).
func HTTPStatus(code string) int {
	if s, ok := knownStatus(code); ok {
		return s
	}
	return http.StatusBadRequest
}

func knownStatus(code string) (int, bool) {
	if s, ok := statusByCode[code]; ok {
		return s, true
	}
	for _, p := range statusByPrefix {
		if strings.HasPrefix(code, p.prefix) {
			return p.status, true
		}
	}
	return 0, false
}

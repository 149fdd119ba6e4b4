package rdsbackup

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Error codes. Most are the wire codes of the RDS/RAM API, because the
// product's vocabulary is that API; the generic classes (EINTERNAL,
// ENOTFOUND, ECONFLICT, EINVALID) are used by adapters that do not know
// which API call they serve, and the API layer refines them. The HTTP status
// of every code is decided in one table at the edge (package rpc).
const (
	EINTERNAL = "InternalError"
	ENOTFOUND = "NotFound"
	ECONFLICT = "Conflict"
	EINVALID  = "InvalidParameter"
	// ENOSPACE: a write failed because the disk of the catalog or of the
	// backup storage is full (ENOSPC, a quota, SQLITE_FULL). Adapters
	// report it with NoSpace.
	ENOSPACE = "InsufficientStorage"
	// EEncryptionKeyUnavailable: an encrypted object's key-encryption key
	// is not in the keyring, or does not open the object's data key (a
	// wrong key under that id). The message names the key id.
	EEncryptionKeyUnavailable = "InternalError.EncryptionKeyUnavailable"
	// EObjectCorrupt: a stored object fails authentication (a changed,
	// truncated, reordered or foreign chunk) or its header is malformed.
	EObjectCorrupt = "InternalError.ObjectCorrupt"

	// Protocol and authentication.
	EMissingParameter      = "MissingParameter"
	EInvalidAction         = "InvalidAction.NotFound"
	EInvalidVersion        = "InvalidVersion"
	EAccessKeyNotFound     = "InvalidAccessKeyId.NotFound"
	EAccessKeyDisabled     = "Forbidden.AccessKeyDisabled"
	ESignatureDoesNotMatch = "SignatureDoesNotMatch"
	EIncompleteSignature   = "IncompleteSignature"
	ETimestampExpired      = "InvalidTimeStamp.Expired"
	ETimestampFormat       = "InvalidTimeStamp.Format"
	ENonceUsed             = "SignatureNonceUsed"
	EThrottling            = "Throttling.User"
	EServiceUnavailable    = "ServiceUnavailable"
	EForbiddenRAM          = "Forbidden.RAM"
	EUnsupportedSignature  = "InvalidSignatureMethod"
	EInvalidFormat         = "InvalidFormat"

	// DescribeBackups and instance lookups.
	EInvalidPageNumber      = "InvalidPageNumbers.Malformed"
	EInvalidPageSize        = "InvalidMaxRecordsPerPage.Malformed"
	EInvalidStartTime       = "InvalidStartTime.Format"
	EInvalidEndTime         = "InvalidEndTime.Format"
	EInvalidCombination     = "InvalidParameterCombination"
	EInvalidBackupLocation  = "InvalidBackupSetLocation.Format"
	EInstanceIdNotFound     = "InvalidDBInstanceId.NotFound"
	EIncorrectInstanceState = "IncorrectDBInstanceState"

	// Backups.
	EBackupRunning     = EIncorrectInstanceState // the instance already has a backup running
	EUnsupportedEngine = "OperationDenied.Engine"
	EUnsupportedMethod = "InvalidBackupMethod.NotSupported"
	EDBNameNotFound    = "InvalidDBName.NotFound"
	EBackupNotFound    = "InvalidBackupSetID.NotFound"
	EDownloadDenied    = "AccessDenied"
	// EBackupNotDeletable: automated sets leave by expiry only.
	EBackupNotDeletable = "OperationDenied.BackupSetStoreStatus"

	// Download links (served under /download/, as OSS words them).
	EMethodNotAllowed = "MethodNotAllowed"
	ENoSuchKey        = "NoSuchKey"
	EInvalidRange     = "InvalidRange"

	// Point-in-time recovery (docs/pitr.md).
	// EInvalidRestoreTime: RestoreTime is not yyyy-MM-ddTHH:mm:ssZ.
	EInvalidRestoreTime = "InvalidRestoreTime.Format"
	// EPITRNotCovered: no recovery window holds the restore time (outside
	// the window, in a gap, log backup off); the message names the windows.
	EPITRNotCovered = "InvalidRestoreTime.NotCovered"
	// EEngineMismatch: RecoveryDBInstance into an instance of another engine.
	EEngineMismatch = "InvalidDBInstanceEngine.NotSupport"
	// EDatabaseExists: a restore would write into a database that exists.
	EDatabaseExists = "InvalidDBName.Duplicate"
	// ELogBackupDenied: log backup cannot be enabled on the server; the
	// message names the missing setting or privilege.
	ELogBackupDenied = "OperationDenied.LogBackup"

	// Clones (docs/clones.md).
	// EClonesDisabled: CloneDBInstance on a service without a clones
	// section in its config.
	EClonesDisabled = "OperationDenied.ClonesDisabled"
	// EQuotaClones: clones.maxClones clones exist, or no port of
	// clones.ports is free; nothing was started.
	EQuotaClones = "QuotaExceeded.Clones"
	// EInstanceNotDeletable: DeleteDBInstance on an instance of the
	// config (only clones are deleted through the API).
	EInstanceNotDeletable = "OperationDenied.ConfiguredInstance"

	// RAM.
	EEntityNotExistUser       = "EntityNotExist.User"
	EEntityNotExistPolicy     = "EntityNotExist.Policy"
	EEntityNotExistAccessKey  = "EntityNotExist.User.AccessKey"
	EEntityAlreadyExistsUser  = "EntityAlreadyExists.User"
	EEntityAlreadyExistsPol   = "EntityAlreadyExists.Policy"
	EEntityAlreadyAttached    = "EntityAlreadyExists.User.Policy"
	EEntityNotAttached        = "EntityNotExist.User.Policy"
	EDeleteConflictUserPolicy = "DeleteConflict.User.Policy"
	EDeleteConflictUserKey    = "DeleteConflict.User.AccessKey"
	EDeleteConflictPolicyUser = "DeleteConflict.Policy.User"
	EInvalidPolicyDocument    = "MalformedPolicyDocument"
	ELimitExceededAccessKey   = "LimitExceeded.User.AccessKey"
	ENoPermissionSystemPolicy = "NoPermission.SystemPolicy"
)

// Error is the domain's error: a code that classifies it and a message fit
// to show to the API caller. Detail, when set, is rendered next to the code
// (Forbidden.RAM carries its AccessDeniedDetail there).
type Error struct {
	Code    string
	Message string
	Detail  any
}

func (e *Error) Error() string {
	return fmt.Sprintf("rdsbackup error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain. Other
// errors are internal and their text is not shown to callers.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "The request processing has failed due to some unknown error, exception or failure."
}

// NoSpace returns the error of a write that failed for want of disk space
// in where ("catalog", "backup storage"): code ENOSPACE, a message for the
// caller, and cause kept in the chain (errors.Is, the logs).
func NoSpace(where string, cause error) error {
	return fmt.Errorf("%w (%w)", Errorf(ENOSPACE, "The disk of the %s is full: nothing was saved. Free space there, then retry.", where), cause)
}

// MissingParameter is the error for a required parameter that is absent.
func MissingParameter(name string) *Error {
	return Errorf(EMissingParameter, "The input parameter %q that is mandatory for processing this request is not supplied.", name)
}

// InvalidParameter is the error for a parameter whose value is not allowed.
func InvalidParameter(name, why string) *Error {
	if why == "" {
		return Errorf(EINVALID, "The specified parameter %q is not valid.", name)
	}
	return Errorf(EINVALID, "The specified parameter %q is not valid: %s", name, why)
}

// MaxQuotedValue is how many bytes of a caller's value an error message
// quotes at most.
const MaxQuotedValue = 64

// QuoteValue quotes a caller's value for an error message: whole when it is
// short, otherwise its first MaxQuotedValue bytes (cut at a character
// boundary) and its length, so that a huge value is not echoed back.
func QuoteValue(v string) string {
	if len(v) <= MaxQuotedValue {
		return strconv.Quote(v)
	}
	cut := MaxQuotedValue
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "… (" + strconv.Itoa(len(v)) + " bytes)"
}

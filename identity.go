package rdsbackup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// User is a RAM user: an identity under the account whose API calls are
// authorized by the policies attached to it.
type User struct {
	ID          string // numeric string, as RAM's UserId
	Name        string
	DisplayName string
	Email       string
	MobilePhone string
	Comments    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// AccessKeyStatus is Active or Inactive.
type AccessKeyStatus string

const (
	KeyActive   AccessKeyStatus = "Active"
	KeyInactive AccessKeyStatus = "Inactive"
)

// AccessKey is an API credential. UserName is "" for the account's root key,
// which is not subject to RAM policies.
type AccessKey struct {
	ID        string
	Secret    string // plaintext in memory only; stored encrypted
	UserName  string
	Status    AccessKeyStatus
	CreatedAt time.Time
}

// Root reports whether the key belongs to the account itself.
func (k *AccessKey) Root() bool { return k.UserName == "" }

// PolicyType tells system policies from the user's own.
type PolicyType string

const (
	PolicySystem PolicyType = "System"
	PolicyCustom PolicyType = "Custom"
)

// Policy is a named RAM policy document.
type Policy struct {
	Name            string
	Type            PolicyType
	Description     string
	Document        string
	DefaultVersion  string
	AttachmentCount int
	CreatedAt       time.Time
	UpdatedAt       time.Time
	AttachedAt      time.Time // set when listed for a user
}

// IdentityService stores RAM users, access keys and policies. Secrets are
// encrypted by the implementation before they reach disk.
type IdentityService interface {
	CreateUser(ctx context.Context, u *User) error
	FindUser(ctx context.Context, name string) (*User, error)
	FindUsers(ctx context.Context, after string, limit int) ([]*User, error)
	// DeleteUser refuses (ECONFLICT-class codes) while the user has keys or
	// attached policies, as RAM does.
	DeleteUser(ctx context.Context, name string) error

	CreateAccessKey(ctx context.Context, k *AccessKey) error
	// FindAccessKey returns the key with its secret decrypted.
	FindAccessKey(ctx context.Context, id string) (*AccessKey, error)
	FindAccessKeys(ctx context.Context, userName string) ([]*AccessKey, error)
	UpdateAccessKeyStatus(ctx context.Context, userName, id string, status AccessKeyStatus) error
	DeleteAccessKey(ctx context.Context, userName, id string) error

	CreatePolicy(ctx context.Context, p *Policy) error
	FindPolicy(ctx context.Context, name string, typ PolicyType) (*Policy, error)
	FindPolicies(ctx context.Context, typ PolicyType) ([]*Policy, error)
	DeletePolicy(ctx context.Context, name string) error
	AttachPolicy(ctx context.Context, policyName string, typ PolicyType, userName string) error
	DetachPolicy(ctx context.Context, policyName string, typ PolicyType, userName string) error
	// FindUserPolicies returns the policies attached to a user, with AttachedAt.
	FindUserPolicies(ctx context.Context, userName string) ([]*Policy, error)
}

// RAM's rules, which every IdentityService applies in the same words.

// MaxAccessKeysPerUser is RAM's limit of access keys per user. The account's
// own (root) keys have no limit here: they come from the environment or a
// first start, never from the API.
const MaxAccessKeysPerUser = 2

// ValidateUserName checks a RAM user name: 1 to 64 letters, digits and
// "._-@".
func ValidateUserName(name string) error { return validRAMName("UserName", name, 64, "@") }

// ValidatePolicyName checks a RAM policy name: 1 to 128 letters, digits and
// "._-".
func ValidatePolicyName(name string) error { return validRAMName("PolicyName", name, 128, "") }

func validRAMName(param, v string, max int, extra string) error {
	if v == "" {
		return MissingParameter(param)
	}
	if utf8.RuneCountInString(v) > max {
		return InvalidParameter(param, "longer than "+strconv.Itoa(max)+" characters")
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-"+extra, r)) {
			return InvalidParameter(param, "may contain only letters, digits and ._-"+extra)
		}
	}
	return nil
}

// ValidateNewAccessKey checks a key about to be stored and gives it the
// Active status when it has none.
func ValidateNewAccessKey(k *AccessKey) error {
	if k.ID == "" || k.Secret == "" {
		return Errorf(EINVALID, "access key id and secret required")
	}
	if k.Status == "" {
		k.Status = KeyActive
	}
	return ValidateAccessKeyStatus(k.Status)
}

// ValidateAccessKeyStatus checks a key status given by a caller.
func ValidateAccessKeyStatus(s AccessKeyStatus) error {
	if s != KeyActive && s != KeyInactive {
		return InvalidParameter("Status", `must be "Active" or "Inactive"`)
	}
	return nil
}

// The refusals of an IdentityService.

func ErrUserExists(name string) *Error {
	return Errorf(EEntityAlreadyExistsUser, "The user %s already exists.", QuoteValue(name))
}

func ErrUserNotFound(name string) *Error {
	return Errorf(EEntityNotExistUser, "The user %s does not exist.", QuoteValue(name))
}

func ErrUserHasKeys(name string) *Error {
	return Errorf(EDeleteConflictUserKey, "The user %s still has access keys; delete them first.", QuoteValue(name))
}

func ErrUserHasPolicies(name string) *Error {
	return Errorf(EDeleteConflictUserPolicy, "The user %s still has policies attached; detach them first.", QuoteValue(name))
}

func ErrAccessKeyLimit(user string) *Error {
	return Errorf(ELimitExceededAccessKey, "The user %s already has %d access keys, the maximum.", QuoteValue(user), MaxAccessKeysPerUser)
}

func ErrAccessKeyExists(id string) *Error {
	return Errorf(ECONFLICT, "access key %s already exists", QuoteValue(id))
}

// ErrAccessKeyNotFound is FindAccessKey's: the caller presented an unknown
// key id.
func ErrAccessKeyNotFound() *Error {
	return Errorf(ENOTFOUND, "Specified access key is not found.")
}

// ErrUserKeyNotFound is the refusal to manage a key that the user does not
// have.
func ErrUserKeyNotFound(id, user string) *Error {
	return Errorf(EEntityNotExistAccessKey, "The access key %s does not exist for user %s.", QuoteValue(id), QuoteValue(user))
}

func ErrPolicyExists(name string) *Error {
	return Errorf(EEntityAlreadyExistsPol, "The policy %s already exists.", QuoteValue(name))
}

func ErrPolicyNotFound(name string, typ PolicyType) *Error {
	return Errorf(EEntityNotExistPolicy, "The policy %s of type %s does not exist.", QuoteValue(name), typ)
}

func ErrPolicyInUse(name string, users int) *Error {
	return Errorf(EDeleteConflictPolicyUser, "The policy %s is still attached to %d user(s); detach it first.", QuoteValue(name), users)
}

func ErrPolicyAttached(policy, user string) *Error {
	return Errorf(EEntityAlreadyAttached, "The policy %s is already attached to user %s.", QuoteValue(policy), QuoteValue(user))
}

func ErrPolicyNotAttached(policy, user string) *Error {
	return Errorf(EEntityNotAttached, "The policy %s is not attached to user %s.", QuoteValue(policy), QuoteValue(user))
}

// SecretBox encrypts secrets before the catalog stores them.
type SecretBox interface {
	Seal(plaintext []byte) ([]byte, error)
	Open(ciphertext []byte) ([]byte, error)
}

// keyAlphabet is the character set of generated key ids and secrets.
const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		// crypto/rand.Read never fails on supported platforms (Go ≥1.24).
		rand.Read(buf)
		for _, b := range buf {
			// Reject the top of the byte range so every letter is equally likely.
			if int(b) < 256-256%len(keyAlphabet) && len(out) < n {
				out = append(out, keyAlphabet[int(b)%len(keyAlphabet)])
			}
		}
	}
	return string(out)
}

// GenerateAccessKey makes a new active key pair shaped like Alibaba Cloud's
// (an "LTAI" id of 24 characters and a 30-character secret).
func GenerateAccessKey(userName string) *AccessKey {
	return &AccessKey{
		ID:       "LTAI" + randomString(20),
		Secret:   randomString(30),
		UserName: userName,
		Status:   KeyActive,
	}
}

// GenerateUserID makes a RAM-style numeric user id.
func GenerateUserID() string {
	buf := make([]byte, 8)
	rand.Read(buf)
	n := binary.BigEndian.Uint64(buf) % 9e15
	return strconv.FormatUint(n+1e15, 10)
}

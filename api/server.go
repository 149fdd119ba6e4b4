// Package api implements the RDS (2014-08-15) and RAM (2015-05-01) actions
// on top of the RPC protocol (package rpc), RAM policy evaluation (package
// ram) and the domain services.
package api

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/ram"
	"github.com/rdsbackup/rdsbackup/rpc"
)

// API versions served on the one endpoint.
const (
	VersionRDS = "2014-08-15"
	VersionRAM = "2015-05-01"
)

// Presigner makes the whole-set links point at the object store itself
// (downloads.mode presigned), so that large downloads do not pass through
// the service. Per-database links stay signed links of the service: they
// are byte ranges of the set object, which a presigned URL cannot carry.
type Presigner interface {
	// PresignSet returns a URL that GETs set's object until expires (unix
	// seconds).
	PresignSet(set *rdsbackup.BackupSet, expires int64) (string, error)
}

// LinkSigner makes the download links of a backup set. Nil means sets have
// no links (the fields are sent empty).
type LinkSigner interface {
	// Expiry is the expiry (unix seconds) of links made now; one answer
	// signs all its links with the same.
	Expiry() int64
	// Link returns the links to set id's whole object (part < 0) or to one
	// of its parts (an index into the set's Artifacts).
	Link(id int64, part int, expires int64) (public, intranet string)
}

// Server serves the API. Set the exported fields, then use it as an
// http.Handler.
type Server struct {
	Instances rdsbackup.InstanceService
	Backups   rdsbackup.BackupSetService
	Jobs      rdsbackup.JobService
	Identity  rdsbackup.IdentityService
	Links     LinkSigner
	// Presigner, when set, makes the whole-set links (downloads.mode
	// presigned); Links still makes the per-database ones.
	Presigner Presigner
	Backup    rdsbackup.BackupStarter // nil: CreateBackup is refused
	Policies  rdsbackup.PolicyService
	// Scheduling applies policy changes and tells the next backup time.
	Scheduling Scheduling
	Deleter    SetDeleter // nil: DeleteBackup is refused

	// Point-in-time recovery (docs/pitr.md); nil fields turn the parts off.
	LogFiles interface {
		FindLogFiles(ctx context.Context, f rdsbackup.LogFileFilter) ([]*rdsbackup.LogFile, int, error)
	}
	Recovery   Recovery
	Recoveries rdsbackup.RecoveryService
	// LogSources checks a server before log backup is turned on, by engine.
	LogSources map[rdsbackup.Engine]LogSource
	// TargetDatabases lists a restore target's databases, by engine.
	TargetDatabases map[rdsbackup.Engine]DatabaseLister
	// Clones runs CloneDBInstance's servers (docs/clones.md); nil: clones
	// are off.
	Clones rdsbackup.CloneService
	// LogPolicyChanged is called after a policy change (the log supervisor's
	// Kick).
	LogPolicyChanged func()

	Auth      *rpc.Authenticator
	Responder *rpc.Responder
	Logger    *slog.Logger
	Now       func() time.Time
	// Metrics, when set, is told of every call answered.
	Metrics RequestMetrics

	Region    string
	AccountID string
	MaxBody   int64

	docsMu sync.Mutex
	docs   map[string]*ram.Document // parsed policy documents by text
	keys   keyCache

	knownOnce sync.Once
	known     map[string]bool // every action name served, for metric labels
}

// RequestMetrics is what the API reports to a metrics system: each call's
// action (as served, or "unknown"), its error code ("" on success) and how
// long it took. Authentication failures and throttling are told by the code.
type RequestMetrics interface {
	RequestDone(action, code string, took time.Duration)
}

// LookupKey returns the secret and state of an access key; wire it into the
// rpc.Authenticator that the server uses.
func (s *Server) LookupKey(ctx context.Context, id string) (rpc.Key, error) {
	return s.lookupKey(ctx, id)
}

// NewServer returns a Server with defaults; the caller sets the services.
func NewServer() *Server {
	return &Server{
		Logger:  slog.New(slog.DiscardHandler),
		Now:     time.Now,
		Region:  "cn-hangzhou",
		MaxBody: 1 << 20,
		docs:    map[string]*ram.Document{},
	}
}

// call is one API call being served.
type call struct {
	req *rpc.Request
	key *rdsbackup.AccessKey // the authenticated caller
}

func (c *call) param(name string) string { return c.req.Param(name) }

// required returns a parameter or MissingParameter naming it.
func (c *call) required(name string) (string, error) {
	v := c.req.Param(name)
	if v == "" {
		return "", rdsbackup.MissingParameter(name)
	}
	return v, nil
}

type handlerFunc func(ctx context.Context, c *call) (any, error)

type action struct {
	fn handlerFunc
	// resources returns the RAM resources a call acts on; every one of them
	// must be allowed.
	resources func(s *Server, c *call) []string
	// required parameters are checked before authorization, so a caller
	// hears MissingParameter rather than a denial about an empty resource.
	required []string
}

func (s *Server) actions(version string) map[string]action {
	switch version {
	case VersionRDS:
		return s.rdsActions()
	case VersionRAM:
		return s.ramActions()
	}
	return nil
}

// ServeHTTP parses, authenticates, routes and authorizes one call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	start := time.Now()
	req, err := rpc.ParseRequest(r, s.MaxBody)
	var resp any
	if err == nil {
		resp, err = s.serve(r.Context(), req)
	}
	if err != nil {
		s.Responder.WriteError(w, req, err)
	} else {
		s.Responder.Write(w, req, resp)
	}
	if s.Metrics != nil {
		s.Metrics.RequestDone(s.actionLabel(req.Action), rdsbackup.ErrorCode(err), time.Since(start))
	}
}

// actionLabel is the action's name if the service serves it, else
// "unknown": callers choose Action, and a metric label must stay bounded.
func (s *Server) actionLabel(action string) string {
	s.knownOnce.Do(func() {
		s.known = map[string]bool{}
		for _, v := range []string{VersionRDS, VersionRAM} {
			for name := range s.actions(v) {
				s.known[name] = true
			}
		}
	})
	if s.known[action] {
		return action
	}
	return "unknown"
}

func (s *Server) serve(ctx context.Context, req *rpc.Request) (any, error) {
	if req.Action == "" {
		return nil, rdsbackup.MissingParameter("Action")
	}
	if req.Version == "" {
		return nil, rdsbackup.MissingParameter("Version")
	}
	actions := s.actions(req.Version)
	if actions == nil {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidVersion, "Specified parameter Version is not valid.")
	}
	act, ok := actions[req.Action]
	if !ok {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidAction, "Specified api is not found, please check your url and method.")
	}
	if err := s.Auth.Authenticate(ctx, req); err != nil {
		return nil, err
	}
	key, err := s.accessKey(ctx, req.AccessKeyID)
	if err != nil {
		return nil, err
	}
	c := &call{req: req, key: key}
	for _, name := range act.required {
		if _, err := c.required(name); err != nil {
			return nil, err
		}
	}
	if err := checkInstanceIDCount(c); err != nil {
		return nil, err
	}
	if !key.Root() {
		if err := s.authorize(ctx, c, act); err != nil {
			return nil, err
		}
	}
	return act.fn(ctx, c)
}

// ramService is the RAM action prefix of each API version.
func ramService(version string) string {
	if version == VersionRAM {
		return "ram"
	}
	return "rds"
}

// authorize evaluates the caller's policies for this call: every resource
// it acts on must be allowed.
func (s *Server) authorize(ctx context.Context, c *call, act action) error {
	policies, err := s.userPolicies(ctx, c.key.UserName)
	if err != nil {
		return err
	}
	authAction := ramService(c.req.Version) + ":" + c.req.Action
	for _, resource := range act.resources(s, c) {
		d := ram.Evaluate(policies, ram.Context{
			Action:          authAction,
			Resource:        resource,
			SourceIP:        c.req.SourceIP,
			CurrentTime:     s.Now().UTC(),
			SecureTransport: c.req.Secure,
		})
		if d.Allowed {
			continue
		}
		policyType := ""
		if d.NoPermissionType == ram.ExplicitDeny {
			policyType = "AccountLevelIdentityBasedPolicy"
		}
		return &rdsbackup.Error{
			Code:    rdsbackup.EForbiddenRAM,
			Message: "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
			Detail: accessDeniedDetail{
				AuthAction:               authAction,
				AuthPrincipalType:        "SubUser",
				AuthPrincipalOwnerId:     s.AccountID,
				AuthPrincipalDisplayName: c.key.UserName,
				NoPermissionType:         d.NoPermissionType,
				PolicyType:               policyType,
			},
		}
	}
	return nil
}

type accessDeniedDetail struct {
	AuthAction               string `json:"AuthAction" xml:"AuthAction"`
	AuthPrincipalType        string `json:"AuthPrincipalType" xml:"AuthPrincipalType"`
	AuthPrincipalOwnerId     string `json:"AuthPrincipalOwnerId" xml:"AuthPrincipalOwnerId"`
	AuthPrincipalDisplayName string `json:"AuthPrincipalDisplayName" xml:"AuthPrincipalDisplayName"`
	NoPermissionType         string `json:"NoPermissionType" xml:"NoPermissionType"`
	PolicyType               string `json:"PolicyType" xml:"PolicyType"`
	EncodedDiagnosticMessage string `json:"EncodedDiagnosticMessage" xml:"EncodedDiagnosticMessage"`
}

// userPolicies loads a user's policies, parsing each distinct document once.
func (s *Server) userPolicies(ctx context.Context, userName string) ([]*ram.Policy, error) {
	stored, err := s.Identity.FindUserPolicies(ctx, userName)
	if err != nil {
		return nil, err
	}
	out := make([]*ram.Policy, 0, len(stored))
	for _, p := range stored {
		doc, err := s.document(p.Document)
		if err != nil {
			// Documents are validated when created; one that no longer
			// parses must not grant anything, but must not hide the others.
			s.Logger.Warn("stored policy does not parse", "policy", p.Name, "err", err)
			continue
		}
		out = append(out, &ram.Policy{Name: p.Name, Type: string(p.Type), Document: doc})
	}
	return out, nil
}

func (s *Server) document(text string) (*ram.Document, error) {
	s.docsMu.Lock()
	defer s.docsMu.Unlock()
	if d, ok := s.docs[text]; ok {
		return d, nil
	}
	d, err := ram.ParseDocument(text)
	if err != nil {
		return nil, err
	}
	if len(s.docs) > 10000 { // custom policies are few; bound it anyway
		clear(s.docs)
	}
	s.docs[text] = d
	return d, nil
}

func (s *Server) instanceARN(id string) string {
	return "acs:rds:" + s.Region + ":" + s.AccountID + ":dbinstance/" + id
}

// maxInstanceIDs caps a DBInstanceId comma list (DescribeDBInstances,
// DescribeDBInstanceAttribute): each id is a RAM resource to evaluate and an
// instance to look up.
const maxInstanceIDs = 100

// checkInstanceIDCount refuses an oversized DBInstanceId list before
// authorization evaluates a resource per id; counting costs one pass and no
// allocation.
func checkInstanceIDCount(c *call) error {
	v := c.param("DBInstanceId")
	if n := strings.Count(v, ",") + 1; n > maxInstanceIDs {
		return rdsbackup.InvalidParameter("DBInstanceId", "at most "+strconv.Itoa(maxInstanceIDs)+" ids per call, got "+strconv.Itoa(n))
	}
	return nil
}

// instanceIDs reads DBInstanceId as the actions do: a comma list, each id
// trimmed. Authorization and the handlers must see the same ids.
func instanceIDs(c *call) []string {
	var ids []string
	for _, id := range strings.Split(c.param("DBInstanceId"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// instanceResources are the resources of actions on instances; without an
// instance id the call concerns all of them.
func instanceResources(s *Server, c *call) []string {
	ids := instanceIDs(c)
	if len(ids) == 0 {
		return []string{s.instanceARN("*")}
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = s.instanceARN(id)
	}
	return out
}

// ActionNames lists the actions served under an API version, sorted.
func ActionNames(version string) []string {
	return slices.Sorted(maps.Keys(NewServer().actions(version)))
}

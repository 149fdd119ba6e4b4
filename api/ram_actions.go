package api

import (
	"context"

	"github.com/rdsbackup/rdsbackup"
	"github.com/rdsbackup/rdsbackup/ram"
)

func (s *Server) ramActions() map[string]action {
	userARN := func(name string) string { return "acs:ram:*:" + s.AccountID + ":user/" + name }
	policyARN := func(name string) string { return "acs:ram:*:" + s.AccountID + ":policy/" + name }
	// Each resource function names what its handler acts on, read from the
	// same parameters the handler reads (keyOwner for the key actions).
	user := func(s *Server, c *call) []string { return []string{userARN(c.param("UserName"))} }
	keyUser := func(s *Server, c *call) []string { return []string{userARN(keyOwner(c))} }
	policy := func(s *Server, c *call) []string { return []string{policyARN(c.param("PolicyName"))} }
	// Attaching or detaching changes what the user may do, so both the
	// policy and the user must be allowed.
	policyAndUser := func(s *Server, c *call) []string {
		return []string{policyARN(c.param("PolicyName")), userARN(c.param("UserName"))}
	}
	all := func(s *Server, c *call) []string { return []string{"acs:ram:*:" + s.AccountID + ":*"} }
	return map[string]action{
		"CreateUser":           {fn: s.createUser, resources: user, required: []string{"UserName"}},
		"GetUser":              {fn: s.getUser, resources: user, required: []string{"UserName"}},
		"ListUsers":            {fn: s.listUsers, resources: all},
		"DeleteUser":           {fn: s.deleteUser, resources: user, required: []string{"UserName"}},
		"CreateAccessKey":      {fn: s.createAccessKey, resources: keyUser},
		"UpdateAccessKey":      {fn: s.updateAccessKey, resources: keyUser, required: []string{"UserAccessKeyId", "Status"}},
		"ListAccessKeys":       {fn: s.listAccessKeys, resources: keyUser},
		"DeleteAccessKey":      {fn: s.deleteAccessKey, resources: keyUser, required: []string{"UserAccessKeyId"}},
		"CreatePolicy":         {fn: s.createPolicy, resources: policy, required: []string{"PolicyName", "PolicyDocument"}},
		"GetPolicy":            {fn: s.getPolicy, resources: policy, required: []string{"PolicyName", "PolicyType"}},
		"ListPolicies":         {fn: s.listPolicies, resources: all},
		"DeletePolicy":         {fn: s.deletePolicy, resources: policy, required: []string{"PolicyName"}},
		"AttachPolicyToUser":   {fn: s.attachPolicyToUser, resources: policyAndUser, required: []string{"PolicyName", "PolicyType", "UserName"}},
		"DetachPolicyFromUser": {fn: s.detachPolicyFromUser, resources: policyAndUser, required: []string{"PolicyName", "PolicyType", "UserName"}},
		"ListPoliciesForUser":  {fn: s.listPoliciesForUser, resources: user, required: []string{"UserName"}},
	}
}

type userOut struct {
	UserId      string `json:"UserId" xml:"UserId"`
	UserName    string `json:"UserName" xml:"UserName"`
	DisplayName string `json:"DisplayName" xml:"DisplayName"`
	MobilePhone string `json:"MobilePhone" xml:"MobilePhone"`
	Email       string `json:"Email" xml:"Email"`
	Comments    string `json:"Comments" xml:"Comments"`
	CreateDate  string `json:"CreateDate" xml:"CreateDate"`
	UpdateDate  string `json:"UpdateDate" xml:"UpdateDate"`
}

func toUserOut(u *rdsbackup.User) userOut {
	return userOut{UserId: u.ID, UserName: u.Name, DisplayName: u.DisplayName, MobilePhone: u.MobilePhone,
		Email: u.Email, Comments: u.Comments, CreateDate: formatTime(u.CreatedAt), UpdateDate: formatTime(u.UpdatedAt)}
}

type userResponse struct {
	RequestId string  `json:"RequestId" xml:"RequestId"`
	User      userOut `json:"User" xml:"User"`
}

type emptyResponse struct {
	RequestId string `json:"RequestId" xml:"RequestId"`
}

func (s *Server) createUser(ctx context.Context, c *call) (any, error) {
	name := c.param("UserName")
	if err := rdsbackup.ValidateUserName(name); err != nil {
		return nil, err
	}
	u := &rdsbackup.User{ID: rdsbackup.GenerateUserID(), Name: name, DisplayName: c.param("DisplayName"),
		MobilePhone: c.param("MobilePhone"), Email: c.param("Email"), Comments: c.param("Comments")}
	if u.DisplayName == "" {
		u.DisplayName = name
	}
	if err := s.Identity.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return &userResponse{RequestId: c.req.RequestID, User: toUserOut(u)}, nil
}

func (s *Server) getUser(ctx context.Context, c *call) (any, error) {
	name, err := c.required("UserName")
	if err != nil {
		return nil, err
	}
	u, err := s.Identity.FindUser(ctx, name)
	if err != nil {
		return nil, err
	}
	return &userResponse{RequestId: c.req.RequestID, User: toUserOut(u)}, nil
}

type listUsersResponse struct {
	RequestId   string `json:"RequestId" xml:"RequestId"`
	IsTruncated bool   `json:"IsTruncated" xml:"IsTruncated"`
	Marker      string `json:"Marker" xml:"Marker"`
	Users       struct {
		User []userOut `json:"User" xml:"User"`
	} `json:"Users" xml:"Users"`
}

// maxItems reads RAM's MaxItems (1–1000, default 100).
func maxItems(c *call) (int, error) {
	v := c.param("MaxItems")
	if v == "" {
		return 100, nil
	}
	n, ok := positiveInt(v)
	if !ok || n > 1000 {
		return 0, rdsbackup.InvalidParameter("MaxItems", "must be 1 to 1000")
	}
	return n, nil
}

func (s *Server) listUsers(ctx context.Context, c *call) (any, error) {
	limit, err := maxItems(c)
	if err != nil {
		return nil, err
	}
	// The marker is the last name of the previous page.
	users, err := s.Identity.FindUsers(ctx, c.param("Marker"), limit+1)
	if err != nil {
		return nil, err
	}
	resp := &listUsersResponse{RequestId: c.req.RequestID}
	resp.Users.User = []userOut{}
	if len(users) > limit {
		users = users[:limit]
		resp.IsTruncated = true
		resp.Marker = users[len(users)-1].Name
	}
	for _, u := range users {
		resp.Users.User = append(resp.Users.User, toUserOut(u))
	}
	return resp, nil
}

func (s *Server) deleteUser(ctx context.Context, c *call) (any, error) {
	name, err := c.required("UserName")
	if err != nil {
		return nil, err
	}
	if err := s.Identity.DeleteUser(ctx, name); err != nil {
		return nil, err
	}
	s.forgetKeys()
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

type accessKeyOut struct {
	AccessKeyId     string `json:"AccessKeyId" xml:"AccessKeyId"`
	AccessKeySecret string `json:"AccessKeySecret,omitempty" xml:"AccessKeySecret,omitempty"`
	Status          string `json:"Status" xml:"Status"`
	CreateDate      string `json:"CreateDate" xml:"CreateDate"`
}

// keyOwner is the user whose keys a call manages: UserName when given,
// otherwise the caller itself (root keys for the account).
func keyOwner(c *call) string {
	if v := c.param("UserName"); v != "" {
		return v
	}
	return c.key.UserName
}

func (s *Server) createAccessKey(ctx context.Context, c *call) (any, error) {
	owner := keyOwner(c)
	if owner == "" {
		// Root keys come from the environment or first start; making more
		// over the API would let one leaked root key mint others.
		return nil, rdsbackup.MissingParameter("UserName")
	}
	k := rdsbackup.GenerateAccessKey(owner)
	if err := s.Identity.CreateAccessKey(ctx, k); err != nil {
		return nil, err
	}
	return &struct {
		RequestId string       `json:"RequestId" xml:"RequestId"`
		AccessKey accessKeyOut `json:"AccessKey" xml:"AccessKey"`
	}{c.req.RequestID, accessKeyOut{AccessKeyId: k.ID, AccessKeySecret: k.Secret, Status: string(k.Status), CreateDate: formatTime(k.CreatedAt)}}, nil
}

func (s *Server) updateAccessKey(ctx context.Context, c *call) (any, error) {
	id, err := c.required("UserAccessKeyId")
	if err != nil {
		return nil, err
	}
	status, err := c.required("Status")
	if err != nil {
		return nil, err
	}
	if status != string(rdsbackup.KeyActive) && status != string(rdsbackup.KeyInactive) {
		return nil, rdsbackup.InvalidParameter("Status", `must be "Active" or "Inactive"`)
	}
	owner := keyOwner(c)
	if owner == "" && id == c.key.ID && status == string(rdsbackup.KeyInactive) {
		return nil, rdsbackup.InvalidParameter("UserAccessKeyId", "the root key cannot disable itself")
	}
	if err := s.Identity.UpdateAccessKeyStatus(ctx, owner, id, rdsbackup.AccessKeyStatus(status)); err != nil {
		return nil, err
	}
	s.forgetKeys()
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

func (s *Server) listAccessKeys(ctx context.Context, c *call) (any, error) {
	owner := keyOwner(c)
	if owner != "" {
		if _, err := s.Identity.FindUser(ctx, owner); err != nil {
			return nil, err
		}
	}
	keys, err := s.Identity.FindAccessKeys(ctx, owner)
	if err != nil {
		return nil, err
	}
	resp := &struct {
		RequestId  string `json:"RequestId" xml:"RequestId"`
		AccessKeys struct {
			AccessKey []accessKeyOut `json:"AccessKey" xml:"AccessKey"`
		} `json:"AccessKeys" xml:"AccessKeys"`
	}{RequestId: c.req.RequestID}
	resp.AccessKeys.AccessKey = []accessKeyOut{}
	for _, k := range keys {
		resp.AccessKeys.AccessKey = append(resp.AccessKeys.AccessKey,
			accessKeyOut{AccessKeyId: k.ID, Status: string(k.Status), CreateDate: formatTime(k.CreatedAt)})
	}
	return resp, nil
}

func (s *Server) deleteAccessKey(ctx context.Context, c *call) (any, error) {
	id, err := c.required("UserAccessKeyId")
	if err != nil {
		return nil, err
	}
	owner := keyOwner(c)
	if owner == "" && id == c.key.ID {
		return nil, rdsbackup.InvalidParameter("UserAccessKeyId", "the root key cannot delete itself")
	}
	if err := s.Identity.DeleteAccessKey(ctx, owner, id); err != nil {
		return nil, err
	}
	s.forgetKeys()
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

type policyOut struct {
	PolicyName      string `json:"PolicyName" xml:"PolicyName"`
	PolicyType      string `json:"PolicyType" xml:"PolicyType"`
	Description     string `json:"Description" xml:"Description"`
	DefaultVersion  string `json:"DefaultVersion" xml:"DefaultVersion"`
	PolicyDocument  string `json:"PolicyDocument,omitempty" xml:"PolicyDocument,omitempty"`
	AttachmentCount int    `json:"AttachmentCount" xml:"AttachmentCount"`
	CreateDate      string `json:"CreateDate" xml:"CreateDate"`
	UpdateDate      string `json:"UpdateDate" xml:"UpdateDate"`
	AttachDate      string `json:"AttachDate,omitempty" xml:"AttachDate,omitempty"`
}

func toPolicyOut(p *rdsbackup.Policy, withDocument bool) policyOut {
	out := policyOut{PolicyName: p.Name, PolicyType: string(p.Type), Description: p.Description,
		DefaultVersion: p.DefaultVersion, AttachmentCount: p.AttachmentCount,
		CreateDate: formatTime(p.CreatedAt), UpdateDate: formatTime(p.UpdatedAt), AttachDate: formatTime(p.AttachedAt)}
	if withDocument {
		out.PolicyDocument = p.Document
	}
	return out
}

type policyResponse struct {
	RequestId string    `json:"RequestId" xml:"RequestId"`
	Policy    policyOut `json:"Policy" xml:"Policy"`
}

func (s *Server) createPolicy(ctx context.Context, c *call) (any, error) {
	name := c.param("PolicyName")
	if err := rdsbackup.ValidatePolicyName(name); err != nil {
		return nil, err
	}
	text, err := c.required("PolicyDocument")
	if err != nil {
		return nil, err
	}
	if len(text) > 6144 {
		return nil, rdsbackup.Errorf(rdsbackup.EInvalidPolicyDocument, "The policy document is longer than 6144 bytes.")
	}
	if _, err := ram.ParseDocument(text); err != nil {
		return nil, err
	}
	p := &rdsbackup.Policy{Name: name, Type: rdsbackup.PolicyCustom, Description: c.param("Description"), Document: text}
	if err := s.Identity.CreatePolicy(ctx, p); err != nil {
		return nil, err
	}
	return &policyResponse{RequestId: c.req.RequestID, Policy: toPolicyOut(p, false)}, nil
}

// policyType reads PolicyType (System or Custom); required says whether the
// action needs it.
func policyType(c *call, required bool) (rdsbackup.PolicyType, error) {
	v := c.param("PolicyType")
	switch {
	case v == "" && required:
		return "", rdsbackup.MissingParameter("PolicyType")
	case v == "" || v == string(rdsbackup.PolicySystem) || v == string(rdsbackup.PolicyCustom):
		return rdsbackup.PolicyType(v), nil
	}
	return "", rdsbackup.InvalidParameter("PolicyType", `must be "System" or "Custom"`)
}

func (s *Server) getPolicy(ctx context.Context, c *call) (any, error) {
	name, err := c.required("PolicyName")
	if err != nil {
		return nil, err
	}
	typ, err := policyType(c, true)
	if err != nil {
		return nil, err
	}
	p, err := s.Identity.FindPolicy(ctx, name, typ)
	if err != nil {
		return nil, err
	}
	type versionOut struct {
		VersionId        string `json:"VersionId" xml:"VersionId"`
		IsDefaultVersion bool   `json:"IsDefaultVersion" xml:"IsDefaultVersion"`
		PolicyDocument   string `json:"PolicyDocument" xml:"PolicyDocument"`
		CreateDate       string `json:"CreateDate" xml:"CreateDate"`
	}
	return &struct {
		RequestId            string     `json:"RequestId" xml:"RequestId"`
		Policy               policyOut  `json:"Policy" xml:"Policy"`
		DefaultPolicyVersion versionOut `json:"DefaultPolicyVersion" xml:"DefaultPolicyVersion"`
	}{c.req.RequestID, toPolicyOut(p, true), versionOut{p.DefaultVersion, true, p.Document, formatTime(p.CreatedAt)}}, nil
}

type policiesResponse struct {
	RequestId   string `json:"RequestId" xml:"RequestId"`
	IsTruncated bool   `json:"IsTruncated" xml:"IsTruncated"`
	Marker      string `json:"Marker" xml:"Marker"`
	Policies    struct {
		Policy []policyOut `json:"Policy" xml:"Policy"`
	} `json:"Policies" xml:"Policies"`
}

func (s *Server) listPolicies(ctx context.Context, c *call) (any, error) {
	typ, err := policyType(c, false)
	if err != nil {
		return nil, err
	}
	limit, err := maxItems(c)
	if err != nil {
		return nil, err
	}
	all, err := s.Identity.FindPolicies(ctx, typ)
	if err != nil {
		return nil, err
	}
	// The marker is "Type:Name" of the last policy of the previous page;
	// policies are few, so paging in memory is enough.
	marker := c.param("Marker")
	resp := &policiesResponse{RequestId: c.req.RequestID}
	resp.Policies.Policy = []policyOut{}
	for _, p := range all {
		key := string(p.Type) + ":" + p.Name
		if marker != "" && key <= marker {
			continue
		}
		if len(resp.Policies.Policy) == limit {
			resp.IsTruncated = true
			last := resp.Policies.Policy[limit-1]
			resp.Marker = last.PolicyType + ":" + last.PolicyName
			break
		}
		resp.Policies.Policy = append(resp.Policies.Policy, toPolicyOut(p, false))
	}
	return resp, nil
}

func (s *Server) deletePolicy(ctx context.Context, c *call) (any, error) {
	name, err := c.required("PolicyName")
	if err != nil {
		return nil, err
	}
	if err := s.Identity.DeletePolicy(ctx, name); rdsbackup.ErrorCode(err) == rdsbackup.EEntityNotExistPolicy {
		if _, serr := s.Identity.FindPolicy(ctx, name, rdsbackup.PolicySystem); serr == nil {
			return nil, rdsbackup.Errorf(rdsbackup.ENoPermissionSystemPolicy, "The policy %s is a system policy and cannot be deleted.", rdsbackup.QuoteValue(name))
		}
		return nil, err
	} else if err != nil {
		return nil, err
	}
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

// attachment reads the parameters of Attach/DetachPolicyToUser.
func attachment(c *call) (name string, typ rdsbackup.PolicyType, user string, err error) {
	if name, err = c.required("PolicyName"); err != nil {
		return
	}
	if typ, err = policyType(c, true); err != nil {
		return
	}
	user, err = c.required("UserName")
	return
}

func (s *Server) attachPolicyToUser(ctx context.Context, c *call) (any, error) {
	name, typ, user, err := attachment(c)
	if err != nil {
		return nil, err
	}
	if err := s.Identity.AttachPolicy(ctx, name, typ, user); err != nil {
		return nil, err
	}
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

func (s *Server) detachPolicyFromUser(ctx context.Context, c *call) (any, error) {
	name, typ, user, err := attachment(c)
	if err != nil {
		return nil, err
	}
	if err := s.Identity.DetachPolicy(ctx, name, typ, user); err != nil {
		return nil, err
	}
	return &emptyResponse{RequestId: c.req.RequestID}, nil
}

func (s *Server) listPoliciesForUser(ctx context.Context, c *call) (any, error) {
	user, err := c.required("UserName")
	if err != nil {
		return nil, err
	}
	if _, err := s.Identity.FindUser(ctx, user); err != nil {
		return nil, err
	}
	ps, err := s.Identity.FindUserPolicies(ctx, user)
	if err != nil {
		return nil, err
	}
	resp := &policiesResponse{RequestId: c.req.RequestID}
	resp.Policies.Policy = []policyOut{}
	for _, p := range ps {
		resp.Policies.Policy = append(resp.Policies.Policy, toPolicyOut(p, false))
	}
	return resp, nil
}

// EnsureSystemPolicies stores the built-in policies that are missing.
func (s *Server) EnsureSystemPolicies(ctx context.Context) error {
	for _, sp := range ram.SystemPolicies() {
		_, err := s.Identity.FindPolicy(ctx, sp.Name, rdsbackup.PolicySystem)
		if err == nil {
			continue
		} else if rdsbackup.ErrorCode(err) != rdsbackup.EEntityNotExistPolicy {
			return err
		}
		// Another node sharing the catalog may store it first.
		if err := s.Identity.CreatePolicy(ctx, &rdsbackup.Policy{Name: sp.Name, Type: rdsbackup.PolicySystem,
			Description: sp.Description, Document: sp.Document}); err != nil && rdsbackup.ErrorCode(err) != rdsbackup.EEntityAlreadyExistsPol {
			return err
		}
	}
	return nil
}

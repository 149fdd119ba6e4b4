package ram

// SystemPolicy describes a predefined policy: it exists in every account and
// cannot be created, changed or deleted by users.
type SystemPolicy struct {
	Name        string
	Description string
	Document    string // policy document text, as GetPolicy returns it
}

// System policy names.
const (
	AdministratorAccess     = "AdministratorAccess"
	AliyunRDSFullAccess     = "AliyunRDSFullAccess"
	AliyunRDSReadOnlyAccess = "AliyunRDSReadOnlyAccess"
)

var systemPolicies = []SystemPolicy{
	{
		Name:        AdministratorAccess,
		Description: "Provides full access to Alibaba Cloud services and resources.",
		Document:    systemDocument("*"),
	},
	{
		Name:        AliyunRDSFullAccess,
		Description: "Provides full access to ApsaraDB RDS.",
		Document:    systemDocument("rds:*"),
	},
	{
		Name:        AliyunRDSReadOnlyAccess,
		Description: "Provides read-only access to ApsaraDB RDS.",
		Document:    systemDocument("rds:Describe*"),
	},
}

// systemDocument renders a one-statement Allow on all resources in the
// indented layout RAM uses for its own policies.
func systemDocument(action string) string {
	return `{
    "Version": "1",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "` + action + `",
            "Resource": "*"
        }
    ]
}`
}

// systemParsed holds the parsed system policies; parsing them at start-up
// turns a broken built-in document into an immediate panic rather than a
// failed request.
var systemParsed = func() map[string]*Document {
	m := make(map[string]*Document, len(systemPolicies))
	for _, sp := range systemPolicies {
		d, err := ParseDocument(sp.Document)
		if err != nil {
			panic("ram: system policy " + sp.Name + ": " + err.Error())
		}
		m[sp.Name] = d
	}
	return m
}()

// SystemPolicies returns the predefined policies, in a stable order. The
// slice is a copy and may be modified.
func SystemPolicies() []SystemPolicy {
	return append([]SystemPolicy(nil), systemPolicies...)
}

// LookupSystemPolicy returns the named system policy, ready for Evaluate.
// Names are case-sensitive. The Document is shared and immutable.
func LookupSystemPolicy(name string) (*Policy, bool) {
	d, ok := systemParsed[name]
	if !ok {
		return nil, false
	}
	return &Policy{Name: name, Type: TypeSystem, Document: d}, true
}

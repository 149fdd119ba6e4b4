package postgres

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// connParams is what the tools need to reach a server, taken from an
// instance's URL. The password is kept apart from env.
type connParams struct {
	env      []string // PGHOST=…, PGPORT=…: never the password
	password string
	user     string
	database string // from the URL's path or dbname parameter; "" when absent
	where    string // host:port, for messages
}

// libpqEnv maps libpq connection parameters to the environment variables
// libpq reads them from.
var libpqEnv = map[string]string{
	"host":                     "PGHOST",
	"hostaddr":                 "PGHOSTADDR",
	"port":                     "PGPORT",
	"user":                     "PGUSER",
	"passfile":                 "PGPASSFILE",
	"options":                  "PGOPTIONS",
	"application_name":         "PGAPPNAME",
	"sslmode":                  "PGSSLMODE",
	"sslnegotiation":           "PGSSLNEGOTIATION",
	"sslcompression":           "PGSSLCOMPRESSION",
	"sslcert":                  "PGSSLCERT",
	"sslkey":                   "PGSSLKEY",
	"sslrootcert":              "PGSSLROOTCERT",
	"sslcrl":                   "PGSSLCRL",
	"sslcrldir":                "PGSSLCRLDIR",
	"sslsni":                   "PGSSLSNI",
	"sslcertmode":              "PGSSLCERTMODE",
	"requirepeer":              "PGREQUIREPEER",
	"require_auth":             "PGREQUIREAUTH",
	"channel_binding":          "PGCHANNELBINDING",
	"ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
	"ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
	"gssencmode":               "PGGSSENCMODE",
	"gsslib":                   "PGGSSLIB",
	"krbsrvname":               "PGKRBSRVNAME",
	"connect_timeout":          "PGCONNECT_TIMEOUT",
	"client_encoding":          "PGCLIENTENCODING",
	"target_session_attrs":     "PGTARGETSESSIONATTRS",
	"load_balance_hosts":       "PGLOADBALANCEHOSTS",
	"service":                  "PGSERVICE",
	"servicefile":              "PGSERVICEFILE",
	"min_protocol_version":     "PGMINPROTOCOLVERSION",
	"max_protocol_version":     "PGMAXPROTOCOLVERSION",
}

// Parameters of libpq (or pgx) that have no environment variable and do
// not matter to the tools; they are dropped rather than sent as settings.
var ignoredParams = map[string]bool{
	"keepalives": true, "keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "replication": true, "sslpassword": true, "krbspn": true,
	"fallback_application_name": true, "statement_cache_capacity": true, "default_query_exec_mode": true,
	"description_cache_capacity": true,
}

// errNotURL is returned for DSNs that are not postgres:// URLs.
var errNotURL = errors.New(`the DSN of a PostgreSQL instance must be a URL: postgres://user:password@host:port/database?sslmode=…`)

// parseDSN takes an instance URL apart for the tools. It accepts what libpq
// accepts in a URL: several host:port pairs separated by commas, a socket
// directory as host (percent-encoded, or ?host=/path), and libpq
// parameters in the query.
func parseDSN(dsn string) (*connParams, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return nil, errNotURL
	}
	_, rest, _ := strings.Cut(dsn, "://")
	// net/url rejects several host:port pairs, so the authority is taken
	// apart here and only the path and query are left to it.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	p := &connParams{}
	vars := map[string]string{}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		var err error
		if p.user, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("the user name in the DSN is not properly percent-encoded")
		}
		if hasPass {
			if p.password, err = url.PathUnescape(pass); err != nil {
				// Not the error's text: it would quote the password.
				return nil, errors.New("the password in the DSN is not properly percent-encoded")
			}
		}
	}
	if authority != "" {
		var hosts, ports []string
		anyPort := false
		for _, hp := range strings.Split(authority, ",") {
			host, port := hp, ""
			if strings.HasPrefix(hp, "[") { // [::1]:5432
				end := strings.IndexByte(hp, ']')
				if end < 0 {
					return nil, fmt.Errorf("the DSN's host %q is not valid", hp)
				}
				host, port = hp[1:end], strings.TrimPrefix(hp[end+1:], ":")
			} else if h, pt, ok := strings.Cut(hp, ":"); ok {
				host, port = h, pt
			}
			h, err := url.PathUnescape(host)
			if err != nil {
				return nil, fmt.Errorf("the DSN's host %q is not valid", host)
			}
			hosts, ports = append(hosts, h), append(ports, port)
			anyPort = anyPort || port != ""
		}
		vars["host"] = strings.Join(hosts, ",")
		if anyPort {
			vars["port"] = strings.Join(ports, ",")
		}
	}
	u, err := url.Parse("postgres://x" + tail)
	if err != nil {
		return nil, fmt.Errorf("the DSN's database or parameters are not valid: %v", errors.Unwrap(err))
	}
	p.database = strings.TrimPrefix(u.Path, "/")
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("the DSN's parameters are not properly encoded")
	}
	var options []string
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := q.Get(k)
		switch {
		case k == "password":
			p.password = v
		case k == "dbname" || k == "database":
			p.database = v
		case k == "user":
			p.user = v
		case k == "ssl":
			if v == "true" && q.Get("sslmode") == "" {
				vars["sslmode"] = "require"
			}
		case libpqEnv[k] != "":
			vars[k] = v
		case ignoredParams[k]:
		default:
			// pgx sends unknown parameters to the server as settings;
			// the tools get them the libpq way.
			options = append(options, "-c "+escapeOption(k+"="+v))
		}
	}
	if len(options) > 0 {
		if o := vars["options"]; o != "" {
			options = append([]string{o}, options...)
		}
		vars["options"] = strings.Join(options, " ")
	}
	if p.user != "" {
		vars["user"] = p.user
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.env = append(p.env, libpqEnv[k]+"="+vars[k])
	}
	p.where = vars["host"]
	if p.where == "" {
		p.where = "the default socket"
	}
	if port := vars["port"]; port != "" && !strings.Contains(port, ",") {
		p.where = net.JoinHostPort(p.where, port)
	}
	return p, nil
}

// escapeOption escapes spaces and backslashes in a PGOPTIONS word.
func escapeOption(s string) string {
	return strings.NewReplacer(`\`, `\\`, " ", `\ `).Replace(s)
}

// conninfoDB returns a libpq connection string that names only a database:
// the tools would take a bare name containing "=" for a connection string.
func conninfoDB(name string) string {
	return "dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name) + "'"
}

// pgpassLine returns a .pgpass line matching every host, port, database and
// user (the file is private to one operation) with the password escaped.
func pgpassLine(password string) string {
	return "*:*:*:*:" + strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password) + "\n"
}

// redactor removes a password, in its plain and percent-encoded forms, from
// messages.
type redactor []string

func newRedactor(password string) redactor {
	if password == "" {
		return nil
	}
	r := redactor{password}
	for _, s := range []string{url.QueryEscape(password), url.PathEscape(password), url.UserPassword("", password).String()[1:]} {
		if s != password {
			r = append(r, s)
		}
	}
	// Longest first, so that an encoded form is not half replaced.
	sort.Slice(r, func(i, j int) bool { return len(r[i]) > len(r[j]) })
	return r
}

func (r redactor) string(s string) string {
	for _, secret := range r {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	return s
}

// err returns err with the password removed from its message. errors.Is and
// errors.As still see the original chain.
func (r redactor) err(err error) error {
	if err == nil || len(r) == 0 {
		return err
	}
	msg := err.Error()
	if clean := r.string(msg); clean != msg {
		return &redactedError{msg: clean, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

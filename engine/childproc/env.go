package childproc

import (
	"os"
	"strings"
)

// Env is the environment a tool starts with: of the service's own
// variables only PATH (to find the tool's helpers), TMPDIR, the time zone
// and the locale, and then extra (the tool's connection settings, HOME).
// Nothing else is inherited: the service's environment holds its root
// key's secret, the master key and every instance's password variable, and
// a child's environment can be read by any process of the same user.
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if InheritedVariable(name) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// InheritedVariable reports whether Env passes the service's variable name
// on to tools.
func InheritedVariable(name string) bool {
	switch name {
	case "PATH", "TMPDIR", "TZ", "LANG", "LANGUAGE":
		return true
	}
	return strings.HasPrefix(name, "LC_")
}

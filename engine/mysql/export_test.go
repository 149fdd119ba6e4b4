package mysql

import (
	"github.com/go-sql-driver/mysql"

	"github.com/rdsbackup/rdsbackup/engine/childproc"
)

// Internals the external tests check directly.

// DumpArgs is dumpArgs.
func DumpArgs(optFile, database string) []string { return dumpArgs(optFile, database) }

// OptionFileText renders the option file a run against dsn would use.
func (e *Engine) OptionFileText(dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	g, err := clientOptions(cfg)
	if err != nil {
		return "", err
	}
	return formatOptions(append([]optionGroup{g}, e.dumpGroups()...)), nil
}

// ParseVersion is parseVersion.
func ParseVersion(s string) (string, error) { return parseVersion(s) }

// Tail writes chunks into a tail buffer of max bytes and returns its text,
// as a ToolError would show it.
func Tail(max int, chunks ...string) string {
	t := childproc.NewTail(max)
	for _, c := range chunks {
		t.Write([]byte(c))
	}
	return t.Text()
}

// Redact is redact's string form.
func Redact(s, password string) string { return redactString(s, password) }

// WithHeader is withHeader.
var WithHeader = withHeader

// PhysicalPosition is physicalPosition.
var PhysicalPosition = physicalPosition

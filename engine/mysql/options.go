package mysql

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// optionGroup is one [group] of an option file.
type optionGroup struct {
	name    string
	options [][2]string // name, value; a value of "" writes the bare name
}

// clientOptions returns the [client] group that connects a tool to the
// server cfg names as cfg's user: user, password, host and port (TCP) or
// socket, and the DSN's TLS mode. Options that only one family of tools
// knows carry the loose- prefix, which makes the other family ignore them.
func clientOptions(cfg *mysql.Config) (optionGroup, error) {
	g := optionGroup{name: "client"}
	add := func(name, value string) { g.options = append(g.options, [2]string{name, value}) }
	if cfg.User != "" {
		add("user", cfg.User)
	}
	// Always written, so that a password from a global option file is not
	// used for this account.
	add("password", cfg.Passwd)
	switch cfg.Net {
	case "unix":
		add("loose-protocol", "SOCKET")
		add("socket", cfg.Addr)
	case "tcp", "tcp4", "tcp6", "":
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return g, fmt.Errorf("DSN address %q: %w", cfg.Addr, err)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return g, fmt.Errorf("DSN address %q: bad port", cfg.Addr)
		}
		// protocol=TCP: the tools would take "localhost" for the socket.
		// (loose-: a tool that lacks the option connects by host and
		// port, or by socket when no host is given, which is the same.)
		add("loose-protocol", "TCP")
		add("host", host)
		add("port", port)
	default:
		return g, fmt.Errorf("DSN network %q cannot be passed to the command-line tools", cfg.Net)
	}
	switch cfg.TLSConfig {
	case "":
		// The tools' default.
	case "false":
		add("loose-skip-ssl", "")
		add("loose-ssl-mode", "DISABLED")
	case "true":
		add("loose-ssl", "")
		add("loose-ssl-verify-server-cert", "")
		add("loose-ssl-mode", "VERIFY_IDENTITY")
	case "skip-verify":
		add("loose-ssl", "")
		add("loose-skip-ssl-verify-server-cert", "")
		add("loose-ssl-mode", "REQUIRED")
	case "preferred":
		add("loose-ssl-mode", "PREFERRED")
	default:
		return g, fmt.Errorf("DSN option tls=%s names a Go TLS config, which cannot be passed to the command-line tools; configure TLS for them in a global option file and use tls=true", cfg.TLSConfig)
	}
	return g, nil
}

// formatOptions renders option groups in the option file syntax. Every
// value is double-quoted, with backslash, quote and control characters
// escaped, so that any password reads back unchanged (# and ; start
// comments outside quotes; quotes and backslash escapes are how the
// MySQL and MariaDB option file readers keep them).
func formatOptions(groups []optionGroup) string {
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "[%s]\n", g.name)
		for _, o := range g.options {
			if o[1] == "" && o[0] != "password" {
				b.WriteString(o[0] + "\n")
				continue
			}
			b.WriteString(o[0] + "=" + quoteOptionValue(o[1]) + "\n")
		}
	}
	return b.String()
}

var optionEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`)

func quoteOptionValue(s string) string {
	return `"` + optionEscaper.Replace(s) + `"`
}

// workspace is a private temporary directory (0700) holding an option file
// (0600) for one run of one or more tools.
type workspace struct {
	dir     string
	optFile string
}

// newWorkspace creates the directory and writes groups to its option file.
func (e *Engine) newWorkspace(groups ...optionGroup) (*workspace, error) {
	dir, err := os.MkdirTemp(e.TempDir, "rdsbackup-mysql-") // 0700
	if err != nil {
		return nil, fmt.Errorf("create private directory: %w", err)
	}
	w := &workspace{dir: dir, optFile: filepath.Join(dir, "client.cnf")}
	f, err := os.OpenFile(w.optFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = f.WriteString(formatOptions(groups))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		w.remove()
		return nil, fmt.Errorf("write option file: %w", err)
	}
	return w, nil
}

// defaultsArg is the option that points a tool at the option file. The
// tools require it to come first.
func (w *workspace) defaultsArg() string { return "--defaults-extra-file=" + w.optFile }

// remove deletes the directory and everything in it.
func (w *workspace) remove() {
	_ = os.RemoveAll(w.dir)
}

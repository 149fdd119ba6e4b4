package main

import (
	"errors"
	"flag"
	"fmt"
)

// configFromFlags parses a subcommand's flags (--config only) and returns
// the config: the file's, or the built-in defaults without one.
func (m *Main) configFromFlags(name string, args []string) (*Config, error) {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(m.Stderr)
	configPath := fset.String("config", "", "YAML config file (default: built-in defaults)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fset.NArg() > 0 {
		return nil, usageError{fmt.Errorf("%s: unexpected argument %q", name, fset.Arg(0))}
	}
	if *configPath == "" {
		return DefaultConfig(), nil
	}
	return ReadConfigFile(*configPath, m.Getenv)
}

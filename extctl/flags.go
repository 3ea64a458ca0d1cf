package main

import (
	"flag"
	"fmt"
	"os"
)

// flagSet is a command's flags plus the environment variables some of them
// fall back to. Defaults stay the compiled-in values, so help shows the
// same text whatever the environment holds; applyEnv fills flags not given
// on the command line from their variable after parsing.
type flagSet struct {
	*flag.FlagSet
	env     map[string]string // flag name → variable
	envSelf map[string]bool   // variable read by the command itself, shown only
}

func newFlagSet(name string) *flagSet {
	return &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{}, envSelf: map[string]bool{}}
}

// bindEnv makes variable the fallback of flag name: the command line wins
// over the variable, the variable over the default.
func (fs *flagSet) bindEnv(name, variable string) { fs.env[name] = variable }

// documentEnv names variable in flag name's help without applying it: the
// command reads the variable itself (to say in errors where a value came
// from).
func (fs *flagSet) documentEnv(name, variable string) {
	fs.env[name] = variable
	fs.envSelf[name] = true
}

// applyEnv sets every bound flag that was not given from its variable. A
// bad value is an error naming the variable, never silently the default.
func (fs *flagSet) applyEnv() error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, variable := range fs.env {
		if given[name] || fs.envSelf[name] {
			continue
		}
		v := os.Getenv(variable)
		if v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return fmt.Errorf("%s=%q (for --%s): %v", variable, v, name, err)
		}
	}
	return nil
}

// jsonFlag adds --json, which every command takes.
func (fs *flagSet) jsonFlag() *bool {
	return fs.Bool("json", false, `JSON output; a failure is {"error":{"code","message"}} on stderr`)
}

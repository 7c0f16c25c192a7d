package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/fedclaims/fedclaims/aggregator"
	"github.com/fedclaims/fedclaims/internal/config"
	"github.com/fedclaims/fedclaims/site"
	"github.com/fedclaims/fedclaims/study"
	"github.com/fedclaims/fedclaims/sweep"
)

// configAnnotation marks a command whose --config file is a domain Config (its
// value names it in configTypes): the command loads the file itself with
// loadConfig. Every other command's file sets its flags.
const configAnnotation = "fedclaims.config"

// configTypes are the domain configurations a --config file can be, by the
// annotation's value.
func configTypes() map[string]reflect.Type {
	return map[string]reflect.Type{
		"aggregator": reflect.TypeFor[aggregator.Config](),
		"site":       reflect.TypeFor[site.Config](),
		"sweep":      reflect.TypeFor[sweep.Config](),
		"study":      reflect.TypeFor[study.Config](),
	}
}

// withConfig marks cmd as loading a domain Config of kind from --config.
func withConfig(cmd *cobra.Command, kind string) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[configAnnotation] = kind
	return cmd
}

// configure gives cmd's flags their layers before it runs: a flag not given takes
// its FEDCLAIMS_* variable, else (for a command without a domain Config) the
// --config file's key of its name; a key or a value it cannot use stops it.
// Afterwards a.v reads the flags, so every command sees one set of values.
func (a *app) configure(cmd *cobra.Command, file string) error {
	_, ownFile := cmd.Annotations[configAnnotation]
	err := config.ApplyToFlags(file, cmd.Flags(), config.FlagOptions{
		Skip:      []string{"config", "help", "version"},
		FileKeys:  !ownFile,
		LookupEnv: a.lookupEnv,
	})
	if err != nil {
		return err
	}
	a.v = viper.New()
	return a.v.BindPFlags(cmd.Flags())
}

// loadConfig decodes cmd's --config file, the FEDCLAIMS_* variables of its keys
// and the flags flagKeys binds (key: flag name) onto dst, which holds the domain
// package's DefaultConfig; validating it is the caller's.
func (a *app) loadConfig(cmd *cobra.Command, dst any, flagKeys map[string]string) error {
	flags := map[string]*pflag.Flag{}
	for key, name := range flagKeys {
		flags[key] = cmd.Flags().Lookup(name)
	}
	return config.Load(a.configFile(cmd), dst, config.Options{Flags: flags, LookupEnv: a.lookupEnv})
}

// configFile is the --config flag's value.
func (a *app) configFile(cmd *cobra.Command) string {
	if f := cmd.Flag("config"); f != nil {
		return f.Value.String()
	}
	return ""
}

// warnUnknownEnv names every FEDCLAIMS_* variable that no command reads: a
// misspelt variable would otherwise be ignored without a word. Variables another
// command reads (a site's, seen by `fedclaims health` in the same container) are
// known.
func (a *app) warnUnknownEnv(root *cobra.Command) {
	var known []string
	add := func(f *pflag.Flag) { known = append(known, config.EnvName(f.Name)) }
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, t := range configTypes() {
		for _, k := range config.Keys(t) {
			known = append(known, config.EnvName(k))
		}
	}
	slices.Sort(known)
	for _, u := range config.UnknownEnv(a.environ(), slices.Compact(known)) {
		if u[1] != "" {
			a.log.Warn("unknown environment variable ignored: no command reads "+u[0]+"; did you mean "+u[1]+"?", "variable", u[0])
		} else {
			a.log.Warn("unknown environment variable ignored: no command reads "+u[0], "variable", u[0])
		}
	}
}

// readSweepFile loads --config as a sweep file and prepares it.
func (a *app) readSweepFile(cmd *cobra.Command) (*sweep.Config, error) {
	return readRunFile(a, cmd, sweep.DefaultConfig())
}

// readStudyFile loads --config as a study file and prepares it.
func (a *app) readStudyFile(cmd *cobra.Command) (*study.Config, error) {
	return readRunFile(a, cmd, study.DefaultConfig())
}

// readRunFile loads --config onto def (internal/config) and prepares it
// (defaults that depend on the file, checks, paths relative to the file).
func readRunFile[T any, P interface {
	*T
	Prepare(dir string) error
}](a *app, cmd *cobra.Command, def T) (*T, error) {
	c := def
	if err := a.loadConfig(cmd, &c, nil); err != nil {
		return nil, err
	}
	file := a.configFile(cmd)
	if err := P(&c).Prepare(filepath.Dir(file)); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &c, nil
}

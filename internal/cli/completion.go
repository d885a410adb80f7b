package cli

import (
	"sort"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/train"
	"mclab.dev/mclab/scenarios"
)

// registerCompletions gives shell completion for the values users type most: lab names (--name),
// scenarios (built-in names, or files), models, topologies, providers, samples, views, modes, and
// exercise names (train start, train selftest).
func registerCompletions(root *cobra.Command, g *globals) {
	fixed := func(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return values, cobra.ShellCompDirectiveNoFileComp
		}
	}
	var providers []string
	for _, p := range scenario.Providers {
		providers = append(providers, string(p))
	}
	var models []string
	for _, m := range scenario.Models {
		models = append(models, string(m))
	}
	byFlag := map[string]func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective){
		"name": func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return labNames(g), cobra.ShellCompDirectiveNoFileComp
		},
		"labs": func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return labNames(g), cobra.ShellCompDirectiveNoFileComp
		},
		"scenario": func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return scenario.BuiltinNames(scenarios.FS), cobra.ShellCompDirectiveDefault
		},
		"model":    fixed(models...),
		"topology": fixed(string(scenario.SingleNetwork), string(scenario.MultiNetwork)),
		"provider": fixed(providers...),
		"samples":  fixed("sidecar", "proxyless", "all", "none"),
		"view":     fixed("control-plane", "data-plane", "all"),
		"mode":     fixed(train.Modes...),
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if fn, ok := byFlag[f.Name]; ok {
				_ = c.RegisterFlagCompletionFunc(f.Name, fn)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// labNames are the labs under the state directory.
func labNames(g *globals) []string {
	m, err := g.manager(false)
	if err != nil {
		return nil
	}
	names, _ := m.Store.List()
	return names
}

// exerciseNames completes EXERCISE arguments from the catalogue (built-in and --exercises).
func exerciseNames(o *trainOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		all, err := o.catalogue()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for n, e := range all {
			out = append(out, n+"\t"+e.Title)
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"mclab.dev/mclab/lab/scenario"
	statepkg "mclab.dev/mclab/lab/state"
)

// TestEveryCommandsHelp renders every command's --help: each has a short description and an example,
// and no flag shows a placeholder that is not a value (pflag takes a backquoted word in the usage as
// the value's name: "--scenario mclab list --scenarios").
func TestEveryCommandsHelp(t *testing.T) {
	root := NewCommand(Streams{In: strings.NewReader(""), Out: &strings.Builder{}, Err: &strings.Builder{}})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" || strings.HasPrefix(c.CommandPath(), "mclab completion") || strings.HasPrefix(c.CommandPath(), "mclab __") {
			return
		}
		path := c.CommandPath()
		out, errOut, code := run(t, append(strings.Fields(path)[1:], "--help")...)
		if code != 0 || errOut != "" {
			t.Errorf("%s --help: exit %d %s", path, code, errOut)
		}
		if c.Short == "" {
			t.Errorf("%s has no short description", path)
		}
		if c.Runnable() && c.Example == "" {
			t.Errorf("%s has no example", path)
		}
		c.Flags().VisitAll(func(f *pflag.Flag) {
			name, _ := pflag.UnquoteUsage(f)
			if name != "" && !regexp.MustCompile(`^[a-zA-Z0-9]+$`).MatchString(name) {
				t.Errorf("%s --%s shows %q as its value's name", path, f.Name, name)
			}
		})
		if strings.Contains(out, "as later steps land") {
			t.Errorf("%s --help promises what exists already", path)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// TestCompletion: shells complete models, topologies, providers, scenario names, lab names and
// exercise names (cobra's __complete protocol, as bash/zsh/fish call it).
func TestCompletion(t *testing.T) {
	state := t.TempDir()
	s, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := (statepkg.Store{Root: state}).Save(&statepkg.Lab{Name: "student-1", Provider: scenario.ProviderLocal, Phase: statepkg.Ready, Scenario: s}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"up", "--model", ""}, []string{"multi-primary", "primary-remote", "federated"}},
		{[]string{"up", "--topology", ""}, []string{"single-network", "multi-network"}},
		{[]string{"plan", "--provider", ""}, []string{"kind", "local", "existing"}},
		{[]string{"up", "--scenario", ""}, []string{"istio-ci", "multi-network"}},
		{[]string{"status", "--state-dir", state, "--name", ""}, []string{"student-1"}},
		{[]string{"train", "start", ""}, []string{"remote-secret-missing\t", "gateway-network-label\t"}},
		{[]string{"verify", "--view", ""}, []string{"control-plane", "data-plane"}},
		{[]string{"version", "-o", ""}, []string{"json", "yaml"}},
	} {
		out, errOut, code := run(t, append([]string{"__complete"}, tc.args...)...)
		for _, w := range tc.want {
			if code != 0 || !strings.Contains(out, w) {
				t.Errorf("completing %v: want %q in\n%s%s", tc.args, w, out, errOut)
			}
		}
	}
}

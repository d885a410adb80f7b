package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

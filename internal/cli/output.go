package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// OutputAPIVersion is the version of every document mclab prints with -o json|yaml (each carries
// apiVersion and kind, as Kubernetes objects do; fields are only ever added within a version).
const OutputAPIVersion = "mclab.dev/v1alpha1"

// Output formats.
var outputFormats = []string{"text", "json", "yaml"}

// addOutputFlag adds -o/--output (text, json or yaml) to cmd.
func addOutputFlag(cmd *cobra.Command, to *string) {
	cmd.Flags().StringVarP(to, "output", "o", "text", "output format: text, json or yaml (documents carry apiVersion "+OutputAPIVersion+" and a kind)")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return outputFormats, cobra.ShellCompDirectiveNoFileComp
	})
}

// checkOutput refuses an unknown -o before the command does anything.
func checkOutput(format string) error {
	if !slices.Contains(outputFormats, format) {
		return &exitError{code: 2, err: fmt.Errorf("-o %q is not supported; use text, json or yaml", format)}
	}
	return nil
}

// printDoc prints doc as JSON or YAML, or calls text for the text format.
func printDoc(w io.Writer, format string, doc any, text func() error) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	case "yaml":
		data, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return text()
}

// TypeMeta heads every printed document.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func typeMeta(kind string) TypeMeta { return TypeMeta{APIVersion: OutputAPIVersion, Kind: kind} }

package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/suites"
	"mclab.dev/mclab/suites/diagnose"
)

type explainOptions struct {
	name, from, to, output string
	sources                []string
	mtls                   bool
}

func newExplainCommand(g *globals) *cobra.Command {
	o := &explainOptions{}
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Explain, link by link from istiod's own state, whether a client gets a service's endpoints of each cluster",
		Long: `Walk the chain from the Kubernetes objects to a client's view of a service, for the endpoints of each
cluster of the client's mesh (or of --source): remote access (remote secret, server, RBAC, sync), registry
(the Service, istiod's shard of ready endpoints, ports across clusters), mesh config (cluster-local,
export defaults), visibility (exportTo, the client's Sidecar), networks (network labels, the gateway
istiod knows, its Service and its AUTO_PASSTHROUGH Gateway) and, with --mtls or across networks, traffic
policy (DestinationRule TLS, PeerAuthentication) and identity (trust domain, root). Each link is read from
istiod's debug endpoints and the clusters' API servers; the walk stops at the first broken link and names
its object and field, with the value it saw.

Exits 0 when no link is broken, 1 when one is, 2 on bad input (an unknown cluster, pod or host: the names
it knows are listed) or when an istiod does not answer.`,
		Example: `  mclab explain --name multi-network --from c1/sample --to helloworld.sample:5000
  mclab explain --name multi-network --from c2 --to helloworld.sample --source c1 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.name == "" || o.from == "" || o.to == "" {
				return usageError(cmd, errors.New("give --name LAB, --from CLUSTER[/NAMESPACE[/POD]] and --to HOST[:PORT]"))
			}
			if err := checkOutput(o.output); err != nil {
				return err
			}
			var closers []func()
			defer func() {
				for _, c := range closers {
					c()
				}
			}()
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			t, _, err := suites.OpenLab(cmd.Context(), m, o.name, g.streams.Err, &closers)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			ex, err := diagnose.ExplainRequest(cmd.Context(), t.DiagnosisEnv(), diagnose.Request{From: o.from, To: o.to, Sources: o.sources, MTLS: o.mtls})
			var bad *diagnose.BadInputError
			switch {
			case errors.As(err, &bad):
				return usageError(cmd, err)
			case err != nil:
				return &exitError{code: 2, err: err}
			}
			doc := struct {
				TypeMeta
				*diagnose.Explanation
			}{typeMeta("Explanation"), ex}
			if err := printDoc(g.streams.Out, o.output, doc, func() error { printExplanation(g.streams.Out, ex); return nil }); err != nil {
				return err
			}
			for _, c := range ex.Chains {
				if b := c.Broken(); b != nil {
					return &exitError{code: 1, err: fmt.Errorf("%s: %s", c.Expectation, c.Cause())}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.name, "name", "", "the lab")
	cmd.Flags().StringVar(&o.from, "from", "", "the client: CLUSTER, CLUSTER/NAMESPACE or CLUSTER/NAMESPACE/POD (namespace default: the service's)")
	cmd.Flags().StringVar(&o.to, "to", "", "the service: HOST[:PORT], an FQDN or NAME.NAMESPACE")
	cmd.Flags().StringSliceVar(&o.sources, "source", nil, "the clusters whose endpoints the client should get (default: every cluster of its mesh)")
	cmd.Flags().BoolVar(&o.mtls, "mtls", false, "also require Istio mTLS on the path (traffic policy and identity links)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text, json or yaml")
	return cmd
}

func printExplanation(w io.Writer, ex *diagnose.Explanation) {
	for i, c := range ex.Chains {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (istiod of %s serves the client)\n", c.Expectation, c.Serving)
		for _, l := range c.Links {
			mark := "✓"
			if !l.OK {
				mark = "✗"
			}
			what := l.Object
			if l.Field != "" {
				what += " " + l.Field
			}
			if l.Saw != "" {
				what += ": " + l.Saw
			}
			fmt.Fprintf(w, "  %s %-14s %s\n      %s\n", mark, l.Class, l.Check, what)
			if !l.OK {
				fmt.Fprintf(w, "      evidence: %s\n", l.Evidence)
				if l.Fix != "" {
					fmt.Fprintf(w, "      fix: %s\n", l.Fix)
				}
			}
		}
		if c.Broken() == nil {
			fmt.Fprintf(w, "  no link is broken as far as istiod's state shows (read: %s)\n", strings.Join(c.Evidence, "; "))
		}
	}
}

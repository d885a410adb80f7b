package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab"
)

type statusOptions struct {
	name   string
	output string
}

func newStatusCommand(g *globals) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Describe a lab: its clusters, their processes or containers, nodes and network facts",
		Long: `Describe a lab. Exits 0 when the lab is up and every cluster is Ready, 1 otherwise, so scripts
can wait on it.`,
		Example: `  mclab status --name multi-network
  mclab status --name multi-network -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.name == "" {
				return usageError(cmd, errors.New("give --name LAB (`mclab list` shows the labs)"))
			}
			if err := checkOutput(o.output); err != nil {
				return err
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			st, err := m.Status(cmd.Context(), o.name)
			if err != nil {
				return err
			}
			doc := struct {
				TypeMeta
				*lab.Status
			}{typeMeta("LabStatus"), st}
			if err := printDoc(g.streams.Out, o.output, doc, func() error { printStatus(g.streams.Out, st); return nil }); err != nil {
				return err
			}
			if !st.Ready() {
				return &exitError{code: 1, err: fmt.Errorf("lab %q is not ready", o.name)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.name, "name", "", "the lab")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func printStatus(w io.Writer, st *lab.Status) {
	fmt.Fprintf(w, "Lab %s: %s, provider %s, model %s\n", st.Name, st.Phase, st.Provider, st.Model)
	if r := st.IstioRelease; r != nil {
		fmt.Fprintf(w, "Istio %s: charts %s", r.Version, r.Charts)
		for _, n := range slices.Sorted(maps.Keys(r.ChartDigests)) {
			fmt.Fprintf(w, "; %s %s", n, r.ChartDigests[n])
		}
		if r.Pilot != "" {
			fmt.Fprintf(w, "; pilot-discovery %s", r.Pilot)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Kubeconfig: %s\n", st.Kubeconfig)
	if !st.Capabilities.RunsContainers {
		fmt.Fprintf(w, "Note: %s\n", st.Capabilities.NoContainersReason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCLUSTER\tREADY\tNETWORK\tPODS\tSERVICES\tSERVER\tNODES\tPROBLEMS")
	for _, c := range st.Clusters {
		ready := 0
		for _, n := range c.Nodes {
			if n.Ready {
				ready++
			}
		}
		problems := c.Message
		if problems == "" {
			problems = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", c.Name, yesNo(c.Ready), c.Network, c.PodSubnet, c.ServiceSubnet, c.Server, ready, len(c.Nodes), problems)
	}
	tw.Flush()
	if len(st.Istio) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nISTIO\tROLE\tMESH\tNETWORK\tISTIOD\tVERSION\tREMOTE CLUSTERS\tEAST-WEST GATEWAY\tROOT SHA-256")
		for _, c := range st.Istio {
			istiod := "ready"
			if !c.IstiodReady {
				istiod = "NOT READY"
			}
			if c.ServedBy != c.Cluster {
				istiod += " (" + c.ServedBy + ")"
			}
			var remotes []string
			for _, r := range c.RemoteClusters {
				remotes = append(remotes, r.ID+"="+r.SyncStatus)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Cluster, c.Role, c.Mesh, orDash(c.NetworkLabel), istiod, orDash(c.IstioVersion),
				orDash(strings.Join(remotes, ",")), orDash(c.EastWestGateway), orDash(shortFP(c.RootFingerprint)))
		}
		tw.Flush()
		for _, c := range st.Istio {
			for _, p := range c.Problems {
				fmt.Fprintf(w, "PROBLEM %s: %s\n", c.Cluster, p)
			}
		}
	}
	for _, c := range st.Clusters {
		var parts []string
		for _, comp := range c.Components {
			s := comp.Name + " " + map[bool]string{true: "running", false: "stopped"}[comp.Running]
			switch {
			case comp.PID > 0 && comp.Running:
				s += fmt.Sprintf(" (pid %d, %s)", comp.PID, comp.Address)
			case comp.Address != "" && comp.Running:
				s += " (" + comp.Address + ")" // a node container's IP on the kind network
			}
			parts = append(parts, s)
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s: %s\n", c.Name, strings.Join(parts, ", "))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortFP(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "..."
	}
	return fp
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Package cli is the mclab command line: one cobra command per file, each with a private options
// struct and a RunE. main only calls Run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/state"
	"mclab.dev/mclab/lab/train"
)

// Streams are the command's input and outputs.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// globals are the flags every command takes.
type globals struct {
	stateDir   string
	kubeconfig string
	// verbosity is -v N (klog's levels): 1 prints every spec of verify, ...
	verbosity int
	streams   Streams
}

func (g *globals) manager(retain bool) (*lab.Manager, error) {
	root := g.stateDir
	if root == "" {
		var err error
		if root, err = state.DefaultRoot(); err != nil {
			return nil, err
		}
	}
	cache, err := binaries.DefaultCacheDir()
	if err != nil {
		return nil, err
	}
	return &lab.Manager{Store: state.Store{Root: root}, CacheDir: cache, Out: g.streams.Err, Runner: exec.OS{}, Retain: retain,
		UserKubeconfig: &lab.UserKubeconfig{Explicit: g.kubeconfig}}, nil
}

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Run runs mclab with args (without the program name) and returns the process exit code.
func Run(ctx context.Context, streams Streams, args []string) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(streams.Err, "ERROR: %v\n", err)
	return exitCode(err)
}

// Exit codes, one contract for every command (README "Exit codes"): 0 done; 1 a finding (a mesh that
// is not conformant, a lab that is not ready, an exercise not solved, a bench regression); 2 bad input,
// usage or infrastructure. A finding is always marked as one (exitError code 1, train.FindingError);
// every other error is 2, so that a CI script never reads a typo or a dead machine as a broken mesh.
const (
	ExitDone    = 0
	ExitFinding = 1
	ExitError   = 2
)

func exitCode(err error) int {
	if err == nil {
		return ExitDone
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var finding *train.FindingError
	if errors.As(err, &finding) {
		return ExitFinding
	}
	return ExitError
}

// usageError marks a mistake on the command line: exit 2 with the command's usage line.
func usageError(cmd *cobra.Command, err error) error {
	return &exitError{code: 2, err: fmt.Errorf("%w\nUsage: %s (see %s --help)", err, cmd.UseLine(), cmd.CommandPath())}
}

// NewCommand builds the root command.
func NewCommand(streams Streams) *cobra.Command {
	g := &globals{streams: streams}
	root := &cobra.Command{
		Use:   "mclab",
		Short: "Labs and conformance gates for Istio multi-cluster meshes",
		Long: `mclab builds multi-cluster labs (kind, local processes, or existing clusters), installs Istio
across them, verifies discovery, mTLS and cross-network routing, and reports for CI gates.

Start with:  mclab up --topology multi-network   (or: make lab TOPOLOGY=multi-network)`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(usageError)
	root.SetOut(streams.Out)
	root.SetErr(streams.Err)
	root.SetIn(streams.In)
	root.PersistentFlags().IntVarP(&g.verbosity, "v", "v", 0, "log level, as kubectl's -v=N: 1 prints every spec verify runs (-v alone means 1)")
	root.PersistentFlags().Lookup("v").NoOptDefVal = "1"
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "the kubeconfig file that up merges the lab's contexts into and down removes them from, as kind does (default: the first file of $KUBECONFIG that exists, else ~/.kube/config)")
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", "", "where labs keep their state (default $"+state.EnvStateDir+", else $XDG_STATE_HOME/mclab, else ~/.local/state/mclab)")
	root.AddCommand(
		newUpCommand(g),
		newDownCommand(g),
		newStatusCommand(g),
		newPlanCommand(g),
		newKubeconfigCommand(g),
		newExportCommand(g),
		newListCommand(g),
		newVersionCommand(g),
		newToolsCommand(g),
		newImagesCommand(g),
		newVerifyCommand(g),
		newTrainCommand(g),
		newBenchCommand(g),
		newExplainCommand(g),
	)
	registerCompletions(root, g)
	return root
}

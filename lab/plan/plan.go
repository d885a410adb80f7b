// Package plan is the list of steps that bring a lab up. The same steps are printed by `mclab plan`
// (their titles and details, no side effects) and executed by `mclab up` (each with a check or a cross
// and its elapsed time), so what the plan shows is what up does.
package plan

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Step is one unit of bring-up. Run must converge: when its work is already done it does nothing.
type Step struct {
	// Title says what the step does, e.g. "Starting control plane of c1".
	Title string
	// Details are what `mclab plan` prints under the title: commands, flags, configs, waits.
	Details []string
	// Run does the step.
	Run func(ctx context.Context) error
}

// Plan is an ordered list of steps for a lab.
type Plan struct {
	// Lab is the lab's name.
	Lab string
	// Provider is the provider the plan was made for.
	Provider string
	// Notes are printed before the steps (e.g. why a provider was chosen).
	Notes []string
	// Steps run in order.
	Steps []Step
	// Done, when set, runs after Execute, whatever its outcome (closing port-forwards the steps opened).
	Done func()
	// Observe, when set, is told each step's title, duration and outcome (the bench's breakdown).
	Observe func(title string, took time.Duration, ok bool)
}

// Print writes the plan without running anything.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintf(w, "Plan for lab %q (provider %s): %d steps\n", p.Lab, p.Provider, len(p.Steps))
	for _, n := range p.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	for i, s := range p.Steps {
		fmt.Fprintf(w, "%2d. %s\n", i+1, s.Title)
		for _, d := range s.Details {
			for _, line := range strings.Split(strings.TrimRight(d, "\n"), "\n") {
				fmt.Fprintf(w, "      %s\n", line)
			}
		}
	}
}

// Execute runs the steps in order, reporting each to st, and stops at the first error, which it returns
// wrapped with the step's title.
func (p *Plan) Execute(ctx context.Context, st *Status) error {
	if p.Done != nil {
		defer p.Done()
	}
	for _, s := range p.Steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted before %q: %w", s.Title, context.Cause(ctx))
		}
		st.Start(s.Title)
		start := time.Now()
		err := s.Run(ctx)
		st.End(err == nil)
		if p.Observe != nil {
			p.Observe(s.Title, time.Since(start), err == nil)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.Title, err)
		}
	}
	return nil
}

// Package lab is mclab's public entry for labs: plan one, bring it up, describe it, take it down. A lab
// is a scenario made real by a provider; its state lives in a state directory so every command works
// from a new shell. The flow is one-way: scenario -> plan -> provider steps -> state.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/images"
	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/provider/existing"
	"mclab.dev/mclab/lab/provider/kind"
	"mclab.dev/mclab/lab/provider/local"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// Manager plans, creates, describes and deletes labs under one state root.
type Manager struct {
	// Store is the state root.
	Store state.Store
	// CacheDir is the shared cache of upstream binaries.
	CacheDir string
	// OnStep, when set, is told every step `up` runs, with its duration and outcome.
	OnStep func(title string, took time.Duration, ok bool)
	// Out receives progress.
	Out io.Writer
	// Runner runs external programs (container-runtime detection).
	Runner exec.Runner
	// Retain keeps what a failed `up` made, for debugging, instead of removing it.
	Retain bool
	// SkipIstio makes clusters only, without installing Istio.
	SkipIstio bool
	// KindRuntime, when set, replaces Docker for the kind provider (tests run the kind path on a fake).
	KindRuntime kind.Runtime
	// Tunnel, when set, replaces port-forward and exec through the API servers for the kind and
	// existing providers (tests, where pods run no containers).
	Tunnel provider.PodTunnel
	// UserKubeconfig, when set, is where `up` merges the lab's contexts and `down` removes them, as
	// kind does with its clusters (the CLI sets it; nil leaves the user's kubeconfig alone).
	UserKubeconfig *UserKubeconfig
}

// UserKubeconfig is the user's kubeconfig as kubectl finds it: Explicit (--kubeconfig), else the first
// existing file of $KUBECONFIG, else ~/.kube/config.
type UserKubeconfig struct {
	Explicit string
}

// ErrMeshExists is returned when `up` would install Istio over a mesh that mclab did not install.
var ErrMeshExists = errors.New("a mesh is already installed")

// Plan resolves the provider and returns the lab's plan and its provider, without side effects.
func (m *Manager) Plan(ctx context.Context, s *scenario.Scenario, labName string) (*plan.Plan, provider.Provider, error) {
	pl, p, _, err := m.plan(ctx, s, labName)
	return pl, p, err
}

// plan is Plan, with the Istio installer its steps use (nil with SkipIstio).
func (m *Manager) plan(ctx context.Context, s *scenario.Scenario, labName string) (*plan.Plan, provider.Provider, *istio.Installer, error) {
	name, note, err := m.resolveProvider(ctx, s)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := m.provider(name, labName, s)
	if err != nil {
		return nil, nil, nil, err
	}
	steps, err := p.Plan(s)
	if err != nil {
		return nil, nil, nil, err
	}
	steps = append(steps, plan.Step{
		Title:   "Writing the lab's kubeconfig",
		Details: []string{fmt.Sprintf("%s: one context per cluster, named %s-<cluster>; mode 0600", m.Store.Kubeconfig(labName), labName)},
		Run:     func(ctx context.Context) error { return m.writeKubeconfig(ctx, p, labName, s) },
	})
	// The existing provider's contexts are the user's own already.
	if m.UserKubeconfig != nil && name != scenario.ProviderExisting {
		path := kube.UserKubeconfigForMerge(m.UserKubeconfig.Explicit, os.Getenv)
		steps = append(steps, plan.Step{
			Title:   "Merging the lab's contexts into your kubeconfig",
			Details: []string{fmt.Sprintf("%s: contexts %s-<cluster>, current context %s-%s (as kind does; `mclab down` removes them)", path, labName, labName, s.Clusters[0].Name)},
			Run: func(ctx context.Context) error {
				cfg, err := clientcmd.LoadFromFile(m.Store.Kubeconfig(labName))
				if err != nil {
					return err
				}
				_, err = kube.MergeIntoUserKubeconfig(cfg, m.UserKubeconfig.Explicit)
				return err
			},
		})
	}
	pl := &plan.Plan{Lab: labName, Provider: string(name)}
	var in *istio.Installer
	if !m.SkipIstio {
		in = &istio.Installer{Lab: labName, S: s, Dir: m.Store.Dir(labName), Provider: p, Out: m.Out, CacheDir: m.CacheDir}
		// A release is fetched and verified before anything is created.
		steps = append(in.FetchSteps(), steps...)
		steps = append(steps, in.Steps()...)
		pl.Done = in.Close
		if prev, err := m.Store.Load(labName); err == nil && prev.Istio && prev.Scenario.Istio.Version != s.Istio.Version {
			pl.Notes = append(pl.Notes, istio.UpgradeNote(prev.Scenario, s))
		}
	}
	pl.Steps = steps
	if note != "" {
		pl.Notes = append(pl.Notes, note)
	}
	return pl, p, in, nil
}

func (m *Manager) resolveProvider(ctx context.Context, s *scenario.Scenario) (scenario.ProviderName, string, error) {
	requested := s.Provider.Name
	switch requested {
	case scenario.ProviderAuto, "":
		var need []provider.Image
		for _, img := range kind.RequiredImages(s) {
			need = append(need, provider.Image{Ref: img, Pulled: kind.PulledByNodes(s, img)})
		}
		d := provider.Detect(ctx, m.Runner, need...)
		if d.Provider == scenario.ProviderKind && !strings.HasPrefix(d.Reason, "docker") {
			return scenario.ProviderLocal, fmt.Sprintf("provider auto: chose local: %s, but mclab's kind provider drives Docker (podman: run `mclab up --provider kind` with DOCKER_HOST at podman's socket)", d.Reason), nil
		}
		return d.Provider, "provider auto: chose " + string(d.Provider) + " because " + d.Reason, nil

	}
	return requested, "", nil
}

func (m *Manager) provider(name scenario.ProviderName, labName string, s *scenario.Scenario) (provider.Provider, error) {
	switch name {
	case scenario.ProviderLocal:
		return local.New(local.Config{
			Lab:      labName,
			Store:    m.Store,
			Scenario: s,
			Binaries: &binaries.Builder{CacheDir: m.CacheDir, Out: m.Out},
			Out:      m.Out,
		}), nil
	case scenario.ProviderKind:
		return kind.New(kind.Config{Lab: labName, Store: m.Store, Scenario: s, Runner: m.Runner, Runtime: m.KindRuntime, Tunnel: m.Tunnel, Out: m.Out,
			Images: &images.Builder{CacheDir: m.CacheDir, Runner: m.Runner, Binaries: &binaries.Builder{CacheDir: m.CacheDir, Out: m.Out}, Out: m.Out}}), nil
	case scenario.ProviderExisting:
		p := existing.New(labName, s)
		if m.Tunnel != nil {
			p.WithTunnel(m.Tunnel)
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown provider %q; use one of %v", name, scenario.Providers)
}

// Up brings the lab up, or converges a lab that exists. A failed or interrupted `up` of a new lab
// removes everything it made (unless Retain); one of an existing lab leaves it for `up` to resume.
func (m *Manager) Up(ctx context.Context, s *scenario.Scenario, labName string) (err error) {
	unlock, err := m.Store.Lock(labName)
	if err != nil {
		return err
	}
	defer unlock()
	prev, loadErr := m.Store.Load(labName)
	fresh := loadErr != nil
	if !fresh && !reflect.DeepEqual(prev.Scenario.Clusters, s.Clusters) {
		return fmt.Errorf("lab %q exists with other clusters; `mclab down --name %s` first, or choose another --name", labName, labName)
	}
	pl, p, installer, err := m.plan(ctx, s, labName)
	if err != nil {
		return err
	}
	caps := p.Capabilities()
	if !caps.CreatesClusters && !m.SkipIstio && fresh {
		in := &istio.Installer{S: s, Dir: m.Store.Dir(labName), Provider: p}
		if owner, installed := in.MeshOwner(ctx); installed && owner != labName {
			by := "not by mclab"
			if owner != "" {
				by = "by mclab lab " + owner
			}
			return fmt.Errorf("%w: %s already has istio-system with a plugged-in CA (cacerts), installed %s; mclab does not install over a mesh this lab did not install. Verify it instead: `mclab up --skip-install` then `mclab verify`", ErrMeshExists, s.Clusters[0].Name, by)
		}
	}
	if !fresh && prev.Provider != p.Name() {
		return fmt.Errorf("lab %q runs on provider %s, not %s; `mclab down --name %s` first, or choose another --name", labName, prev.Provider, p.Name(), labName)
	}
	for _, n := range pl.Notes {
		fmt.Fprintln(m.Out, n)
	}
	rec := &state.Lab{Name: labName, Provider: p.Name(), Phase: state.Creating, Created: time.Now().UTC().Truncate(time.Second), Scenario: s, Istio: !m.SkipIstio}
	if !fresh {
		rec.Created = prev.Created
	}
	if err := m.Store.Save(rec); err != nil {
		return err
	}
	verb := "Creating"
	if !fresh {
		verb = "Converging"
	}
	fmt.Fprintf(m.Out, "%s lab %q: %d clusters on provider %s\n", verb, labName, len(s.Clusters), p.Name())
	start := time.Now()
	pl.Observe = m.OnStep
	runErr := pl.Execute(ctx, plan.NewStatus(m.Out))
	if runErr == nil {
		rec.Phase = state.Ready
		if installer != nil {
			if rel, err := installer.Release(ctx); err == nil {
				rec.IstioRelease = &rel.IstioRelease
			}
		}
		if err := m.Store.Save(rec); err != nil {
			return err
		}
		took := time.Since(start).Round(10 * time.Millisecond)
		if m.UserKubeconfig != nil && p.Name() != scenario.ProviderExisting {
			fmt.Fprintf(m.Out, "Lab %q is ready (%s). Set kubectl context to %q. Try:\n  kubectl --context %s-%s get nodes\n",
				labName, took, labName+"-"+s.Clusters[0].Name, labName, s.Clusters[len(s.Clusters)-1].Name)
			return nil
		}
		fmt.Fprintf(m.Out, "Lab %q is ready (%s). Try:\n  kubectl --kubeconfig %s --context %s-%s get nodes\n",
			labName, took, m.Store.Kubeconfig(labName), labName, s.Clusters[0].Name)
		return nil
	}
	if ctx.Err() != nil {
		runErr = fmt.Errorf("interrupted: %w", runErr)
	}
	// Clean up with a context of our own: the caller's may be the cancelled one.
	cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if lc, ok := p.(provider.LogCollector); ok && ctx.Err() == nil {
		dir := filepath.Join(m.Store.Root, "failed", labName+"-"+time.Now().UTC().Format("20060102T150405Z"))
		if err := lc.CollectLogs(cleanCtx, dir); err == nil {
			runErr = fmt.Errorf("%w\nlogs of the failed up: %s", runErr, dir)
		}
	}
	switch {
	case m.Retain:
		rec.Phase = state.Failed
		_ = m.Store.Save(rec)
		return fmt.Errorf("%w\nthe lab is kept (--retain): inspect %s, then `mclab down --name %s`", runErr, m.Store.Dir(labName), labName)
	case fresh:
		fmt.Fprintf(m.Out, "Removing what this `up` made ...\n")
		if derr := m.delete(cleanCtx, labName, p); derr != nil {
			return errors.Join(runErr, fmt.Errorf("cleaning up: %w; run `mclab down --name %s`", derr, labName))
		}
		return fmt.Errorf("%w\nnothing was left behind; fix the cause and run `mclab up` again (--retain keeps a failed lab for debugging)", runErr)
	default:
		rec.Phase = state.Failed
		_ = m.Store.Save(rec)
		return fmt.Errorf("%w\nthe existing lab is left as it was: `mclab up` again resumes, `mclab down --name %s` removes it", runErr, labName)
	}
}

// writeKubeconfig merges every cluster's host kubeconfig into the lab's, with contexts <lab>-<cluster>.
func (m *Manager) writeKubeconfig(ctx context.Context, p provider.Provider, labName string, s *scenario.Scenario) error {
	merged := clientcmdapi.NewConfig()
	for _, c := range s.Clusters {
		kc, err := p.Kubeconfig(ctx, c.Name, provider.FromHost)
		if err != nil {
			return fmt.Errorf("kubeconfig of %s: %w", c.Name, err)
		}
		cur := kc.Contexts[kc.CurrentContext]
		if cur == nil {
			return fmt.Errorf("kubeconfig of %s has no current context", c.Name)
		}
		name := labName + "-" + c.Name
		merged.Clusters[name] = kc.Clusters[cur.Cluster]
		merged.AuthInfos[name] = kc.AuthInfos[cur.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
		if merged.CurrentContext == "" {
			merged.CurrentContext = name
		}
	}
	data, err := clientcmd.Write(*merged)
	if err != nil {
		return err
	}
	return state.WriteFile(m.Store.Kubeconfig(labName), data)
}

// Down removes a lab: every process or cluster its provider made, then its state. It works whatever
// state the lab is in; a lab that does not exist is not an error (nothing to do).
func (m *Manager) Down(ctx context.Context, labName string) (existed bool, err error) {
	if _, err := os.Stat(m.Store.Dir(labName)); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	unlock, err := m.Store.Lock(labName)
	if err != nil {
		return true, err
	}
	defer unlock()
	rec, loadErr := m.Store.Load(labName)
	if loadErr != nil {
		return true, m.downFromRecords(ctx, labName, loadErr)
	}
	p, err := m.provider(rec.Provider, labName, rec.Scenario)
	if err != nil {
		return true, err
	}
	return true, m.delete(ctx, labName, p)
}

// ErrUnproven marks a `down` that found clusters it cannot prove to be the lab's: it deletes nothing
// of theirs and keeps the lab's state (exit 2).
var ErrUnproven = errors.New("clusters that no record proves to be the lab's")

// recordedByOtherLab returns whether a kind cluster is listed in the record of a lab other than labName
// (lab "a-3"'s "a-3-c1" is not lab "a"'s to worry about).
func (m *Manager) recordedByOtherLab(labName string) func(string) bool {
	others := map[string]bool{}
	names, _ := m.Store.List()
	for _, n := range names {
		if n == labName {
			continue
		}
		data, err := os.ReadFile(filepath.Join(m.Store.Dir(n), "kind", "kind-clusters.json"))
		if err != nil {
			continue
		}
		var owned []struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(data, &owned) == nil {
			for _, o := range owned {
				others[o.Kind] = true
			}
		}
	}
	return func(kind string) bool { return others[kind] }
}

// downFromRecords removes a lab whose lab.json is missing or unreadable from what each provider's own
// records hold: the kind clusters kind-clusters.json lists, the local processes their pid files name.
// Kind clusters named for the lab that no record proves are neither deleted (they may be another
// lab's) nor left silently: down refuses with ErrUnproven, naming them, and keeps the state.
func (m *Manager) downFromRecords(ctx context.Context, labName string, loadErr error) error {
	dir := m.Store.Dir(labName)
	fmt.Fprintf(m.Out, "lab.json of %s cannot be read (%v): removing what the providers' own records hold\n", labName, loadErr)
	kp, err := m.provider(scenario.ProviderKind, labName, nil)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "kind")); err == nil {
		if err := kp.Delete(ctx); err != nil {
			return fmt.Errorf("kind clusters of %s (from its record): %w", labName, err)
		}
	}
	lp, err := m.provider(scenario.ProviderLocal, labName, nil)
	if err != nil {
		return err
	}
	if err := lp.Delete(ctx); err != nil { // from the pid files alone
		return fmt.Errorf("local processes of %s (from their pid files): %w", labName, err)
	}
	if u, ok := kp.(interface{ Unproven() ([]string, error) }); ok {
		// Without Docker there are no kind clusters to orphan.
		names, err := u.Unproven()
		if err == nil {
			names = slices.DeleteFunc(names, m.recordedByOtherLab(labName))
		}
		if err == nil && len(names) > 0 {
			return fmt.Errorf("%w: kind clusters %s are named for lab %s, but no record of it lists them (lab.json: %v); kept them and %s. If they are this lab's: kind delete cluster --name NAME for each, then mclab down --name %s again",
				ErrUnproven, strings.Join(names, ", "), labName, loadErr, dir, labName)
		}
	}
	if err := m.forgetContexts(labName); err != nil {
		return err
	}
	return m.Store.Remove(labName)
}

func (m *Manager) delete(ctx context.Context, labName string, p provider.Provider) error {
	if err := p.Delete(ctx); err != nil {
		return err
	}
	if err := m.forgetContexts(labName); err != nil {
		return err
	}
	return m.Store.Remove(labName)
}

// forgetContexts removes the lab's contexts (those of its own kubeconfig) from the user's kubeconfig.
func (m *Manager) forgetContexts(labName string) error {
	if m.UserKubeconfig == nil {
		return nil
	}
	cfg, err := clientcmd.LoadFromFile(m.Store.Kubeconfig(labName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var names []string
	for n := range cfg.Contexts {
		names = append(names, n)
	}
	_, err = kube.RemoveFromUserKubeconfig(names, m.UserKubeconfig.Explicit)
	return err
}

// Status describes a lab.
type Status struct {
	Name         string                 `json:"name"`
	Provider     scenario.ProviderName  `json:"provider"`
	Phase        state.Phase            `json:"phase"`
	Model        scenario.Model         `json:"model"`
	Kubeconfig   string                 `json:"kubeconfig"`
	Capabilities provider.Capabilities  `json:"capabilities"`
	Clusters     []provider.ClusterInfo `json:"clusters"`
	// Istio is Istio's state per cluster, when the lab has Istio.
	Istio []istio.ClusterStatus `json:"istio,omitempty"`
	// IstioRelease is the Istio the last successful up installed and where it came from.
	IstioRelease *state.IstioRelease `json:"istioRelease,omitempty"`
}

// Ready reports whether the lab finished `up` and every cluster is Ready.
func (s *Status) Ready() bool {
	if s.Phase != state.Ready {
		return false
	}
	for _, c := range s.Clusters {
		if !c.Ready {
			return false
		}
	}
	for _, c := range s.Istio {
		if !c.Healthy() {
			return false
		}
	}
	return true
}

// Status describes a lab from its state and its live clusters.
func (m *Manager) Status(ctx context.Context, labName string) (*Status, error) {
	rec, err := m.Store.Load(labName)
	if err != nil {
		return nil, err
	}
	p, err := m.provider(rec.Provider, labName, rec.Scenario)
	if err != nil {
		return nil, err
	}
	clusters, err := p.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{
		Name: labName, Provider: rec.Provider, Phase: rec.Phase, Model: rec.Scenario.Istio.Model,
		Kubeconfig: m.Store.Kubeconfig(labName), Capabilities: p.Capabilities(), Clusters: clusters,
		IstioRelease: rec.IstioRelease,
	}
	allUp := true
	for _, c := range clusters {
		allUp = allUp && c.Ready
	}
	if allUp {
		in := &istio.Installer{S: rec.Scenario, Dir: m.Store.Dir(labName), Provider: p, Out: m.Out}
		if rec.Istio || in.MeshInstalled(ctx) {
			st.Istio = in.Status(ctx)
		}
		in.Close()
	}
	return st, nil
}

// Open returns a lab's record and its provider, for tools that read the lab (verify).
func (m *Manager) Open(labName string) (*state.Lab, provider.Provider, error) {
	rec, err := m.Store.Load(labName)
	if err != nil {
		return nil, nil, err
	}
	p, err := m.provider(rec.Provider, labName, rec.Scenario)
	if err != nil {
		return nil, nil, err
	}
	return rec, p, nil
}

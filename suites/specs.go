package suites

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL

	"mclab.dev/mclab/lab/scenario"
)

// Labels. Every spec has one profile, one level and one view (README table).
const (
	LabelRequired     = "Required"
	LabelOptional     = "Optional"
	LabelControlPlane = "control-plane"
	LabelDataPlane    = "data-plane"
	// VerdictEntry is the report entry that tells a non-conformant mesh from an inconclusive run.
	VerdictEntry = "verdict"
)

// Profiles are the conformance profiles, in report order.
var Profiles = []string{"MC-DISCOVERY", "MC-MTLS", "MC-CROSS-NETWORK", "MC-PRIMARY-REMOTE", "MC-FEDERATION"}

// current is the target of the running suite (RunSpecs runs once per process).
var current *Target

// Settle is how long a failing check is retried (every second) before its verdict stands: istiod
// pushes in well under a second, so a mesh that just converged is not judged mid-push.
var Settle = 5 * time.Second

// check runs a check and turns its verdict into the spec's outcome: a diagnosis fails the spec as
// non-conformant, a harness or infrastructure error fails it as inconclusive.
func check(ctx context.Context, f func(context.Context, *Target) Verdict) {
	deadline := time.Now().Add(Settle)
	v := f(ctx, current)
	for !v.Passed() && v.Inconclusive == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
		v = f(ctx, current)
	}
	for _, e := range v.Evidence {
		AddReportEntry("evidence", e, ReportEntryVisibilityNever)
	}
	if v.Inconclusive != nil {
		AddReportEntry(VerdictEntry, "inconclusive")
		Fail("inconclusive: " + v.Inconclusive.Error())
	}
	if len(v.Failures) > 0 {
		AddReportEntry(VerdictEntry, "non-conformant")
		Fail(strings.Join(v.Failures, "\n"))
	}
}

// dataPlane runs a data-plane check, or skips it where pods run no containers, saying why.
func dataPlane(ctx context.Context, what string, f func(context.Context, *Target) Verdict) {
	if !current.Capabilities.RunsContainers {
		Skip(fmt.Sprintf("data-plane check (%s): %s", what, current.Capabilities.NoContainersReason))
	}
	if current.Exec == nil {
		Skip(fmt.Sprintf("data-plane check (%s): no way to run commands in this provider's pods", what))
	}
	if f == nil {
		Skip(fmt.Sprintf("data-plane check (%s): not built yet", what))
	}
	check(ctx, f)
}

func multiNetwork() bool {
	for _, m := range current.Scenario.Meshes {
		if current.topo().MultiNetworkMesh(m.ID) {
			return true
		}
	}
	return false
}

var _ = Describe("MC-DISCOVERY", Label("MC-DISCOVERY"), func() {
	It("every primary's istiod has each cluster of its mesh synced", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRemoteClustersSynced)
	})
	It("a client in every cluster gets helloworld endpoints from every cluster of its mesh", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckEndpoints)
	})
	It("a cluster-local service stays in its cluster", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckClusterLocal)
	})
	It("requests from curl reach helloworld in every cluster", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		dataPlane(ctx, "curl helloworld.sample:5000 from every cluster, ReachedClusters semantics", CheckReachedClusters)
	})
})

var _ = Describe("MC-MTLS", Label("MC-MTLS"), func() {
	It("every cluster of a mesh plugs in the same root", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRootsEqual)
	})
	It("workload certificates chain to the mesh root, carry SPIFFE identities and verify across clusters", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckWorkloadCertificates)
	})
	It("X-Forwarded-Client-Cert shows the caller's identity", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		dataPlane(ctx, "XFCC from httpbin", CheckXFCC)
	})
	It("plaintext is refused under STRICT PeerAuthentication", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		dataPlane(ctx, "plaintext from a client without a sidecar under STRICT", CheckPlaintextRefused)
	})
})

var _ = Describe("MC-CROSS-NETWORK", Label("MC-CROSS-NETWORK"), func() {
	BeforeEach(func() {
		if !multiNetwork() {
			Skip("the scenario has no mesh that spans networks")
		}
	})
	It("every cluster's istio-system carries its network", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckNetworkLabels)
	})
	It("other networks' endpoints appear only as their east-west gateway on 15443, weighted by their endpoints", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckEndpoints)
	})
	It("requests cross networks through the east-west gateways", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		dataPlane(ctx, "requests across networks", CheckReachedClusters)
	})
	It("the east-west gateways' 15443 traffic rises", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		dataPlane(ctx, "gateway stats on 15443", CheckGatewayTraffic)
	})
})

var _ = Describe("MC-PRIMARY-REMOTE", Label("MC-PRIMARY-REMOTE"), func() {
	BeforeEach(func() {
		if current.Scenario.Istio.Model != scenario.PrimaryRemote {
			Skip("the scenario's model is " + string(current.Scenario.Istio.Model))
		}
	})
	It("remote pods are injected by their primary, discovered through it and certified by its CA", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRemotesServed)
	})
})

var _ = Describe("MC-FEDERATION", Label("MC-FEDERATION"), func() {
	BeforeEach(func() {
		if current.Scenario.Istio.Model != scenario.Federated {
			Skip("the scenario's model is " + string(current.Scenario.Istio.Model))
		}
	})
	It("exported services are reachable from other meshes only through the exporting gateway", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckFederation)
	})
	It("workload identities carry each mesh's own trust domain", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckWorkloadCertificates)
	})
})

package suites

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// readerNeeds is what istiod does with a remote cluster's API server through the remote secret's
// account (Istio's istio-reader ClusterRole): review the tokens of the remote's workloads, and list
// and watch what it discovers.
var readerNeeds = []authzv1.ResourceAttributes{
	{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
	{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "list"},
	{Group: "discovery.k8s.io", Resource: "endpointslices", Verb: "watch"},
	{Resource: "services", Verb: "list"},
	{Resource: "services", Verb: "watch"},
	{Resource: "pods", Verb: "list"},
	{Resource: "namespaces", Verb: "list"},
}

// RemoteAPITimeout bounds each call to a remote API server with the remote secret's credentials.
var RemoteAPITimeout = 5 * time.Second

// CheckRemoteAPIServers: every remote secret's API server answers now, from where istiod runs, with the
// secret's own credentials, and its account may do what istiod needs. istiod keeps reporting a cluster
// `synced` after its API server went away (it keeps its last state), so /debug/clusterz alone cannot
// see it.
func CheckRemoteAPIServers(ctx context.Context, t *Target) Verdict {
	var v Verdict
	topo := t.topo()
	for _, p := range topo.Primaries() {
		for _, w := range topo.Watched(p) {
			name := istio.RemoteSecretName(w.Name)
			s, err := t.Clients[p.Name].Kube.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				// CheckRemoteClustersSynced names a missing secret; here it only leaves this pair unjudged.
				v.cannot("reading Secret %s/%s in %s: %v", istio.IstioNamespace, name, p.Name, err)
				continue
			}
			kc, err := clientcmd.Load(s.Data[w.Name])
			if err != nil || len(kc.Clusters) == 0 {
				v.fail("Secret %s/%s in %s holds no kubeconfig under key %q (%v): istiod cannot read %s", istio.IstioNamespace, name, p.Name, w.Name, err, w.Name)
				continue
			}
			cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
			if err != nil {
				v.fail("the kubeconfig in Secret %s/%s of %s is unusable: %v", istio.IstioNamespace, name, p.Name, err)
				continue
			}
			cfg.Timeout = RemoteAPITimeout
			server := cfg.Host
			// Where istiod runs in a pod, a loopback server is the pod itself: it can never reach the
			// remote API server there, whatever answers on the host (kind's published port does).
			if loopback(server) && t.istiodInPod(ctx, p.Name) {
				v.fail("%s's remote secret for %s points at %s, a loopback address: istiod runs in a pod of %s, where that is the pod itself, so it cannot reach %s (kind: the server must be the control-plane container's address, as kind's internal kubeconfig has it; `mclab up` converges the secret)", p.Name, w.Name, server, p.Name, w.Name)
				continue
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				v.cannot("a client for %s: %v", server, err)
				continue
			}
			_, err = cs.Discovery().ServerVersion()
			t.noteSecretServer(p.Name, w.Name, server, err)
			if err != nil {
				if unreachable(err) {
					v.fail("%s's API server at %s does not answer with the credentials of %s's remote secret (%v): istiod of %s still serves its last view of %s and will not see any change there; start the API server or fix the secret's server", w.Name, server, p.Name, short(err), p.Name, w.Name)
				} else {
					v.fail("%s", credentialTrouble(err, p.Name, w.Name, server))
				}
				continue
			}
			var denied []string
			for _, ra := range readerNeeds {
				ra := ra
				r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
				if err != nil {
					v.cannot("SelfSubjectAccessReview at %s: %v", server, err)
					break
				}
				if !r.Status.Allowed {
					denied = append(denied, strings.TrimPrefix(ra.Verb+" "+ra.Resource+"."+ra.Group, "."))
				}
			}
			if len(denied) > 0 {
				v.fail("the account of %s's remote secret for %s may not %s: istiod cannot discover %s or review its workloads' tokens; bind it to istio-reader-clusterrole", p.Name, w.Name, strings.Join(denied, ", "), w.Name)
				continue
			}
			v.saw("%s reads %s at %s: answering, reader permissions granted", p.Name, w.Name, server)
		}
	}
	return v
}

func unreachable(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || (errors.As(err, &ne) && ne.Timeout()) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") || strings.Contains(err.Error(), "i/o timeout")
}

// credentialTrouble says why the API server of remote, at server, did not accept the credentials of
// primary's remote secret for it: a CA that does not verify the server's certificate, a token it
// rejects, or another refusal.
func credentialTrouble(err error, primary, remote, server string) string {
	var unknownCA x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownCA) || strings.Contains(err.Error(), "certificate signed by unknown authority"):
		return fmt.Sprintf("the remote secret of %s for %s does not trust %s's API server at %s (%s): its certificate-authority-data is not the CA that signed the server's certificate; regenerate the secret from %s's own kubeconfig (`mclab up` converges it)", primary, remote, remote, server, short(err), remote)
	case errors.As(err, &invalid) || errors.As(err, &hostname):
		return fmt.Sprintf("the remote secret of %s for %s cannot verify %s's API server at %s (%s): the server's certificate does not match the secret's server address or CA", primary, remote, remote, server, short(err))
	case apierrors.IsUnauthorized(err):
		return fmt.Sprintf("%s's API server at %s rejects the token in the remote secret of %s (401 Unauthorized: the token was revoked, has expired or was rotated); regenerate the secret with a valid token of istio-reader-service-account (`mclab up` converges it)", remote, server, primary)
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("%s's API server at %s forbids the account in the remote secret of %s (%s): bind it to istio-reader-clusterrole", remote, server, primary, short(err))
	}
	return fmt.Sprintf("%s's API server at %s refuses the credentials in the remote secret of %s (%s)", remote, server, primary, short(err))
}

func short(err error) string {
	s := err.Error()
	if len(s) > 240 {
		s = s[:240] + "..."
	}
	return s
}

// meshConfig is the part of istiod's active mesh config (/debug/mesh) that names the mesh.
type meshConfig struct {
	TrustDomain        string   `json:"trustDomain"`
	TrustDomainAliases []string `json:"trustDomainAliases"`
	DefaultConfig      struct {
		MeshID string `json:"meshId"`
	} `json:"defaultConfig"`
}

// CheckMeshIdentity: every cluster of a mesh runs the mesh's ID and trust domain: each primary's istiod
// (its active mesh config, /debug/mesh) and each cluster's injected workloads (ISTIO_META_MESH_ID). In a
// federated scenario, each mesh aliases the other meshes' trust domains.
func CheckMeshIdentity(ctx context.Context, t *Target) Verdict {
	var v Verdict
	topo := t.topo()
	for _, p := range topo.Primaries() {
		want := t.Scenario.Mesh(p.Name)
		ep, err := t.Istiod(p.Name)
		if err != nil {
			v.cannot("reaching istiod of %s: %v", p.Name, err)
			continue
		}
		var mc meshConfig
		if err := istio.DebugJSON(ctx, ep.Debug, "/debug/mesh", &mc); err != nil {
			v.cannot("istiod of %s /debug/mesh: %v", p.Name, err)
			continue
		}
		v.saw("istiod of %s: meshId %q trustDomain %q aliases %v", p.Name, mc.DefaultConfig.MeshID, mc.TrustDomain, mc.TrustDomainAliases)
		if mc.DefaultConfig.MeshID != want.ID {
			v.fail("istiod of %s runs mesh ID %q, but %s belongs to mesh %q with %s: every cluster of a mesh must share one mesh ID (Istio's multicluster install), and the proxies it configures announce another mesh; set global.meshID (meshConfig.defaultConfig.meshId) to %q", p.Name, mc.DefaultConfig.MeshID, p.Name, want.ID, strings.Join(names(mesh(t, want.ID)), ", "), want.ID)
		}
		if mc.TrustDomain != want.TrustDomain {
			v.fail("istiod of %s issues identities in trust domain %q, want %q (mesh %s): workloads of the other clusters reject them; set meshConfig.trustDomain", p.Name, mc.TrustDomain, want.TrustDomain, want.ID)
		}
		if t.Scenario.Istio.Federation != nil {
			for _, m := range t.Scenario.Meshes {
				if m.ID != want.ID && m.TrustDomain != want.TrustDomain && !contains(mc.TrustDomainAliases, m.TrustDomain) {
					v.fail("istiod of %s (mesh %s) does not alias trust domain %q of mesh %s: its workloads reject that mesh's callers; add it to meshConfig.trustDomainAliases", p.Name, want.ID, m.TrustDomain, m.ID)
				}
			}
		}
	}
	for _, c := range t.Scenario.Clusters {
		pod, err := t.probe(ctx, c.Name)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		got := ""
		for _, ct := range pod.Spec.Containers {
			if ct.Name == "istio-proxy" {
				for _, e := range ct.Env {
					if e.Name == "ISTIO_META_MESH_ID" {
						got = e.Value
					}
				}
			}
		}
		if want := t.Scenario.Mesh(c.Name).ID; got != want {
			v.fail("%s in %s was injected with mesh ID %q, want %q: the injector serving %s runs another mesh's values (global.meshID)", pod.Name, c.Name, got, want, c.Name)
		}
	}
	return v
}

func names(cs []scenario.Cluster) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// loopback reports whether a server URL's host is a loopback address or localhost.
func loopback(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// istiodInPod reports whether the istiod of a primary runs as a pod of its cluster (the chart's
// Deployment), where a loopback address is the pod itself; an istiod run elsewhere (a process on the
// host, an external control plane) may well reach a loopback server.
func (t *Target) istiodInPod(ctx context.Context, primary string) bool {
	if t.Capabilities.Istiod != provider.IstiodInCluster {
		return false
	}
	pods, err := t.Clients[primary].Kube.CoreV1().Pods(istio.IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil {
		return false
	}
	for _, p := range pods.Items {
		if p.Status.Phase == "Running" {
			return true
		}
	}
	return false
}

package istio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/scenario"
)

// ClusterStatus is Istio's state in one cluster, as `mclab status` shows it.
type ClusterStatus struct {
	Cluster string        `json:"cluster"`
	Role    scenario.Role `json:"role"`
	Mesh    string        `json:"mesh"`
	Network string        `json:"network"`
	// NetworkLabel is the topology.istio.io/network label istio-system actually carries.
	NetworkLabel string `json:"networkLabel"`
	// ServedBy is the primary whose istiod serves the cluster.
	ServedBy string `json:"servedBy"`
	// IstioVersion is the serving istiod's version.
	IstioVersion string `json:"istioVersion,omitempty"`
	// IstiodReady is true when the serving istiod answers /ready.
	IstiodReady bool `json:"istiodReady"`
	// RemoteClusters are the clusters this primary's istiod reads, with their sync state.
	RemoteClusters []ClusterSync `json:"remoteClusters,omitempty"`
	// EastWestGateway is the east-west gateway's LoadBalancer address ("" when it has none).
	EastWestGateway string `json:"eastWestGateway,omitempty"`
	// RootFingerprint is the SHA-256 of root-cert.pem in the cluster's cacerts Secret.
	RootFingerprint string `json:"rootFingerprint,omitempty"`
	// Problems say what is wrong, in words.
	Problems []string `json:"problems,omitempty"`
}

// Healthy reports whether the cluster has no problem.
func (s ClusterStatus) Healthy() bool { return len(s.Problems) == 0 }

// Status reads Istio's state in every cluster.
func (in *Installer) Status(ctx context.Context) []ClusterStatus {
	t := in.topo()
	out := make([]ClusterStatus, len(in.S.Clusters))
	_ = in.forEach(ctx, in.S.Clusters, func(ctx context.Context, c scenario.Cluster) error {
		for i, cl := range in.S.Clusters {
			if cl.Name == c.Name {
				out[i] = in.clusterStatus(ctx, t, c)
			}
		}
		return nil
	})
	return out
}

func (in *Installer) clusterStatus(ctx context.Context, t Topology, c scenario.Cluster) ClusterStatus {
	serving := t.Serving(c)
	st := ClusterStatus{Cluster: c.Name, Role: c.Role, Mesh: c.Mesh, Network: c.Network, ServedBy: serving.Name}
	problem := func(format string, args ...any) { st.Problems = append(st.Problems, fmt.Sprintf(format, args...)) }
	kc, err := in.client(ctx, c.Name)
	if err != nil {
		problem("no client: %v", err)
		return st
	}
	if ns, err := kc.Kube.CoreV1().Namespaces().Get(ctx, IstioNamespace, metav1.GetOptions{}); err != nil {
		problem("istio-system: %v", err)
	} else {
		st.NetworkLabel = ns.Labels[NetworkLabel]
		if st.NetworkLabel != c.Network {
			problem("istio-system is labelled %s=%q, want %q", NetworkLabel, st.NetworkLabel, c.Network)
		}
	}
	if s, err := kc.Kube.CoreV1().Secrets(IstioNamespace).Get(ctx, CACertsSecret, metav1.GetOptions{}); err != nil {
		problem("secret cacerts: %v", err)
	} else if root, err := pki.FirstCert(s.Data[pki.RootCertFile]); err != nil {
		problem("secret cacerts has no valid root-cert.pem: %v", err)
	} else {
		st.RootFingerprint = pki.Fingerprint(root)
	}
	if t.NeedsEastWestGateway(c) {
		if addr, err := readGatewayAddress(ctx, in, c.Name); err != nil || addr == "" {
			problem("east-west gateway has no address")
		} else {
			st.EastWestGateway = addr
		}
	}
	ep, err := in.istiodEndpoint(ctx, serving.Name)
	if err != nil {
		problem("%v", err)
		return st
	}
	st.IstiodReady = httpOK(ctx, "http://"+ep.Debug+"/ready")
	if !st.IstiodReady {
		problem("istiod of %s is not ready", serving.Name)
	}
	st.IstioVersion = httpBody(ctx, "http://"+ep.Monitoring+"/version")
	if c.Role == scenario.Primary && st.IstiodReady {
		syncs, err := Clusterz(ctx, ep.Debug)
		if err != nil {
			problem("/debug/clusterz: %v", err)
		}
		status := map[string]string{}
		for _, s := range syncs {
			if s.ID != c.Name {
				st.RemoteClusters = append(st.RemoteClusters, s)
				status[s.ID] = s.SyncStatus
			}
		}
		for _, w := range t.Watched(c) {
			switch status[w.Name] {
			case "synced":
			case "":
				problem("istiod of %s has no remote secret for %s", c.Name, w.Name)
			default:
				problem("istiod of %s reads %s but its state is %s", c.Name, w.Name, status[w.Name])
			}
		}
	}
	return st
}

func readGatewayAddress(ctx context.Context, in *Installer, cluster string) (string, error) {
	return readServiceAddress(ctx, in, cluster, EastWestGatewayName)
}

// readServiceAddress is the LoadBalancer address of Service istio-system/name in cluster, or "".
func readServiceAddress(ctx context.Context, in *Installer, cluster, name string) (string, error) {
	kc, err := in.client(ctx, cluster)
	if err != nil {
		return "", err
	}
	svc, err := kc.Kube.CoreV1().Services(IstioNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			return ing.IP, nil
		}
		if ing.Hostname != "" {
			return ing.Hostname, nil
		}
	}
	return "", nil
}

func httpOK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func httpBody(ctx context.Context, url string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return strings.TrimSpace(string(b))
}

// MeshOwner reports whether Istio is installed in the scenario's first cluster and which mclab lab
// installed it ("" when mclab did not).
func (in *Installer) MeshOwner(ctx context.Context) (owner string, installed bool) {
	if len(in.S.Clusters) == 0 {
		return "", false
	}
	kc, err := in.client(ctx, in.S.Clusters[0].Name)
	if err != nil {
		return "", false
	}
	s, err := kc.Kube.CoreV1().Secrets(IstioNamespace).Get(ctx, CACertsSecret, metav1.GetOptions{})
	if err != nil {
		return "", false
	}
	return s.Labels[LabLabel], true
}

// MeshInstalled reports whether Istio is installed in the scenario's first cluster (an istio-system
// namespace with a plugged-in CA), for labs that did not install it themselves (existing clusters).
func (in *Installer) MeshInstalled(ctx context.Context) bool {
	if len(in.S.Clusters) == 0 {
		return false
	}
	kc, err := in.client(ctx, in.S.Clusters[0].Name)
	if err != nil {
		return false
	}
	_, err = kc.Kube.CoreV1().Secrets(IstioNamespace).Get(ctx, CACertsSecret, metav1.GetOptions{})
	return err == nil
}

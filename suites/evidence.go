package suites

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
)

// GatewayAddress is the east-west gateway address of a cluster ("" without one).
func GatewayAddress(ctx context.Context, t *Target, cluster string) (string, error) {
	c := t.Scenario.Cluster(cluster)
	if c == nil {
		return "", fmt.Errorf("no cluster %s", cluster)
	}
	return t.networkGatewayOf(ctx, cluster)
}

func (t *Target) networkGatewayOf(ctx context.Context, cluster string) (string, error) {
	return t.loadBalancerOf(ctx, cluster, istio.EastWestGatewayName)
}

// loadBalancerOf is the LoadBalancer address of Service istio-system/name in cluster, or "".
func (t *Target) loadBalancerOf(ctx context.Context, cluster, name string) (string, error) {
	svc, err := t.Clients[cluster].Kube.CoreV1().Services(istio.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	// An IP, else a hostname (AWS load balancers publish only a hostname; istiod resolves it).
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			return ing.IP, nil
		}
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.Hostname != "" {
			return ing.Hostname, nil
		}
	}
	return "", nil
}

// resolveGateway returns the IPs a gateway address stands for: itself when it is an IP, else what its
// hostname resolves to (as istiod resolves hostname gateways), or the hostname when it does not
// resolve from here.
func resolveGateway(ctx context.Context, addr string) []string {
	if net.ParseIP(addr) != nil {
		return []string{addr}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, addr)
	if err != nil || len(ips) == 0 {
		return []string{addr}
	}
	return ips
}

// CollectEvidence writes an evidence bundle: each primary istiod's debug output (clusterz, networkz,
// endpointShardz), and per cluster the Services and Secrets of istio-system as summaries (names,
// types, labels, annotations, data keys: never values, so no token or key is ever written).
func CollectEvidence(ctx context.Context, t *Target, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, c := range t.Scenario.Clusters {
		cdir := filepath.Join(dir, c.Name)
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			return err
		}
		if c.Role == "primary" {
			if ep, err := t.Istiod(c.Name); err == nil {
				for _, path := range []string{"clusterz", "networkz", "endpointShardz"} {
					body := fetch(ctx, "http://"+ep.Debug+"/debug/"+path)
					_ = os.WriteFile(filepath.Join(cdir, "istiod-"+path+".json"), body, 0o600)
				}
			}
		}
		type summary struct {
			Name        string            `json:"name"`
			Type        string            `json:"type,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
			DataKeys    []string          `json:"dataKeys,omitempty"`
			Ingress     []string          `json:"loadBalancerIngress,omitempty"`
		}
		var secrets, services []summary
		if list, err := t.Clients[c.Name].Kube.CoreV1().Secrets(istio.IstioNamespace).List(ctx, metav1.ListOptions{}); err == nil {
			for _, s := range list.Items {
				sm := summary{Name: s.Name, Type: string(s.Type), Labels: s.Labels}
				for k := range s.Data {
					sm.DataKeys = append(sm.DataKeys, k)
				}
				secrets = append(secrets, sm)
			}
		}
		if list, err := t.Clients[c.Name].Kube.CoreV1().Services(istio.IstioNamespace).List(ctx, metav1.ListOptions{}); err == nil {
			for _, s := range list.Items {
				sm := summary{Name: s.Name, Type: string(s.Spec.Type), Labels: s.Labels}
				for _, ing := range s.Status.LoadBalancer.Ingress {
					sm.Ingress = append(sm.Ingress, ing.IP+ing.Hostname)
				}
				services = append(services, sm)
			}
		}
		for name, v := range map[string]any{"secrets.json": secrets, "services.json": services} {
			data, _ := json.MarshalIndent(v, "", "  ")
			if err := os.WriteFile(filepath.Join(cdir, name), data, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

func fetch(ctx context.Context, url string) []byte {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return []byte(fmt.Sprintf(`{"error": %q}`, err.Error()))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return b
}

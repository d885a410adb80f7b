package diagnose

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The shapes of istiod's debug endpoints this package reads, with only the fields it uses. The field
// names are istiod's own (pilot/pkg/xds/debug.go, pilot/pkg/model/service.go, endpointshards.go);
// fixtures/istiod-debug holds real outputs recorded from a local lab's istiod.

// clusterSync is an entry of /debug/clusterz.
type clusterSync struct {
	ID         string `json:"id"`
	SecretName string `json:"secretName"`
	SyncStatus string `json:"syncStatus"`
}

// registryService is an entry of /debug/registryz (model.Service).
type registryService struct {
	Hostname   string `json:"hostname"`
	Attributes struct {
		Name      string                     `json:"Name"`
		Namespace string                     `json:"Namespace"`
		ExportTo  map[string]json.RawMessage `json:"ExportTo"` // a set: {"istio-system": {}}
	} `json:"Attributes"`
	Ports []struct {
		Name     string `json:"name"`
		Port     int    `json:"port"`
		Protocol string `json:"protocol"`
	} `json:"ports"`
	ClusterVIPs struct {
		Addresses map[string][]string `json:"Addresses"`
	} `json:"clusterVIPs"`
}

// shardEndpoint is an endpoint of /debug/endpointShardz (model.IstioEndpoint).
type shardEndpoint struct {
	Addresses       []string          `json:"Addresses"`
	Labels          map[string]string `json:"Labels"`
	ServicePortName string            `json:"ServicePortName"`
	Network         string            `json:"Network"`
	TLSMode         string            `json:"TLSMode"`
	WorkloadName    string            `json:"WorkloadName"`
	HealthStatus    int               `json:"HealthStatus"`
}

// endpointShardz is /debug/endpointShardz: host -> namespace -> shards ("Kubernetes/c2") -> endpoints.
type endpointShardz map[string]map[string]struct {
	Shards map[string][]shardEndpoint `json:"Shards"`
}

// networkGateway is an entry of /debug/networkz (model.NetworkGateway).
type networkGateway struct {
	Network string `json:"Network"`
	Cluster string `json:"Cluster"`
	Addr    string `json:"Addr"`
	Port    int    `json:"Port"`
}

// meshConfig is the part of /debug/mesh (MeshConfig, as JSON) the links read.
type meshConfig struct {
	TrustDomain            string   `json:"trustDomain"`
	RootNamespace          string   `json:"rootNamespace"`
	DefaultServiceExportTo []string `json:"defaultServiceExportTo"`
	ServiceSettings        []struct {
		Settings struct {
			ClusterLocal bool `json:"clusterLocal"`
		} `json:"settings"`
		Hosts []string `json:"hosts"`
	} `json:"serviceSettings"`
	DefaultConfig struct {
		MeshID string `json:"meshId"`
	} `json:"defaultConfig"`
}

// configEntry is an entry of /debug/configz (a config.Config as Kubernetes-shaped JSON).
type configEntry struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// Debug reads one of istiod's debug endpoints ("/debug/clusterz") of the istiod serving a primary.
type Debug func(ctx context.Context, primary, path string) ([]byte, error)

// HTTPDebug reads istiod's debug endpoints over HTTP at addr(primary) (the HTTP debug port on the
// local provider, port 15014 through a port-forward on a real cluster).
func HTTPDebug(addr func(primary string) (string, error)) Debug {
	return func(ctx context.Context, primary, path string) ([]byte, error) {
		a, err := addr(primary)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: HTTP %d: %.200s", path, resp.StatusCode, body)
		}
		return body, nil
	}
}

// istiodState is what one istiod holds, read once per diagnosis.
type istiodState struct {
	primary  string
	clusters []clusterSync
	registry []registryService
	shards   endpointShardz
	networks []networkGateway
	mesh     meshConfig
	configs  []configEntry
}

// InfraError is a diagnosis that could not read istiod's state: an infrastructure problem (exit 2),
// never a cause.
type InfraError struct {
	Primary, Path string
	Err           error
}

func (e *InfraError) Error() string {
	return fmt.Sprintf("istiod of %s does not answer %s: %v", e.Primary, e.Path, e.Err)
}

func (e *InfraError) Unwrap() error { return e.Err }

func readState(ctx context.Context, debug Debug, primary string) (*istiodState, error) {
	st := &istiodState{primary: primary}
	for _, r := range []struct {
		path string
		into any
	}{
		{"/debug/clusterz", &st.clusters},
		{"/debug/registryz", &st.registry},
		{"/debug/endpointShardz", &st.shards},
		{"/debug/networkz", &st.networks},
		{"/debug/mesh", &st.mesh},
		{"/debug/configz", &st.configs},
	} {
		body, err := debug(ctx, primary, r.path)
		if err != nil {
			return nil, &InfraError{Primary: primary, Path: r.path, Err: err}
		}
		if err := json.Unmarshal(body, r.into); err != nil {
			return nil, &InfraError{Primary: primary, Path: r.path, Err: fmt.Errorf("not istiod's JSON: %w", err)}
		}
	}
	return st, nil
}

func (st *istiodState) service(host string) *registryService {
	for i := range st.registry {
		if st.registry[i].Hostname == host {
			return &st.registry[i]
		}
	}
	return nil
}

// shard is the endpoints istiod holds for host from cluster ("Kubernetes/<cluster>").
func (st *istiodState) shard(host, namespace, cluster string) ([]shardEndpoint, bool) {
	ns, ok := st.shards[host][namespace]
	if !ok {
		return nil, false
	}
	eps, ok := ns.Shards["Kubernetes/"+cluster]
	return eps, ok
}

func (st *istiodState) configsOf(kind string) []configEntry {
	var out []configEntry
	for _, c := range st.configs {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

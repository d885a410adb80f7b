package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestComposeLayouts(t *testing.T) {
	cases := []struct {
		t        Topology
		m        Model
		n        int
		name     string
		networks []string
		roles    []Role
		meshes   []string
	}{
		{SingleNetwork, MultiPrimary, 2, "single-network", []string{"network1", "network1"}, []Role{Primary, Primary}, []string{"mesh1", "mesh1"}},
		{MultiNetwork, MultiPrimary, 2, "multi-network", []string{"network1", "network2"}, []Role{Primary, Primary}, []string{"mesh1", "mesh1"}},
		{MultiNetwork, PrimaryRemote, 3, "multi-network-primary-remote-3", []string{"network1", "network2", "network3"}, []Role{Primary, Remote, Remote}, []string{"mesh1", "mesh1", "mesh1"}},
		{SingleNetwork, Federated, 3, "single-network-federated-3", []string{"network1", "network1", "network1"}, []Role{Primary, Primary, Primary}, []string{"mesh1", "mesh1", "mesh2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compose(tc.t, tc.m, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != tc.name {
				t.Errorf("name %q, want %q", s.Name, tc.name)
			}
			for i, c := range s.Clusters {
				if c.Network != tc.networks[i] || c.Role != tc.roles[i] || c.Mesh != tc.meshes[i] {
					t.Errorf("cluster %s: network %s role %s mesh %s; want %s %s %s", c.Name, c.Network, c.Role, c.Mesh, tc.networks[i], tc.roles[i], tc.meshes[i])
				}
				if c.Role == Remote && c.Primary != "c1" {
					t.Errorf("remote %s has primary %q, want c1", c.Name, c.Primary)
				}
			}
			if tc.m == Federated {
				if s.Meshes[0].TrustDomain == s.Meshes[1].TrustDomain {
					t.Errorf("federated meshes share trust domain %s", s.Meshes[0].TrustDomain)
				}
			}
			gt, gm, gn, ok := ParseBuiltinName(s.Name)
			if !ok || gt != tc.t || gm != tc.m || gn != tc.n {
				t.Errorf("ParseBuiltinName(%q) = %s %s %d %v", s.Name, gt, gm, gn, ok)
			}
		})
	}
}

func TestComposeRejects(t *testing.T) {
	for _, tc := range []struct {
		t    Topology
		m    Model
		n    int
		want string
	}{
		{"star", MultiPrimary, 2, `topology "star" is not supported`},
		{MultiNetwork, "mesh", 2, `model "mesh" is not supported`},
		{MultiNetwork, Federated, 1, "clusters 1 is out of range"},
		{MultiNetwork, MultiPrimary, 0, "clusters 0 is out of range"},
		{MultiNetwork, MultiPrimary, MaxClusters + 1, "out of range"},
	} {
		if _, err := Compose(tc.t, tc.m, tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compose(%s, %s, %d) = %v, want %q", tc.t, tc.m, tc.n, err, tc.want)
		}
	}
	for _, bad := range []string{"multi-network-", "multi-network-x", "multi-network-02", "triple-network", "multi-network-federated-"} {
		if _, _, _, ok := ParseBuiltinName(bad); ok {
			t.Errorf("ParseBuiltinName(%q) accepted", bad)
		}
	}
}

// TestImportIstioCI reads Istio's own prow/config/topology/multicluster.json (shipped verbatim in
// scenarios/) and checks its three clusters, subnets, networks and the remote's primary.
func TestImportIstioCI(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "scenarios", "istio-ci.json"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("istio-ci.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "istio-ci" || s.Istio.Model != PrimaryRemote {
		t.Errorf("name %q model %q", s.Name, s.Istio.Model)
	}
	want := []Cluster{
		{Name: "primary", Network: "network-1", PodSubnet: "10.10.0.0/16", ServiceSubnet: "10.255.10.0/24", Role: Primary},
		{Name: "remote", Network: "network-1", PodSubnet: "10.20.0.0/16", ServiceSubnet: "10.255.20.0/24", Role: Remote, Primary: "primary"},
		{Name: "cross-network-primary", Network: "network-2", PodSubnet: "10.30.0.0/16", ServiceSubnet: "10.255.30.0/24", Role: Primary},
	}
	if len(s.Clusters) != len(want) {
		t.Fatalf("%d clusters, want %d", len(s.Clusters), len(want))
	}
	for i, w := range want {
		c := s.Clusters[i]
		if c.Name != w.Name || c.Network != w.Network || c.PodSubnet != w.PodSubnet || c.ServiceSubnet != w.ServiceSubnet || c.Role != w.Role || c.Primary != w.Primary {
			t.Errorf("cluster %d: got %+v, want %+v", i, c, w)
		}
	}
}

func TestImportIstioTopologyRejects(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`[{"clusterName": "a", "configClusterName": "cfg"}, {"clusterName": "cfg"}]`, `configClusterName: "cfg" makes an external control plane`},
		{`[{"kind": "ExternalVM", "clusterName": "vm"}]`, `kind: "ExternalVM" is not supported`},
		{`[{"clusterName": "a", "podCidr": "10.0.0.0/16"}]`, `unknown field "podCidr"`},
		{`[{"clusterName": "a", "podSubnet": "10.1.0.0/16"}, {"clusterName": "b", "podSubnet": "10.1.0.0/16"}]`, "clusters[1].podSubnet"},
	} {
		_, err := Parse("topo.json", []byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "topo.json") {
			t.Errorf("Parse(%s) = %v; want an error naming topo.json and %q", tc.doc, err, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	builtins := fstest.MapFS{"extra.yaml": {Data: []byte("apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nclusters: [{name: x}]\n")}}
	s, err := Load("extra", builtins)
	if err != nil || s.Name != "extra" || s.Clusters[0].Name != "x" {
		t.Fatalf("Load(extra) = %+v, %v", s, err)
	}
	s, err = Load("single-network-primary-remote", builtins)
	if err != nil || s.Istio.Model != PrimaryRemote {
		t.Fatalf("Load(composed) = %+v, %v", s, err)
	}
	_, err = Load("nope", builtins)
	if err == nil || !strings.Contains(err.Error(), "multi-network") || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("Load(nope) should list the built-ins: %v", err)
	}
	if _, err := Load("./missing.yaml", builtins); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("Load(missing file) = %v", err)
	}
}

package scenario

import (
	"strings"
	"testing"
)

// TestParseRejects covers every kind of invalid scenario: each must be rejected before anything is
// created, with a message that names the file, the field and the fix.
func TestParseRejects(t *testing.T) {
	head := "apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nname: lab\n"
	cases := []struct {
		name string
		doc  string
		want []string // substrings of the error, all required
	}{
		{
			name: "overlapping pod subnets",
			doc:  head + "clusters:\n- {name: a, podSubnet: 10.10.0.0/16}\n- {name: b, podSubnet: 10.10.128.0/17}\n",
			want: []string{"bad.yaml", "clusters[1].podSubnet", "overlaps clusters[0].podSubnet", "omit it to have one allocated"},
		},
		{
			name: "pod subnet overlapping a service subnet",
			doc:  head + "clusters:\n- {name: a, serviceSubnet: 10.20.0.0/24}\n- {name: b, podSubnet: 10.20.0.0/16}\n",
			want: []string{"clusters[1].podSubnet", "overlaps clusters[0].serviceSubnet"},
		},
		{
			name: "subnet that is not a CIDR",
			doc:  head + "clusters:\n- {name: a, podSubnet: 10.10.0.0}\n",
			want: []string{"clusters[0].podSubnet", "not a CIDR", "10.10.0.0/16"},
		},
		{
			name: "subnet with host bits",
			doc:  head + "clusters:\n- {name: a, podSubnet: 10.10.3.0/16}\n",
			want: []string{"clusters[0].podSubnet", "did you mean 10.10.0.0/16"},
		},
		{
			name: "duplicate cluster names",
			doc:  head + "clusters:\n- {name: a}\n- {name: a}\n",
			want: []string{"clusters[1].name", "Duplicate", "also clusters[0].name", "rename"},
		},
		{
			name: "cluster name not a DNS-1123 label",
			doc:  head + "clusters:\n- {name: Cluster_1}\n",
			want: []string{"clusters[0].name", "Cluster_1", "e.g. \"cluster-1\""},
		},
		{
			name: "lab name not a DNS-1123 label",
			doc:  "apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nname: My.Lab\nclusters:\n- {name: a}\n",
			want: []string{"name: Invalid value: \"My.Lab\"", "my-lab"},
		},
		{
			name: "remote without a primary",
			doc:  head + "istio: {model: primary-remote}\nclusters:\n- {name: a}\n- {name: b, role: remote}\n",
			want: []string{"clusters[1].primary", "Required", "set primary to one of a"},
		},
		{
			name: "remote whose primary does not exist",
			doc:  head + "istio: {model: primary-remote}\nclusters:\n- {name: a}\n- {name: b, role: remote, primary: z}\n",
			want: []string{"clusters[1].primary", "no cluster has this name", "one of a"},
		},
		{
			name: "remote whose primary is in another mesh",
			doc: head + "istio: {model: primary-remote}\nmeshes: [{id: m1}, {id: m2}]\n" +
				"clusters:\n- {name: a, mesh: m1}\n- {name: c, mesh: m2}\n- {name: b, role: remote, primary: a, mesh: m2}\n",
			want: []string{"clusters[2].primary", `in mesh "m1" but this cluster is in mesh "m2"`, "choose a primary of the same mesh (c)"},
		},
		{
			name: "remote whose primary is a remote",
			doc:  head + "istio: {model: primary-remote}\nclusters:\n- {name: a}\n- {name: b, role: remote, primary: a}\n- {name: c, role: remote, primary: b}\n",
			want: []string{"clusters[2].primary", "that cluster is a remote"},
		},
		{
			name: "unknown model",
			doc:  head + "istio: {model: multi-master}\nclusters:\n- {name: a}\n",
			want: []string{"istio.model", `"multi-master"`, "supported values", "multi-primary", "primary-remote", "federated"},
		},
		{
			name: "unknown provider",
			doc:  head + "provider: {name: minikube}\nclusters:\n- {name: a}\n",
			want: []string{"provider.name", `"minikube"`, "supported values", "auto", "kind", "local", "existing"},
		},
		{
			name: "unknown role",
			doc:  head + "clusters:\n- {name: a, role: config}\n",
			want: []string{"clusters[0].role", "supported values", "primary", "remote"},
		},
		{
			name: "federated with one mesh",
			doc:  head + "istio: {model: federated}\nclusters:\n- {name: a}\n- {name: b}\n",
			want: []string{"istio.model", "federated needs at least two meshes", "add a second mesh"},
		},
		{
			name: "federated with a second mesh that has no cluster",
			doc:  head + "istio: {model: federated}\nmeshes: [{id: m1}, {id: m2}]\nclusters:\n- {name: a}\n- {name: b}\n",
			want: []string{"istio.model", "federated needs at least two meshes", "meshes[m2]", "no primary cluster"},
		},
		{
			name: "primary-remote without a primary",
			doc:  head + "istio: {model: primary-remote}\nclusters:\n- {name: a, role: remote, primary: b}\n- {name: b, role: remote, primary: a}\n",
			want: []string{"istio.model", "primary-remote needs at least one cluster with role: primary"},
		},
		{
			name: "remote in a multi-primary scenario",
			doc:  head + "clusters:\n- {name: a}\n- {name: b, role: remote, primary: a}\n",
			want: []string{"clusters[1].role", "model multi-primary has no remotes", "set istio.model: primary-remote"},
		},
		{
			name: "primary with a primary",
			doc:  head + "clusters:\n- {name: a}\n- {name: b, primary: a}\n",
			want: []string{"clusters[1].primary", "only a remote has a primary"},
		},
		{
			name: "cluster in an unknown mesh",
			doc:  head + "clusters:\n- {name: a, mesh: nope}\n",
			want: []string{"clusters[0].mesh", "no mesh has this id", "mesh1"},
		},
		{
			name: "duplicate mesh ids",
			doc:  head + "meshes: [{id: m1}, {id: m1}]\nclusters:\n- {name: a, mesh: m1}\n",
			want: []string{"meshes[1].id", "Duplicate"},
		},
		{
			name: "no clusters",
			doc:  head + "clusters: []\n",
			want: []string{"clusters: Required", "add at least one cluster"},
		},
		{
			name: "unknown top-level field (strict decoding)",
			doc:  head + "clusterz:\n- {name: a}\n",
			want: []string{"bad.yaml", `unknown field "clusterz"`, "remove it or fix its spelling"},
		},
		{
			name: "unknown nested field (strict decoding)",
			doc:  head + "clusters:\n- {name: a, podCIDR: 10.1.0.0/16}\n",
			want: []string{`unknown field "podCIDR"`, "remove it or fix its spelling"},
		},
		{
			name: "duplicate field (strict decoding)",
			doc:  head + "name: again\nclusters:\n- {name: a}\n",
			want: []string{"bad.yaml", `"name" already set`},
		},
		{
			name: "image hub with a scheme",
			doc:  head + "istio: {hub: 'https://docker.io/istio/'}\nclusters:\n- {name: a}\n",
			want: []string{"istio.hub", "e.g. docker.io/istio"},
		},
		{
			name: "image tag with a slash",
			doc:  head + "istio: {tag: 'release/1.28'}\nclusters:\n- {name: a}\n",
			want: []string{"istio.tag", "such as 1.28.0"},
		},
		{
			name: "kind registry mirror without scheme",
			doc:  head + "provider: {name: kind, kind: {registryMirrors: {docker.io: 'mirror:5000'}}}\nclusters:\n- {name: a}\n",
			want: []string{"provider.kind.registryMirrors[docker.io]", "http://registry-mirror:5000"},
		},
		{
			name: "kind negative workers",
			doc:  head + "provider: {name: kind, kind: {workers: -1}}\nclusters:\n- {name: a}\n",
			want: []string{"provider.kind.workers", "0 to 10"},
		},
		{
			name: "sidecar samples on offline images",
			doc:  head + "istio: {samples: sidecar}\nprovider: {name: kind, kind: {offlineImages: true}}\nclusters:\n- {name: a}\n",
			want: []string{"istio.samples", "sidecar samples run Envoy", "samples: proxyless"},
		},
		{
			name: "istiod through the gateway on offline images",
			doc:  head + "istio: {model: primary-remote, exposeIstiod: eastWestGateway}\nprovider: {name: kind, kind: {offlineImages: true}}\nclusters:\n- {name: a}\n- {name: b, role: remote, primary: a}\n",
			want: []string{"istio.exposeIstiod", "east-west gateway runs Envoy", "exposeIstiod: loadBalancer"},
		},
		{
			name: "istiod behind a LoadBalancer on provider local",
			doc:  head + "istio: {model: primary-remote, exposeIstiod: loadBalancer}\nprovider: {name: local}\nclusters:\n- {name: a}\n- {name: b, role: remote, primary: a}\n",
			want: []string{"istio.exposeIstiod", "host process on provider local"},
		},
		{
			name: "unknown istiod exposure",
			doc:  head + "istio: {exposeIstiod: nodePort}\nclusters:\n- {name: a}\n",
			want: []string{"istio.exposeIstiod", "Unsupported value: \"nodePort\"", "loadBalancer"},
		},
		{
			name: "istio version not a release",
			doc:  head + "istio: {version: latest}\nclusters:\n- {name: a}\n",
			want: []string{"istio.version", "a published Istio release such as 1.30.1"},
		},
		{
			name: "chart repository without a release",
			doc:  head + "istio: {chartRepository: \"https://charts.example\"}\nclusters:\n- {name: a}\n",
			want: []string{"istio.chartRepository", "set istio.version (--istio-version) to a release"},
		},
		{
			name: "chart repository not a URL",
			doc:  head + "istio: {version: 1.30.1, chartRepository: charts.example}\nclusters:\n- {name: a}\n",
			want: []string{"istio.chartRepository", "a Helm chart repository URL"},
		},
		{
			name: "cluster version two minors apart",
			doc:  head + "istio: {version: 1.30.1}\nclusters:\n- {name: a}\n- {name: b, istioVersion: 1.28.0}\n",
			want: []string{"clusters[1].istioVersion", "one minor version apart"},
		},
		{
			name: "cluster version not a release",
			doc:  head + "istio: {version: 1.30.1}\nclusters:\n- {name: a}\n- {name: b, istioVersion: stable}\n",
			want: []string{"clusters[1].istioVersion", "a published Istio release"},
		},
		{
			name: "offline images with a release",
			doc:  head + "istio: {version: 1.30.1}\nprovider: {name: kind, kind: {offlineImages: true}}\nclusters:\n- {name: a}\n",
			want: []string{"provider.kind.offlineImages", "drop offlineImages"},
		},
		{
			name: "wrong apiVersion",
			doc:  "apiVersion: mclab.dev/v2\nkind: Scenario\nname: lab\nclusters:\n- {name: a}\n",
			want: []string{"apiVersion", "set apiVersion: mclab.dev/v1alpha1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse accepted an invalid scenario:\n%s", tc.doc)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseAcceptsAndDefaults(t *testing.T) {
	s, err := Parse("ok.yaml", []byte("apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nclusters:\n- {name: a, podSubnet: 10.10.0.0/16}\n- {name: b}\n- {name: c, serviceSubnet: 10.255.20.0/24}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "ok" {
		t.Errorf("name defaults to the file's base name: got %q", s.Name)
	}
	if s.Provider.Name != ProviderAuto || s.Istio.Model != MultiPrimary || s.Istio.Version != DefaultIstioVersion {
		t.Errorf("defaults: provider %q model %q version %q", s.Provider.Name, s.Istio.Model, s.Istio.Version)
	}
	want := []struct{ pod, svc string }{
		{"10.10.0.0/16", "10.255.10.0/24"},
		{"10.20.0.0/16", "10.255.30.0/24"}, // 10.255.20.0/24 is taken by c
		{"10.30.0.0/16", "10.255.20.0/24"},
	}
	for i, w := range want {
		c := s.Clusters[i]
		if c.PodSubnet != w.pod || c.ServiceSubnet != w.svc {
			t.Errorf("cluster %s: got pods %s services %s, want %s %s", c.Name, c.PodSubnet, c.ServiceSubnet, w.pod, w.svc)
		}
		if c.Role != Primary || c.Mesh != "mesh1" || c.Network != "network1" || c.Region == "" || c.Zone == "" {
			t.Errorf("cluster %s defaults: %+v", c.Name, c)
		}
	}
}

func TestAllocationNeverOverlaps(t *testing.T) {
	s, err := Compose(MultiNetwork, MultiPrimary, MaxClusters)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate("x"); err != nil {
		t.Fatalf("%d composed clusters overlap: %v", MaxClusters, err)
	}
}

// TestOfflineImagesDefaults: offline images (no Envoy) default to proxyless samples and to istiod
// behind a LoadBalancer for remotes; what the scenario says wins.
func TestOfflineImagesDefaults(t *testing.T) {
	doc := "apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nname: lab\nistio: {model: primary-remote}\nprovider: {name: kind, kind: {offlineImages: true}}\nclusters:\n- {name: a}\n- {name: b, role: remote, primary: a}\n"
	s, err := Parse("ok.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if SampleSet(s) != SamplesProxyless || HasSidecarSamples(s) || !HasProxylessSamples(s) || IstiodExposure(s) != ExposeLoadBalancer {
		t.Errorf("offline defaults: samples %s exposure %s", SampleSet(s), IstiodExposure(s))
	}
	s.Provider.Kind.OfflineImages = false
	if SampleSet(s) != SamplesSidecar || IstiodExposure(s) != ExposeEastWestGateway {
		t.Errorf("defaults: samples %s exposure %s", SampleSet(s), IstiodExposure(s))
	}
	s.Istio.Samples, s.Istio.ExposeIstiod = SamplesNone, ExposeLoadBalancer
	if SampleSet(s) != SamplesNone || IstiodExposure(s) != ExposeLoadBalancer {
		t.Errorf("explicit: samples %s exposure %s", SampleSet(s), IstiodExposure(s))
	}
}

// TestFederatedDefaultExportFollowsSamples: the default export is a service the lab deploys, also when
// flags change the sample set after the file was read (resolve runs Default again).
func TestFederatedDefaultExportFollowsSamples(t *testing.T) {
	doc := "apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nname: lab\nistio: {model: federated}\nmeshes: [{id: a}, {id: b}]\nclusters:\n- {name: c1, mesh: a}\n- {name: c2, mesh: b, network: n2}\n"
	s, err := Parse("ok.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Istio.Federation.Exports[0].Hosts[0]; got != DefaultExportedHost {
		t.Errorf("sidecar samples export %s", got)
	}
	s.Provider.Kind = &KindOptions{OfflineImages: true}
	s.Default()
	if got := s.Istio.Federation.Exports; got == nil || len(got) != 0 {
		t.Errorf("proxyless samples export nothing by default, got %+v", got)
	}
	given, err := Parse("ok.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	given.Istio.Federation = &Federation{Exports: []Export{{Mesh: "b", Hosts: []string{"x.y.svc.cluster.local"}}}}
	given.Default()
	given.Provider.Kind = &KindOptions{OfflineImages: true}
	given.Default()
	if got := given.Istio.Federation.Exports; got[0].Hosts[0] != "x.y.svc.cluster.local" {
		t.Errorf("explicit exports must stay: %+v", got)
	}
}

// TestMixedVersionAccepted: a cluster one minor version apart from the lab's is what Istio's skew
// policy allows.
func TestMixedVersionAccepted(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nistio: {version: 1.30.1, model: primary-remote}\nclusters:\n- {name: a}\n- {name: b, role: remote, primary: a, istioVersion: 1.29.4}\n",
		"apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nistio: {chartRepository: \"https://charts.example\"}\nclusters:\n- {name: a}\n- {name: b, istioVersion: 1.30.2}\n",
	} {
		if _, err := Parse("mixed.yaml", []byte(doc)); err != nil {
			t.Errorf("refused: %v\n%s", err, doc)
		}
	}
}

// A YAML syntax error says to fix the syntax, not to remove or respell a field; an unknown field and a
// wrong type say what fits them.
func TestDecodeErrorsSayHowToFix(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"name: x\nclusters:\n- {name: c1\n", "fix the YAML syntax at the line named"},
		{"name: x\nclustrs: []\n", "remove it or fix its spelling"},
		{"name: x\nclusters: 3\n", "give the field a value of the type named"},
	} {
		_, err := Parse("s.yaml", []byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
}

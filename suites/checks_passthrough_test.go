package suites

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// TestWhyNoPassthrough: a missing 15443 Gateway is named with the fix that fits the model: Istio's
// expose-services.yaml in one mesh, but never in a federated one, where it would pass every *.local host
// (mclab's Gateway federation-export passes the exported hosts only).
func TestWhyNoPassthrough(t *testing.T) {
	for _, tc := range []struct {
		model      scenario.Model
		want, not  string
		withGWName string
	}{
		{model: scenario.MultiPrimary, want: "apply Istio's samples/multicluster/expose-services.yaml"},
		{model: scenario.Federated, want: "re-create Gateway federation-export", not: "apply Istio's samples"},
		{model: scenario.MultiPrimary, withGWName: "cross-network-gateway", want: "does not select the gateway pod"},
	} {
		s := &scenario.Scenario{Name: "x", Istio: scenario.Istio{Model: tc.model},
			Clusters: []scenario.Cluster{{Name: "c1", Network: "network1"}, {Name: "c2", Network: "network2"}}}
		if tc.model == scenario.Federated {
			s.Meshes = []scenario.Mesh{{ID: "mesh1"}, {ID: "mesh2"}}
			s.Clusters[0].Mesh, s.Clusters[1].Mesh = "mesh1", "mesh2"
		}
		s.Default()
		if err := s.Validate("test"); err != nil {
			t.Fatal(err)
		}
		var objs []runtime.Object
		if tc.withGWName != "" {
			gw := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
				"metadata": map[string]any{"name": tc.withGWName, "namespace": "istio-system"},
				"spec": map[string]any{"selector": map[string]any{"istio": "other"}, "servers": []any{map[string]any{
					"port": map[string]any{"number": int64(15443), "name": "tls", "protocol": "TLS"},
					"tls":  map[string]any{"mode": "AUTO_PASSTHROUGH"}, "hosts": []any{"*.local"}}}},
			}}
			objs = append(objs, gw)
		}
		sch := runtime.NewScheme()
		d := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(sch, map[schema.GroupVersionResource]string{gatewaysGVR: "GatewayList"})
		for _, o := range objs {
			if _, err := d.Resource(gatewaysGVR).Namespace("istio-system").Create(context.Background(), o.(*unstructured.Unstructured), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		tg := &Target{Scenario: s, Clients: map[string]*kube.Client{"c1": {Name: "c1", Dynamic: d}, "c2": {Name: "c2", Dynamic: d}}}
		got := tg.whyNoPassthrough(context.Background(), "c1")
		if !strings.Contains(got, tc.want) || tc.not != "" && strings.Contains(got, tc.not) {
			t.Errorf("%s (Gateway %q): %q, want %q", tc.model, tc.withGWName, got, tc.want)
		}
	}
}

package istio

import (
	"strings"
	"testing"
)

func TestRenderIstiodRemoteAndGateway(t *testing.T) {
	r := &Renderer{Charts: EmbeddedCharts()}
	out, err := r.Render(ChartIstiod, "istiod", "istio-system", map[string]any{
		"global": map[string]any{"meshID": "mesh1", "network": "network1", "multiCluster": map[string]any{"clusterName": "c1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cm, ok := out.Template("istiod-injector-configmap.yaml")
	if !ok || !strings.Contains(cm, `"clusterName": "c1"`) {
		t.Errorf("injector configmap: %v\n%.400s", ok, cm)
	}
	t.Logf("templates: %d", len(out))
	for k := range out {
		t.Log(k)
	}
}

package istio

import (
	"bytes"
	"strings"
	"testing"
)

// TestDropTemplates: the post-renderer leaves out every document of the named templates (a template of
// several documents heads only its first with "# Source:"), and keeps the rest as Helm rendered them.
func TestDropTemplates(t *testing.T) {
	in := "---\n# Source: istiod/templates/configmap.yaml\nkind: ConfigMap\nmetadata: {name: istio}\n" +
		"---\n# Source: istiod/templates/deployment.yaml\nkind: Deployment\nmetadata: {name: istiod}\n" +
		"---\nkind: Deployment\nmetadata: {name: istiod-second-doc}\n" +
		"---\n# Source: istiod/templates/service.yaml\nkind: Service\nmetadata: {name: istiod}\n" +
		"---\n# Source: istiod/templates/autoscale.yaml\nkind: HorizontalPodAutoscaler\nmetadata: {name: istiod}\n"
	out, err := (&dropTemplates{names: processOnly}).Run(bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, gone := range []string{"kind: Deployment", "istiod-second-doc", "HorizontalPodAutoscaler"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q kept:\n%s", gone, got)
		}
	}
	for _, kept := range []string{"# Source: istiod/templates/configmap.yaml\nkind: ConfigMap", "# Source: istiod/templates/service.yaml\nkind: Service"} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q dropped:\n%s", kept, got)
		}
	}
	if n := strings.Count(got, "\n---"); n != 2 {
		t.Errorf("%d documents, want 2:\n%s", n, got)
	}
}

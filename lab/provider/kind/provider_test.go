package kind

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// fakeDocker records commands and answers like docker for a lab's node containers.
type fakeDocker struct {
	calls []string
	down  bool
}

func (f *fakeDocker) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	cmd := name + " " + strings.Join(args, " ")
	f.calls = append(f.calls, cmd)
	switch {
	case f.down:
		return []byte("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"), &exec.RunError{Command: append([]string{name}, args...), Err: errors.New("exit status 1")}
	case len(args) > 1 && args[0] == "network":
		return []byte("172.19.0.0/16 fc00:f853:ccd:e793::/64 \n"), nil
	case len(args) > 0 && args[0] == "ps":
		label := strings.TrimPrefix(args[2], "label=io.x-k8s.kind.cluster=")
		return []byte(label + "-control-plane\n"), nil
	case len(args) > 0 && args[0] == "inspect":
		node := args[len(args)-1]
		return []byte(fmt.Sprintf("172.18.0.%d\n", 10+int(node[len("lab-c")]-'0'))), nil
	}
	return nil, nil
}

func TestRoutesStepRunsDockerExecOnlyForSameNetwork(t *testing.T) {
	s := &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2"}, {Name: "c3", Network: "network2"}}}
	s.Default()
	fd := &fakeDocker{}
	p := New(Config{Lab: "lab", Store: state.Store{Root: t.TempDir()}, Scenario: s, Runner: fd})
	if err := p.routes(context.Background()); err != nil {
		t.Fatal(err)
	}
	var execs []string
	for _, c := range fd.calls {
		if strings.HasPrefix(c, "docker exec") {
			execs = append(execs, c)
		}
	}
	want := []string{
		"docker exec lab-c1-control-plane ip route replace 10.20.0.0/16 via 172.18.0.12",
		"docker exec lab-c1-control-plane ip route replace 10.255.20.0/24 via 172.18.0.12",
		"docker exec lab-c2-control-plane ip route replace 10.10.0.0/16 via 172.18.0.11",
		"docker exec lab-c2-control-plane ip route replace 10.255.10.0/24 via 172.18.0.11",
	}
	if strings.Join(execs, "\n") != strings.Join(want, "\n") {
		t.Errorf("docker exec calls:\n%s\nwant:\n%s", strings.Join(execs, "\n"), strings.Join(want, "\n"))
	}
}

func TestRewriteServerToContainerIP(t *testing.T) {
	in := clientcmdapi.NewConfig()
	in.Clusters["kind-lab-c1"] = &clientcmdapi.Cluster{Server: "https://lab-c1-control-plane:6443", CertificateAuthorityData: []byte("CA")}
	in.AuthInfos["kind-lab-c1"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("C"), ClientKeyData: []byte("K")}
	in.Contexts["kind-lab-c1"] = &clientcmdapi.Context{Cluster: "kind-lab-c1", AuthInfo: "kind-lab-c1"}
	in.CurrentContext = "kind-lab-c1"
	raw, _ := clientcmd.Write(*in)
	out, err := RewriteServer(raw, "c1", "https://172.18.0.11:6443")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if kc.CurrentContext != "c1" || kc.Clusters["c1"].Server != "https://172.18.0.11:6443" || string(kc.Clusters["c1"].CertificateAuthorityData) != "CA" {
		t.Errorf("rewritten kubeconfig: %+v", kc)
	}
}

func TestPreflightSaysHowToFix(t *testing.T) {
	p := New(Config{Lab: "lab", Store: state.Store{Root: t.TempDir()}, Runner: &fakeDocker{down: true}})
	err := p.preflight(context.Background())
	if err == nil || !strings.Contains(err.Error(), "docker does not answer") || !strings.Contains(err.Error(), "--provider local") {
		t.Errorf("preflight: %v", err)
	}
}

func TestNetworkSubnetPicksIPv4OfDualStack(t *testing.T) {
	p := New(Config{Lab: "lab", Store: state.Store{Root: t.TempDir()}, Runner: &fakeDocker{}})
	got, err := p.NetworkSubnet(context.Background())
	if err != nil || got.String() != "172.19.0.0/16" {
		t.Fatalf("NetworkSubnet = %v, %v", got, err)
	}
}

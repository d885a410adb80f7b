package suites

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
)

// plantRemoteSecret puts c1's remote secret for c2 into the primary-remote target, pointing at server.
func plantRemoteSecret(t *testing.T, tg *Target, server string) {
	t.Helper()
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c2\n  cluster:\n    server: " + server + "\n    insecure-skip-tls-verify: true\n" +
		"contexts:\n- name: c2\n  context: {cluster: c2, user: c2}\ncurrent-context: c2\nusers:\n- name: c2\n  user: {token: not-a-real-token}\n"
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: istio.RemoteSecretName("c2"), Namespace: istio.IstioNamespace,
		Labels: map[string]string{istio.MultiClusterLabel: "true"}}, Data: map[string][]byte{"c2": []byte(kc)}}
	if _, err := tg.Clients["c1"].Kube.CoreV1().Secrets(istio.IstioNamespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A primary's remote secret that points at a server which accepts nothing back (the training
// exercise's 192.0.2.1, a dropped VPN): the remote's proxies cannot be authenticated, and the run learns
// it with one probe, not one timeout per check and poll.
func TestSecretServerDownIsLearnedOncePerRun(t *testing.T) {
	old := RemoteAPITimeout
	RemoteAPITimeout = 300 * time.Millisecond
	t.Cleanup(func() { RemoteAPITimeout = old })

	// A listener that accepts and never answers: what an address that drops packets looks like to a
	// client with a timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer c.Close()
		}
	}()
	tg := remoteTarget(t, scenario.ExposeLoadBalancer, "172.18.3.232", "172.18.3.232", true)
	server := "https://" + l.Addr().String()
	plantRemoteSecret(t, tg, server)
	c1, c2 := *tg.Scenario.Cluster("c1"), *tg.Scenario.Cluster("c2")

	err = tg.secretServerDown(context.Background(), c1, c2)
	var f *FindingError
	if err == nil || !errors.As(err, &f) {
		t.Fatalf("a remote secret whose server does not answer: got %v, want a finding", err)
	}
	for _, want := range []string{"istiod of c1 cannot authenticate c2's proxies", "remote secret for c2", server, "does not answer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("finding %q lacks %q", err, want)
		}
	}
	for range 3 {
		if err := tg.secretServerDown(context.Background(), c1, c2); err == nil {
			t.Fatal("the server was seen down, then up: it is down for the run")
		}
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("the dead server was probed %d times in one run, want once", n)
	}
	// A cluster served by its own istiod never needs the path.
	if err := tg.secretServerDown(context.Background(), c1, c1); err != nil {
		t.Errorf("c1's own proxies: %v", err)
	}
}

func TestSecretServerThatAnswersIsNoFinding(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"major":"1","minor":"37","gitVersion":"v1.37.2"}`))
	}))
	defer srv.Close()
	tg := remoteTarget(t, scenario.ExposeLoadBalancer, "172.18.3.232", "172.18.3.232", true)
	plantRemoteSecret(t, tg, srv.URL)
	c1, c2 := *tg.Scenario.Cluster("c1"), *tg.Scenario.Cluster("c2")
	for range 2 {
		if err := tg.secretServerDown(context.Background(), c1, c2); err != nil {
			t.Fatalf("a server that answers: %v", err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("an answering server was asked %d times within %s, want once", n, answeringFor)
	}
}

package suites

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
)

var helloRE = regexp.MustCompile(`Hello version: (v\d+), instance: `)

// versionCluster maps helloworld versions to the cluster that runs them (v1 in the first cluster, ...).
func (t *Target) versionCluster() map[string]string {
	out := map[string]string{}
	for i, c := range t.Scenario.Clusters {
		out[istio.HelloworldVersion(i)] = c.Name
	}
	return out
}

// CheckReachedClusters sends requests from the curl pod of every cluster to helloworld and checks the
// clusters they reach with the semantics of Istio's check.ReachedClusters: every network of the mesh is
// reached; within the caller's own network, every cluster is reached (other networks are judged per
// network, since their gateway balances among their clusters).
func CheckReachedClusters(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.Inconclusive = fmt.Errorf("no way to run commands in pods")
		return v
	}
	owner := t.versionCluster()
	for _, client := range t.Scenario.Clusters {
		pod, err := t.pod(ctx, client.Name, "curl")
		if err != nil {
			v.Inconclusive = err
			return v
		}
		want := mesh(t, client.Mesh)
		n := 10 * len(want)
		cmd := helloRequests(n)
		out, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", cmd)
		if err != nil {
			v.fail("curl in %s could not run its requests: %v %s", client.Name, err, strings.TrimSpace(stderr))
			continue
		}
		reached := map[string]int{}
		for _, m := range helloRE.FindAllStringSubmatch(out, -1) {
			reached[owner[m[1]]]++
		}
		v.saw("from %s: %d requests reached %v", client.Name, n, reached)
		nets := map[string]bool{}
		for c := range reached {
			if sc := t.Scenario.Cluster(c); sc != nil {
				nets[sc.Network] = true
			}
		}
		for _, c := range want {
			switch {
			case c.Network == client.Network && reached[c.Name] == 0:
				v.fail("requests from %s never reached %s on the same network (reached %s): %s", client.Name, c.Name, describe(reached), hintSameNetwork)
			case c.Network != client.Network && !nets[c.Network]:
				v.fail("requests from %s never reached network %s (reached %s): the east-west gateway path is broken; check the gateway's address and expose-services", client.Name, c.Network, describe(reached))
			}
		}
		for c := range reached {
			if sc := t.Scenario.Cluster(c); sc != nil && sc.Mesh != client.Mesh {
				v.fail("requests from %s (mesh %s) reached %s of mesh %s: meshes must stay apart", client.Name, client.Mesh, c, sc.Mesh)
			}
		}
	}
	return v
}

// helloRequests is the command that sends n requests to helloworld from a curl container.
func helloRequests(n int) []string {
	return []string{"sh", "-c", fmt.Sprintf("for i in $(seq %d); do curl -sS --max-time 5 helloworld.sample:5000/hello; done", n)}
}

const hintSameNetwork = "pod IPs of the same network must be routable (routes between clusters on one network)"

func mesh(t *Target, id string) []scenario.Cluster {
	var out []scenario.Cluster
	for _, c := range t.Scenario.Clusters {
		if c.Mesh == id {
			out = append(out, c)
		}
	}
	return out
}

func describe(reached map[string]int) string {
	if len(reached) == 0 {
		return "nothing"
	}
	var parts []string
	for c, n := range reached {
		parts = append(parts, fmt.Sprintf("%s×%d", c, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// CheckXFCC asks httpbin, from the curl pod of every cluster, which headers it received: the sidecar
// adds X-Forwarded-Client-Cert with the caller's SPIFFE identity when the request came over mTLS.
func CheckXFCC(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.Inconclusive = fmt.Errorf("no way to run commands in pods")
		return v
	}
	for _, client := range t.Scenario.Clusters {
		if exporter := t.exportedByOther(client, "httpbin"); exporter != "" {
			continue // httpbin lives in another mesh; CheckFederation covers it
		}
		pod, err := t.pod(ctx, client.Name, "curl")
		if err != nil {
			v.Inconclusive = err
			return v
		}
		out, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", []string{"curl", "-sS", "--max-time", "5", "httpbin.sample:8000/headers"})
		if err != nil {
			v.fail("curl in %s could not reach httpbin: %v %s", client.Name, err, strings.TrimSpace(stderr))
			continue
		}
		var body struct {
			Headers map[string][]string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(out), &body); err != nil {
			v.fail("httpbin's answer to curl in %s is not JSON: %.200s", client.Name, out)
			continue
		}
		xfcc := strings.Join(body.Headers["X-Forwarded-Client-Cert"], ";")
		want := fmt.Sprintf("URI=spiffe://%s/ns/%s/sa/curl", t.Scenario.Mesh(client.Name).TrustDomain, istio.SampleNamespace)
		v.saw("from %s: X-Forwarded-Client-Cert %q", client.Name, xfcc)
		switch {
		case xfcc == "":
			v.fail("httpbin received the request from %s without X-Forwarded-Client-Cert: it did not arrive over mTLS (is the client injected? a PeerAuthentication DISABLE?)", client.Name)
		case !strings.Contains(xfcc, want):
			v.fail("httpbin saw the caller from %s as %q, want %s: the caller's identity or trust domain is wrong", client.Name, xfcc, want)
		}
	}
	return v
}

func (t *Target) exportedByOther(c scenario.Cluster, app string) string {
	f := t.Scenario.Istio.Federation
	if f == nil {
		return ""
	}
	for _, e := range f.Exports {
		for _, h := range e.Hosts {
			if strings.HasPrefix(h, app+".") && e.Mesh != c.Mesh {
				return e.Mesh
			}
		}
	}
	return ""
}

var curlExitRE = regexp.MustCompile(`curl: \((\d+)\)`)

// CheckPlaintextRefused sends a plaintext request to httpbin (STRICT mTLS) from curl-plain, a client
// without a sidecar, in every cluster: httpbin's sidecar must reset it. curl then exits 56 (connection
// reset) or 52 (empty reply); an answer means STRICT is not enforced, and any other error (DNS,
// timeout, refused) leaves the check inconclusive, since the request never met the policy.
func CheckPlaintextRefused(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.Inconclusive = fmt.Errorf("no way to run commands in pods")
		return v
	}
	for _, client := range t.Scenario.Clusters {
		if t.exportedByOther(client, "httpbin") != "" {
			continue // httpbin lives in another mesh, behind its gateway's mTLS
		}
		pod, err := t.pod(ctx, client.Name, "curl-plain")
		if err != nil {
			v.Inconclusive = err
			return v
		}
		out, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", []string{"curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "httpbin.sample:8000/headers"})
		if err == nil {
			v.fail("httpbin answered a plaintext request from %s's curl-plain (HTTP %s): STRICT mTLS is not enforced (PeerAuthentication httpbin-strict missing, or a PERMISSIVE/DISABLE policy overrides it)", client.Name, strings.TrimSpace(out))
			continue
		}
		code := ""
		if m := curlExitRE.FindStringSubmatch(stderr); m != nil {
			code = m[1]
		}
		v.saw("from %s's curl-plain: %s", client.Name, strings.TrimSpace(stderr))
		if code != "56" && code != "52" {
			v.Inconclusive = fmt.Errorf("the plaintext request from %s's curl-plain failed before reaching httpbin's sidecar (%s): it proves nothing about STRICT", client.Name, strings.TrimSpace(stderr))
			return v
		}
	}
	return v
}

package suites

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
)

// The data-plane probe runs curl in the sample pods (`kubectl exec`, the provider's tunnel). Every
// request prints its body and then a status line of ours (curl -w), so a reply is judged by its HTTP
// status, never only by the process's exit code: an Envoy 503 ("no healthy upstream") exits 0.

// codeMarker ends each request's output: curl's -w writes it after the body, with %{http_code} (000
// when no HTTP reply came: connect failures, resets, timeouts).
const codeMarker = "mclab-http-code="

var (
	helloRE = regexp.MustCompile(`Hello version: (v\d+), instance: (\S+)`)
	codeRE  = regexp.MustCompile(`(?m)^` + codeMarker + `(\d{3})$`)
)

// reply is one request's outcome.
type reply struct {
	code int
	body string
}

// requestLoop is the command that sends n requests to url from a curl container: each prints its body
// and the status line; the loop always exits 0, so a failed request is judged by its status, and an exec
// error means the command itself could not run.
func requestLoop(n int, url string) []string {
	return []string{"sh", "-c", fmt.Sprintf(`for i in $(seq %d); do curl -sS --max-time 5 -w '\n%s%%{http_code}\n' %s; done; true`, n, codeMarker, url)}
}

// helloRequests sends n requests to helloworld.
func helloRequests(n int) []string { return requestLoop(n, "helloworld.sample:5000/hello") }

// parseReplies splits a request loop's stdout into replies.
func parseReplies(out string) []reply {
	var replies []reply
	rest := out
	for {
		loc := codeRE.FindStringSubmatchIndex(rest)
		if loc == nil {
			return replies
		}
		code, _ := strconv.Atoi(rest[loc[2]:loc[3]])
		replies = append(replies, reply{code: code, body: strings.TrimSpace(rest[:loc[0]])})
		rest = rest[loc[1]:]
	}
}

// failedReplies summarizes the non-2xx replies: "3 of 20 (HTTP 503×3: no healthy upstream)".
func failedReplies(replies []reply) string {
	codes := map[int]int{}
	example := map[int]string{}
	bad := 0
	for _, r := range replies {
		if r.code >= 200 && r.code < 300 {
			continue
		}
		bad++
		codes[r.code]++
		if example[r.code] == "" {
			example[r.code] = r.body
		}
	}
	if bad == 0 {
		return ""
	}
	var parts []string
	for c, n := range codes {
		what := fmt.Sprintf("HTTP %03d×%d", c, n)
		if c == 0 {
			what = fmt.Sprintf("no HTTP reply×%d", n)
		}
		if b := strings.TrimSpace(example[c]); b != "" {
			what += ": " + truncate(b, 80)
		}
		parts = append(parts, what)
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d of %d (%s)", bad, len(replies), strings.Join(parts, "; "))
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// helloOwners maps what a helloworld reply names to the cluster that runs it: the instance (the pod's
// name, which the sample prints as HOSTNAME) first, else the version (SERVICE_VERSION, vN in the Nth
// cluster, as samples/helloworld/gen-helloworld.sh sets it).
func (t *Target) helloOwners(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	for i, c := range t.Scenario.Clusters {
		out[istio.HelloworldVersion(i)] = c.Name
		pods, err := t.Clients[c.Name].Kube.CoreV1().Pods(istio.SampleNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld"})
		if err != nil {
			return nil, fmt.Errorf("listing helloworld pods in %s: %w", c.Name, err)
		}
		for _, p := range pods.Items {
			out[p.Name] = c.Name
		}
	}
	return out, nil
}

// reachedBy counts the clusters that answered, by instance (else version).
func reachedBy(replies []reply, owners map[string]string) map[string]int {
	reached := map[string]int{}
	for _, r := range replies {
		if r.code < 200 || r.code >= 300 {
			continue
		}
		m := helloRE.FindStringSubmatch(r.body)
		if m == nil {
			continue
		}
		if c, ok := owners[m[2]]; ok {
			reached[c]++
		} else if c, ok := owners[m[1]]; ok {
			reached[c]++
		} else {
			reached["unknown instance "+m[2]]++
		}
	}
	return reached
}

// sendHello runs n requests to helloworld from client's curl pod and returns the replies; an error
// means the requests could not be sent (the harness), never a reply of the mesh.
func (t *Target) sendHello(ctx context.Context, client scenario.Cluster, n int) ([]reply, error) {
	pod, err := t.pod(ctx, client.Name, "curl")
	if err != nil {
		return nil, err
	}
	out, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", helloRequests(n))
	if err != nil {
		return nil, fmt.Errorf("running curl in %s/%s of %s: %v %s", pod.Namespace, pod.Name, client.Name, err, strings.TrimSpace(stderr))
	}
	replies := parseReplies(out)
	if len(replies) != n {
		return nil, fmt.Errorf("curl in %s printed %d of %d status lines: %s", client.Name, len(replies), n, truncate(out+stderr, 200))
	}
	return replies, nil
}

// CheckReachedClusters sends requests from the curl pod of every cluster to helloworld and checks, with
// the semantics of Istio's check.ReachedClusters, that every network of the mesh is reached and, within
// the caller's own network, every cluster (other networks are judged per network, since their gateway
// balances among their clusters), that every reply is a 2xx, and that no other mesh answers.
func CheckReachedClusters(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.cannot("no way to run commands in pods")
		return v
	}
	owners, err := t.helloOwners(ctx)
	if err != nil {
		v.cannot("%v", err)
		return v
	}
	for _, client := range t.Scenario.Clusters {
		want := mesh(t, client.Mesh)
		n := 10 * len(want)
		replies, err := t.sendHello(ctx, client, n)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		reached := reachedBy(replies, owners)
		v.saw("from %s: %d requests reached %v", client.Name, n, reached)
		if bad := failedReplies(replies); bad != "" {
			v.fail("requests from %s to helloworld failed: %s", client.Name, bad)
		}
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
		v.cannot("no way to run commands in pods")
		return v
	}
	for _, client := range t.Scenario.Clusters {
		if exporter := t.exportedByOther(client, "httpbin"); exporter != "" {
			continue // httpbin lives in another mesh; CheckFederation covers it
		}
		pod, err := t.pod(ctx, client.Name, "curl")
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		out, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", requestLoop(1, "httpbin.sample:8000/headers"))
		if err != nil {
			v.cannot("running curl in %s/%s of %s: %v %s", pod.Namespace, pod.Name, client.Name, err, strings.TrimSpace(stderr))
			continue
		}
		replies := parseReplies(out)
		if len(replies) != 1 {
			v.cannot("curl in %s printed no status line: %s", client.Name, truncate(out+stderr, 200))
			continue
		}
		if bad := failedReplies(replies); bad != "" {
			v.fail("httpbin did not answer curl in %s: %s %s", client.Name, bad, strings.TrimSpace(stderr))
			continue
		}
		var body struct {
			Headers map[string][]string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(replies[0].body), &body); err != nil {
			v.fail("httpbin's answer to curl in %s is not JSON: %.200s", client.Name, replies[0].body)
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
// reset) or 52 (empty reply) with no HTTP status; any HTTP answer means STRICT is not enforced, and any
// other error (DNS, timeout, refused) leaves the check not judged, since the request never met the
// policy. It is a safety property: judged repeatedly over a window, a single answer fails it.
func CheckPlaintextRefused(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.cannot("no way to run commands in pods")
		return v
	}
	for _, client := range t.Scenario.Clusters {
		if t.exportedByOther(client, "httpbin") != "" {
			continue // httpbin lives in another mesh, behind its gateway's mTLS
		}
		pod, err := t.pod(ctx, client.Name, "curl-plain")
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		out, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", []string{"curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "httpbin.sample:8000/headers"})
		code := strings.TrimSpace(out)
		if err == nil || (code != "" && code != "000") {
			v.fail("httpbin answered a plaintext request from %s's curl-plain (HTTP %s): STRICT mTLS is not enforced (PeerAuthentication httpbin-strict missing, or a PERMISSIVE/DISABLE policy overrides it)", client.Name, code)
			continue
		}
		exit := ""
		if m := curlExitRE.FindStringSubmatch(stderr); m != nil {
			exit = m[1]
		}
		v.saw("from %s's curl-plain: %s", client.Name, strings.TrimSpace(stderr))
		if exit != "56" && exit != "52" {
			v.cannot("the plaintext request from %s's curl-plain failed before reaching httpbin's sidecar (%s%v): it proves nothing about STRICT", client.Name, strings.TrimSpace(stderr), errSuffix(stderr, err))
		}
	}
	return v
}

func errSuffix(stderr string, err error) string {
	if strings.TrimSpace(stderr) == "" && err != nil {
		return err.Error()
	}
	return ""
}

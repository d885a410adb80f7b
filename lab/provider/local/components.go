package local

import (
	"fmt"
	"math/bits"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"mclab.dev/mclab/lab/scenario"
)

// component is one process of a cluster's control plane.
type component struct {
	// name is the program and the record's name.
	name string
	// tier orders shutdown: higher tiers stop first (kwok and controllers, then the API server, then etcd).
	tier int
	// grace is how long shutdown waits after SIGTERM before SIGKILL.
	grace int
}

// Components in start order. The API server gets a short grace: it stays alive long after SIGTERM while
// watches are open (local lab recipe, gotcha 7).
var components = []component{
	{name: "etcd", tier: 0, grace: 5},
	{name: "kube-apiserver", tier: 1, grace: 3},
	{name: "kube-controller-manager", tier: 2, grace: 5},
	{name: "kube-scheduler", tier: 2, grace: 5},
	{name: "kwok", tier: 2, grace: 5},
}

// clusterLayout is where one cluster's files live under the lab's local directory.
type clusterLayout struct {
	dir string
}

func (l clusterLayout) pki() clusterPKI         { return clusterPKI{dir: filepath.Join(l.dir, "pki")} }
func (l clusterLayout) kubeconfig() string      { return filepath.Join(l.dir, "admin.kubeconfig") }
func (l clusterLayout) etcdData() string        { return filepath.Join(l.dir, "etcd") }
func (l clusterLayout) flexVolume() string      { return filepath.Join(l.dir, "flexvolume") }
func (l clusterLayout) kwokStages() string      { return filepath.Join(l.dir, "kwok-stages.yaml") }
func (l clusterLayout) log(name string) string  { return filepath.Join(l.dir, "logs", name+".log") }
func (l clusterLayout) proc(name string) string { return filepath.Join(l.dir, "run", name+".json") }

// portRef renders a port for a command line: the number once allocated, a placeholder in a plan made
// before allocation.
func portRef(ps Ports, name string) string {
	if p, ok := ps[name]; ok {
		return strconv.Itoa(p)
	}
	return "<" + name + "-port>"
}

// nodeCIDRMaskSize gives each node a /24 when the pod subnet allows it, else the largest block that
// still fits nodes nodes.
func nodeCIDRMaskSize(podSubnet string, nodes int) int {
	p, err := netip.ParsePrefix(podSubnet)
	if err != nil {
		return 24
	}
	need := p.Bits() + bits.Len(uint(max(nodes-1, 0)))
	return min(max(24, need), 30)
}

// args returns the command line of a component of cluster c. It is pure: `mclab plan` prints it and
// `mclab up` runs it.
func args(name string, c scenario.Cluster, l clusterLayout, ps Ports, opts scenario.LocalOptions) []string {
	pki := l.pki()
	loop := "127.0.0.1"
	etcdURL := "http://" + loop + ":" + portRef(ps, PortEtcdClient)
	peerURL := "http://" + loop + ":" + portRef(ps, PortEtcdPeer)
	kc := l.kubeconfig()
	switch name {
	case "etcd":
		return []string{
			"--name=" + c.Name, "--data-dir=" + l.etcdData(),
			"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
			"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=" + c.Name + "=" + peerURL,
			"--quota-backend-bytes=1073741824", "--log-level=warn",
			// A lab's etcd is disposable: skip fsync, as Istio's CI puts kind's etcd in tmpfs.
			"--unsafe-no-fsync",
		}
	case "kube-apiserver":
		return []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=" + loop, "--advertise-address=" + loop, "--secure-port=" + portRef(ps, PortAPIServer),
			"--tls-cert-file=" + pki.apiserverCert(), "--tls-private-key-file=" + pki.apiserverKey(),
			"--client-ca-file=" + pki.caCert(),
			"--requestheader-client-ca-file=" + pki.caCert(), "--requestheader-allowed-names=front-proxy-client",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + pki.saPub(), "--service-account-signing-key-file=" + pki.saKey(),
			"--service-cluster-ip-range=" + c.ServiceSubnet,
			"--authorization-mode=Node,RBAC", "--allow-privileged=true",
			// The API server advertises 127.0.0.1, which the endpoint reconciler refuses (recipe gotcha 2).
			"--endpoint-reconciler-type=none",
			"--profiling=false", "--v=1",
		}
	case "kube-controller-manager":
		return []string{
			"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--bind-address=" + loop, "--secure-port=" + portRef(ps, PortKCM),
			"--service-account-private-key-file=" + pki.saKey(), "--root-ca-file=" + pki.caCert(),
			"--cluster-cidr=" + c.PodSubnet, "--allocate-node-cidrs=true",
			"--node-cidr-mask-size=" + strconv.Itoa(nodeCIDRMaskSize(c.PodSubnet, nodesPerCluster(opts))),
			"--service-cluster-ip-range=" + c.ServiceSubnet, "--cluster-name=" + c.Name,
			"--leader-elect=false",
			"--controllers=" + strings.Join(kcmControllers, ","),
			// The default client limit (20 qps) made a burst of 1,000 pods take 50 s of pod creation and
			// deletion alone (mclab bench --scenario propagation --endpoints 1000); 100 qps: see the README.
			"--kube-api-qps=" + strconv.Itoa(labClientQPS), "--kube-api-burst=" + strconv.Itoa(2*labClientQPS),
			// Without it KCM creates /usr/libexec/kubernetes/... on the host (recipe gotcha 3).
			"--flex-volume-plugin-dir=" + l.flexVolume(),
			"--v=1",
		}
	case "kube-scheduler":
		return []string{
			"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
			"--bind-address=" + loop, "--secure-port=" + portRef(ps, PortScheduler),
			"--leader-elect=false", "--v=1",
			"--kube-api-qps=" + strconv.Itoa(labClientQPS), "--kube-api-burst=" + strconv.Itoa(2*labClientQPS),
		}
	case "kwok":
		return []string{
			"--kubeconfig=" + kc, "-c", l.kwokStages(),
			"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--server-address=" + loop + ":" + portRef(ps, PortKwok),
			"--node-lease-duration-seconds=40",
		}
	}
	panic(fmt.Sprintf("unknown component %q", name))
}

// labClientQPS is the API request rate kube-controller-manager and kube-scheduler allow themselves (the
// defaults, 20 and 50, protect a shared production API server; a lab's is theirs alone).
const labClientQPS = 100

// kcmControllers are KCM's defaults without the controllers a lab has no use for (volumes, quotas,
// autoscaling, certificate signing, cron jobs, DRA): they cost CPU at start and nothing else.
var kcmControllers = []string{"*",
	"-persistentvolume-attach-detach-controller", "-persistentvolume-binder-controller", "-persistentvolume-expander-controller",
	"-persistentvolume-protection-controller", "-persistentvolumeclaim-protection-controller", "-ephemeral-volume-controller",
	"-volumeattributesclass-protection-controller", "-horizontal-pod-autoscaler-controller", "-resourcequota-controller",
	"-certificatesigningrequest-approving-controller", "-certificatesigningrequest-cleaner-controller",
	"-certificatesigningrequest-signing-controller", "-cronjob-controller", "-ttl-after-finished-controller",
	"-storage-version-migrator-controller", "-storageversion-garbage-collector-controller", "-resourceclaim-controller",
	"-device-taint-eviction-controller", "-resourcepoolstatusrequest-controller", "-validatingadmissionpolicy-status-controller",
	"-kube-apiserver-serving-clustertrustbundle-publisher-controller", "-podcertificaterequest-cleaner-controller",
	"-legacy-serviceaccount-token-cleaner-controller",
}

// env returns a component's environment: nothing from the user's shell but PATH, and HOME set to the
// cluster's directory so that no program writes into the user's home.
func env(name string, l clusterLayout, opts scenario.LocalOptions) []string {
	e := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + l.dir, "TMPDIR=" + filepath.Join(l.dir, "tmp"), "GOMAXPROCS=2"}
	if name == "kube-apiserver" {
		gogc := scenario.DefaultAPIServerGOGC
		if opts.APIServerGOGC != nil {
			gogc = *opts.APIServerGOGC
		}
		if gogc > 0 {
			e = append(e, "GOGC="+strconv.Itoa(gogc))
		}
	}
	return e
}

func nodesPerCluster(opts scenario.LocalOptions) int {
	if opts.NodesPerCluster > 0 {
		return opts.NodesPerCluster
	}
	return 1
}

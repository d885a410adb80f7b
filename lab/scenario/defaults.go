package scenario

import (
	"fmt"
	"net/netip"
)

// DefaultIstioVersion is the Istio built into mclab: the pinned istio.io/istio module (master, 1.31
// development), whose charts are embedded and whose pilot-discovery the local provider runs.
const DefaultIstioVersion = "1.31-dev"

// DefaultExportedHost is what the first mesh of a federated scenario exports unless told otherwise.
const DefaultExportedHost = "httpbin.sample.svc.cluster.local"

// DefaultTrustDomain is Istio's default trust domain.
const DefaultTrustDomain = "cluster.local"

// DefaultAPIServerGOGC is the GOGC the local provider gives kube-apiserver: Go's default. GOGC=50 (the
// recipe's trim) saves about 30 MiB per cluster but costs about 1 s of start-up CPU for 3 clusters on 2
// cores (BenchmarkUp); scenarios can set provider.local.apiServerGOGC.
const DefaultAPIServerGOGC = 100

// Default fills in every field left empty, in place: provider auto, model multi-primary, one mesh,
// networks, regions and zones by cluster position, and pod and Service subnets that overlap neither each
// other nor any subnet the scenario gives. It is idempotent. Subnets that cannot be parsed are left for
// Validate to report.
func (s *Scenario) Default() {
	if s.APIVersion == "" {
		s.APIVersion = APIVersion
	}
	if s.Kind == "" {
		s.Kind = Kind
	}
	if s.Provider.Name == "" {
		s.Provider.Name = ProviderAuto
	}
	if s.Istio.Model == "" {
		s.Istio.Model = MultiPrimary
	}
	if s.Istio.Version == "" {
		s.Istio.Version = DefaultIstioVersion
	}
	if len(s.Meshes) == 0 {
		s.Meshes = []Mesh{{ID: "mesh1"}}
	}
	if s.Istio.Model == Federated {
		if s.Istio.Federation == nil {
			s.Istio.Federation = &Federation{}
		}
		if s.Istio.Federation.Trust == "" {
			s.Istio.Federation.Trust = TrustCACertificates
		}
		if f := s.Istio.Federation; f.Exports == nil || f.exportsDefaulted {
			f.Exports, f.exportsDefaulted = []Export{{Mesh: s.Meshes[0].ID, Hosts: []string{DefaultExportedHost}}}, true
			if !HasSidecarSamples(s) {
				// Nothing by default without the sidecar samples: the proxyless echo app runs in every
				// cluster (it is also the client), so importing it would shadow each mesh's own echo, and
				// proxyless gRPC cannot cross east-west gateways anyway (it sets no SNI). Such a lab
				// federates trust, and its meshes must stay apart.
				f.Exports = []Export{}
			}
		}
	}
	for i := range s.Meshes {
		if s.Meshes[i].TrustDomain == "" {
			if s.Istio.Model == Federated && len(s.Meshes) > 1 {
				s.Meshes[i].TrustDomain = s.Meshes[i].ID + ".local"
			} else {
				s.Meshes[i].TrustDomain = DefaultTrustDomain
			}
		}
	}
	for i := range s.Clusters {
		c := &s.Clusters[i]
		n := i + 1
		if c.Name == "" {
			c.Name = fmt.Sprintf("c%d", n)
		}
		if c.Network == "" {
			c.Network = "network1"
		}
		if c.Region == "" {
			c.Region = fmt.Sprintf("region%d", n)
		}
		if c.Zone == "" {
			c.Zone = fmt.Sprintf("zone%d", n)
		}
		if c.Role == "" {
			c.Role = Primary
		}
		if c.Mesh == "" {
			c.Mesh = s.Meshes[0].ID
		}
	}
	s.allocateSubnets()
}

// allocateSubnets gives every cluster without a pod or Service subnet the first candidate, in Istio's
// own layout (pods 10.N0.0.0/16, Services 10.255.N0.0/24), that overlaps nothing already taken.
func (s *Scenario) allocateSubnets() {
	var taken []netip.Prefix
	for _, c := range s.Clusters {
		for _, sub := range []string{c.PodSubnet, c.ServiceSubnet} {
			if p, err := netip.ParsePrefix(sub); err == nil {
				taken = append(taken, p.Masked())
			}
		}
	}
	next := func(candidates func(i int) (netip.Prefix, bool)) string {
		for i := 0; ; i++ {
			p, ok := candidates(i)
			if !ok {
				return ""
			}
			if !overlapsAny(p, taken) {
				taken = append(taken, p)
				return p.String()
			}
		}
	}
	for i := range s.Clusters {
		c := &s.Clusters[i]
		if c.PodSubnet == "" {
			c.PodSubnet = next(podCandidate)
		}
		if c.ServiceSubnet == "" {
			c.ServiceSubnet = next(serviceCandidate)
		}
	}
}

// podCandidate enumerates 10.10.0.0/16, 10.20.0.0/16, ... 10.250.0.0/16, then the /16s between them.
func podCandidate(i int) (netip.Prefix, bool) {
	b, ok := spread(i)
	if !ok || b == 255 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b, 0, 0}), 16), true
}

// serviceCandidate enumerates 10.255.10.0/24, 10.255.20.0/24, ... then the /24s between them.
func serviceCandidate(i int) (netip.Prefix, bool) {
	b, ok := spread(i)
	if !ok {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 255, b, 0}), 24), true
}

// spread maps 0,1,2,... to 10,20,...,250 and then to the remaining octets 1..254 in order.
func spread(i int) (byte, bool) {
	if i < 25 {
		return byte(10 * (i + 1)), true
	}
	i -= 25
	for b := 1; b < 255; b++ {
		if b%10 == 0 {
			continue
		}
		if i == 0 {
			return byte(b), true
		}
		i--
	}
	return 0, false
}

func overlapsAny(p netip.Prefix, taken []netip.Prefix) bool {
	for _, t := range taken {
		if p.Overlaps(t) {
			return true
		}
	}
	return false
}

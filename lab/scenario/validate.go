package scenario

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Error is a rejected scenario: every problem found, each naming its field and the fix, and the file
// (or built-in name) the scenario came from.
type Error struct {
	// Source is the file or built-in name the scenario came from.
	Source string
	// Errs are the problems, one per field.
	Errs field.ErrorList
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s is invalid (%d problem", e.Source, len(e.Errs))
	if len(e.Errs) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, fe := range e.Errs {
		fmt.Fprintf(&b, "\n  %s: %s", e.Source, fe.Error())
	}
	return b.String()
}

// Validate checks a defaulted scenario and returns an *Error listing every problem, or nil. source names
// the file the scenario came from and appears in every message.
func (s *Scenario) Validate(source string) error {
	var errs field.ErrorList
	if s.APIVersion != APIVersion {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), s.APIVersion, "set apiVersion: "+APIVersion))
	}
	if s.Kind != Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), s.Kind, "set kind: "+Kind))
	}
	errs = append(errs, dns1123(field.NewPath("name"), s.Name)...)
	if !slices.Contains(Providers, s.Provider.Name) {
		errs = append(errs, field.NotSupported(field.NewPath("provider", "name"), s.Provider.Name, Providers))
	}
	if s.Istio.Samples != "" && !slices.Contains(SampleSets, s.Istio.Samples) {
		errs = append(errs, field.NotSupported(field.NewPath("istio", "samples"), s.Istio.Samples, SampleSets))
	}
	if e := s.Istio.ExposeIstiod; e != "" && !slices.Contains(ExposeIstiodValues, e) {
		errs = append(errs, field.NotSupported(field.NewPath("istio", "exposeIstiod"), e, ExposeIstiodValues))
	}
	errs = append(errs, s.validateEnvoyless()...)
	if !slices.Contains(Models, s.Istio.Model) {
		errs = append(errs, field.NotSupported(field.NewPath("istio", "model"), s.Istio.Model, Models))
	}
	errs = append(errs, s.validateMeshes()...)
	errs = append(errs, s.validateClusters()...)
	errs = append(errs, s.validateSubnets()...)
	errs = append(errs, s.validateModel()...)
	errs = append(errs, s.validateImages()...)
	if len(errs) == 0 {
		return nil
	}
	return &Error{Source: source, Errs: errs}
}

func dns1123(p *field.Path, v string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, msg+"; use lower-case letters, digits and '-', e.g. "+suggestName(v)))
	}
	return errs
}

// suggestName turns v into a DNS-1123 label, for the fix in an error message.
func suggestName(v string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(v) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > validation.DNS1123LabelMaxLength {
		out = strings.Trim(out[:validation.DNS1123LabelMaxLength], "-")
	}
	if out == "" {
		return "c1"
	}
	return fmt.Sprintf("%q", out)
}

func (s *Scenario) validateMeshes() field.ErrorList {
	var errs field.ErrorList
	seen := map[string]int{}
	for i, m := range s.Meshes {
		p := field.NewPath("meshes").Index(i)
		if m.ID == "" {
			errs = append(errs, field.Required(p.Child("id"), "give every mesh an id, e.g. mesh1"))
		} else if j, dup := seen[m.ID]; dup {
			errs = append(errs, field.Duplicate(p.Child("id"), fmt.Sprintf("%s (also meshes[%d].id); give each mesh its own id", m.ID, j)))
		}
		seen[m.ID] = i
		for _, msg := range validation.IsDNS1123Subdomain(m.TrustDomain) {
			errs = append(errs, field.Invalid(p.Child("trustDomain"), m.TrustDomain, msg+"; use a DNS name such as cluster.local"))
		}
	}
	return errs
}

func (s *Scenario) validateClusters() field.ErrorList {
	var errs field.ErrorList
	if len(s.Clusters) == 0 {
		return append(errs, field.Required(field.NewPath("clusters"), "add at least one cluster, e.g. `clusters: [{name: c1}]`"))
	}
	names := map[string]int{}
	for i, c := range s.Clusters {
		p := field.NewPath("clusters").Index(i)
		errs = append(errs, dns1123(p.Child("name"), c.Name)...)
		if j, dup := names[c.Name]; dup {
			errs = append(errs, field.Duplicate(p.Child("name"), fmt.Sprintf("%s (also clusters[%d].name); rename one of them", c.Name, j)))
		} else {
			names[c.Name] = i
		}
		for _, msg := range validation.IsDNS1123Label(c.Network) {
			errs = append(errs, field.Invalid(p.Child("network"), c.Network, msg+"; use a name such as network1"))
		}
		if s.mesh(c.Mesh) == nil {
			errs = append(errs, field.Invalid(p.Child("mesh"), c.Mesh, "no mesh has this id; use one of meshes[].id ("+s.meshIDs()+") or add the mesh"))
		}
		switch c.Role {
		case Primary:
			if c.Primary != "" {
				errs = append(errs, field.Invalid(p.Child("primary"), c.Primary, "only a remote has a primary; remove it or set role: remote"))
			}
		case Remote:
			errs = append(errs, s.validateRemote(p, c)...)
		default:
			errs = append(errs, field.NotSupported(p.Child("role"), c.Role, []Role{Primary, Remote}))
		}
	}
	return errs
}

func (s *Scenario) validateRemote(p *field.Path, c Cluster) field.ErrorList {
	if c.Primary == "" {
		return field.ErrorList{field.Required(p.Child("primary"), fmt.Sprintf("a remote needs the primary that serves it: set primary to one of %s", s.primaryNames(c.Mesh)))}
	}
	pc := s.Cluster(c.Primary)
	switch {
	case pc == nil:
		return field.ErrorList{field.Invalid(p.Child("primary"), c.Primary, "no cluster has this name; set primary to one of "+s.primaryNames(c.Mesh))}
	case pc.Role != Primary:
		return field.ErrorList{field.Invalid(p.Child("primary"), c.Primary, "that cluster is a remote; a remote's primary must have role: primary")}
	case pc.Mesh != c.Mesh:
		return field.ErrorList{field.Invalid(p.Child("primary"), c.Primary,
			fmt.Sprintf("that primary is in mesh %q but this cluster is in mesh %q; choose a primary of the same mesh (%s) or move the cluster", pc.Mesh, c.Mesh, s.primaryNames(c.Mesh)))}
	}
	return nil
}

func (s *Scenario) primaryNames(mesh string) string {
	var out []string
	for _, c := range s.Clusters {
		if c.Role == Primary && c.Mesh == mesh {
			out = append(out, c.Name)
		}
	}
	if len(out) == 0 {
		return "(none: add a cluster with role: primary to mesh " + mesh + ")"
	}
	return strings.Join(out, ", ")
}

type namedPrefix struct {
	path   *field.Path
	prefix netip.Prefix
}

func (s *Scenario) validateSubnets() field.ErrorList {
	var errs field.ErrorList
	var all []namedPrefix
	for i, c := range s.Clusters {
		p := field.NewPath("clusters").Index(i)
		for _, f := range []struct {
			name, value string
		}{{"podSubnet", c.PodSubnet}, {"serviceSubnet", c.ServiceSubnet}} {
			fp := p.Child(f.name)
			if f.value == "" {
				errs = append(errs, field.Required(fp, "no free subnet was left to allocate; give one explicitly"))
				continue
			}
			pre, err := netip.ParsePrefix(f.value)
			if err != nil {
				errs = append(errs, field.Invalid(fp, f.value, "not a CIDR; write it like 10.10.0.0/16, or omit it to have one allocated"))
				continue
			}
			if pre != pre.Masked() {
				errs = append(errs, field.Invalid(fp, f.value, fmt.Sprintf("host bits are set; did you mean %s?", pre.Masked())))
				continue
			}
			for _, o := range all {
				if pre.Overlaps(o.prefix) {
					errs = append(errs, field.Invalid(fp, f.value, fmt.Sprintf("overlaps %s (%s); choose a subnet that overlaps no other, or omit it to have one allocated", o.path, o.prefix)))
				}
			}
			all = append(all, namedPrefix{fp, pre})
		}
	}
	return errs
}

func (s *Scenario) validateModel() field.ErrorList {
	var errs field.ErrorList
	model := field.NewPath("istio", "model")
	switch s.Istio.Model {
	case MultiPrimary:
		for i, c := range s.Clusters {
			if c.Role == Remote {
				errs = append(errs, field.Invalid(field.NewPath("clusters").Index(i).Child("role"), c.Role,
					"model multi-primary has no remotes; set istio.model: primary-remote (primaries and remotes may mix) or role: primary"))
			}
		}
	case PrimaryRemote:
		primaries, remotes := 0, 0
		for _, c := range s.Clusters {
			if c.Role == Primary {
				primaries++
			} else {
				remotes++
			}
		}
		if primaries == 0 {
			errs = append(errs, field.Invalid(model, s.Istio.Model, "primary-remote needs at least one cluster with role: primary"))
		}
		if remotes == 0 {
			errs = append(errs, field.Invalid(model, s.Istio.Model, "primary-remote needs at least one cluster with role: remote; or use multi-primary"))
		}
	case Federated:
		used := map[string]bool{}
		for _, c := range s.Clusters {
			used[c.Mesh] = true
		}
		if len(s.Meshes) < 2 || len(used) < 2 {
			errs = append(errs, field.Invalid(model, s.Istio.Model,
				fmt.Sprintf("federated needs at least two meshes with clusters in each (have %d mesh(es) in use); add a second mesh and set clusters[].mesh", len(used))))
		}
	}
	errs = append(errs, s.validateFederation()...)
	for _, m := range s.Meshes {
		has := false
		for _, c := range s.Clusters {
			if c.Mesh == m.ID && c.Role == Primary {
				has = true
			}
		}
		if !has && m.ID != "" {
			errs = append(errs, field.Invalid(field.NewPath("meshes").Key(m.ID), m.ID, "this mesh has no primary cluster; give it one with clusters[].mesh and role: primary, or remove the mesh"))
		}
	}
	return errs
}

func (s *Scenario) meshIDs() string {
	ids := make([]string, 0, len(s.Meshes))
	for _, m := range s.Meshes {
		ids = append(ids, m.ID)
	}
	return strings.Join(ids, ", ")
}

func (s *Scenario) validateFederation() field.ErrorList {
	f := s.Istio.Federation
	p := field.NewPath("istio", "federation")
	if f == nil {
		return nil
	}
	if s.Istio.Model != Federated {
		return field.ErrorList{field.Invalid(p, "", "federation applies to istio.model: federated only; remove it or set the model")}
	}
	var errs field.ErrorList
	if f.Trust != TrustCACertificates && f.Trust != TrustSharedRoot {
		errs = append(errs, field.NotSupported(p.Child("trust"), f.Trust, []Trust{TrustCACertificates, TrustSharedRoot}))
	}
	for i, e := range f.Exports {
		ep := p.Child("exports").Index(i)
		if s.mesh(e.Mesh) == nil {
			errs = append(errs, field.Invalid(ep.Child("mesh"), e.Mesh, "no mesh has this id; use one of "+s.meshIDs()))
		}
		if len(e.Hosts) == 0 {
			errs = append(errs, field.Required(ep.Child("hosts"), "name the exported services, e.g. "+DefaultExportedHost))
		}
		for j, h := range e.Hosts {
			for _, msg := range validation.IsDNS1123Subdomain(h) {
				errs = append(errs, field.Invalid(ep.Child("hosts").Index(j), h, msg+"; use a Service hostname such as "+DefaultExportedHost))
			}
		}
	}
	return errs
}

// Cluster returns the named cluster, or nil.
func (s *Scenario) Cluster(name string) *Cluster {
	for i := range s.Clusters {
		if s.Clusters[i].Name == name {
			return &s.Clusters[i]
		}
	}
	return nil
}

func (s *Scenario) mesh(id string) *Mesh {
	for i := range s.Meshes {
		if s.Meshes[i].ID == id {
			return &s.Meshes[i]
		}
	}
	return nil
}

// Mesh returns the mesh the named cluster belongs to, or nil.
func (s *Scenario) Mesh(cluster string) *Mesh {
	if c := s.Cluster(cluster); c != nil {
		return s.mesh(c.Mesh)
	}
	return nil
}

// validateImages checks Istio's image hub and tag and the kind provider's image options.
func (s *Scenario) validateImages() field.ErrorList {
	var errs field.ErrorList
	if v := s.Istio.Version; v != "" && v != DefaultIstioVersion {
		if _, err := semver.StrictNewVersion(v); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("istio", "version"), v, "give a published Istio release such as 1.30.1 (MAJOR.MINOR.PATCH, as in Istio's chart repository), or "+DefaultIstioVersion+" for the Istio built into mclab"))
		}
	}
	for i, c := range s.Clusters {
		if c.IstioVersion == "" || c.IstioVersion == s.Istio.Version {
			continue
		}
		p := field.NewPath("clusters").Index(i).Child("istioVersion")
		cv, err := semver.StrictNewVersion(c.IstioVersion)
		if err != nil {
			errs = append(errs, field.Invalid(p, c.IstioVersion, "give a published Istio release such as 1.30.1, or leave it out to run istio.version"))
			continue
		}
		lab := s.Istio.Version
		if lab == "" || lab == DefaultIstioVersion {
			lab = strings.TrimSuffix(DefaultIstioVersion, "-dev") + ".0-dev"
		}
		if lv, err := semver.NewVersion(lab); err == nil {
			if cv.Major() != lv.Major() || max(cv.Minor(), lv.Minor())-min(cv.Minor(), lv.Minor()) > 1 {
				errs = append(errs, field.Invalid(p, c.IstioVersion, fmt.Sprintf("Istio supports control planes one minor version apart at most; istio.version is %s", s.Istio.Version)))
			}
		}
		if OfflineImages(s) {
			errs = append(errs, field.Invalid(p, c.IstioVersion, "offline images are built from the built-in Istio only; drop provider.kind.offlineImages to pull "+c.IstioVersion+"'s images"))
		}
	}
	if v := s.Istio.Version; v != "" && v != DefaultIstioVersion && OfflineImages(s) {
		errs = append(errs, field.Invalid(field.NewPath("provider", "kind", "offlineImages"), true, "offline images are built from the source of the built-in Istio "+DefaultIstioVersion+", so they would pair its pilot with the charts of "+v+"; drop offlineImages (--offline-images) to pull "+v+"'s own images, or install "+DefaultIstioVersion))
	}
	if r := s.Istio.ChartRepository; r != "" {
		if u, err := url.Parse(r); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, field.Invalid(field.NewPath("istio", "chartRepository"), r, "give a Helm chart repository URL (http or https), e.g. https://istio-release.storage.googleapis.com/charts"))
		} else if s.Istio.Version == DefaultIstioVersion && !slices.ContainsFunc(s.Clusters, func(c Cluster) bool { return c.IstioVersion != "" && c.IstioVersion != DefaultIstioVersion }) {
			errs = append(errs, field.Invalid(field.NewPath("istio", "chartRepository"), r, "the built-in "+DefaultIstioVersion+" uses the charts built into mclab; set istio.version (--istio-version) to a release to take charts from a repository"))
		}
	}
	if h := s.Istio.Hub; h != "" && (strings.ContainsAny(h, " \t@") || strings.HasSuffix(h, "/") || strings.Contains(h, "://")) {
		errs = append(errs, field.Invalid(field.NewPath("istio", "hub"), h, "give a registry and path without scheme or trailing slash, e.g. docker.io/istio"))
	}
	if t := s.Istio.Tag; t != "" && !imageTag.MatchString(t) {
		errs = append(errs, field.Invalid(field.NewPath("istio", "tag"), t, "give an image tag such as 1.28.0 (letters, digits, '.', '_', '-'; at most 128)"))
	}
	if k := s.Provider.Kind; k != nil {
		p := field.NewPath("provider", "kind")
		if k.OfflineImages && k.PreloadImages {
			errs = append(errs, field.Invalid(p.Child("offlineImages"), true, "offlineImages builds the images preloadImages would pull; set only one"))
		}
		if !slices.Contains([]string{"", KindLBMetalLB, KindLBCloudProviderKind, KindLBNone}, k.LoadBalancer) {
			errs = append(errs, field.NotSupported(p.Child("loadBalancer"), k.LoadBalancer, []string{KindLBMetalLB, KindLBCloudProviderKind, KindLBNone}))
		}
		if k.Workers < 0 || k.Workers > 10 {
			errs = append(errs, field.Invalid(p.Child("workers"), k.Workers, "give 0 to 10 workers per cluster"))
		}
		for reg, ep := range k.RegistryMirrors {
			if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
				errs = append(errs, field.Invalid(p.Child("registryMirrors").Key(reg), ep, "give the mirror as a URL, e.g. http://registry-mirror:5000"))
			}
			if reg == "" || strings.Contains(reg, "/") {
				errs = append(errs, field.Invalid(p.Child("registryMirrors"), reg, "key by registry host, e.g. docker.io"))
			}
		}
	}
	return errs
}

// Load-balancer implementations of the kind provider.
const (
	KindLBMetalLB           = "metallb"
	KindLBCloudProviderKind = "cloud-provider-kind"
	// KindLBNone installs nothing: LoadBalancer Services stay pending (clusters-only labs, or your own
	// implementation).
	KindLBNone = "none"
)

var imageTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// validateEnvoyless rejects what cannot run on offline images, whose proxyv2 has pilot-agent but no
// Envoy (Envoy cannot be built from source here): sidecar samples, and istiod exposed to remotes
// through the east-west gateway; and a LoadBalancer in front of istiod where istiod is not in a
// cluster.
func (s *Scenario) validateEnvoyless() field.ErrorList {
	var errs field.ErrorList
	if OfflineImages(s) {
		if set := s.Istio.Samples; set == SamplesSidecar || set == SamplesAll {
			errs = append(errs, field.Invalid(field.NewPath("istio", "samples"), set, "sidecar samples run Envoy, which provider.kind.offlineImages does not build (its proxyv2 holds pilot-agent only); use samples: proxyless (gRPC without Envoy) or none, or drop offlineImages where images can be pulled"))
		}
		if s.Istio.ExposeIstiod == ExposeEastWestGateway && HasRemotes(s) {
			errs = append(errs, field.Invalid(field.NewPath("istio", "exposeIstiod"), ExposeEastWestGateway, "the east-west gateway runs Envoy, which provider.kind.offlineImages does not build; use exposeIstiod: loadBalancer (the default with offline images)"))
		}
	}
	if s.Istio.ExposeIstiod == ExposeLoadBalancer && s.Provider.Name == ProviderLocal {
		errs = append(errs, field.Invalid(field.NewPath("istio", "exposeIstiod"), ExposeLoadBalancer, "istiod runs as a host process on provider local and is reached by its remotes through the lab's gateway address; remove exposeIstiod or use provider kind or existing"))
	}
	return errs
}

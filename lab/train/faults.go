package train

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/pki"
)

// Fault is one typed change to a cluster of the lab. Every type records the whole object before
// changing it (see Session), so its inverse is the same for all: put the object back as it was.
type Fault struct {
	// Type is one of FaultTypes.
	Type string `json:"type"`
	// Cluster is where the object is (a template, e.g. "{{.Target}}").
	Cluster string `json:"cluster"`
	// Ref is the object, Kind/namespace/name or Kind/name for cluster-scoped kinds (a template).
	Ref string `json:"ref"`
	// Key is the label (RemoveLabel, SetLabel) or the Secret data key (RenameSecretKey).
	Key string `json:"key,omitempty"`
	// Value is the label value (SetLabel), the new data key (RenameSecretKey) or the API server URL
	// (SetRemoteSecretServer).
	Value string `json:"value,omitempty"`
	// Replicas is the scale (Scale).
	Replicas *int64 `json:"replicas,omitempty"`
	// Patch is a JSON merge patch (RFC 7386) of the object (Patch); its strings are templates.
	Patch map[string]any `json:"patch,omitempty"`
	// Subresource is "status" to patch the status (Patch), as a controller would write it.
	Subresource string `json:"subresource,omitempty"`
	// Object is the whole manifest to create or replace (Apply); its strings are templates.
	Object map[string]any `json:"object,omitempty"`
}

// The fault primitives.
const (
	// Delete deletes the object.
	FaultDelete = "Delete"
	// RemoveLabel removes a label.
	FaultRemoveLabel = "RemoveLabel"
	// SetLabel sets a label to a value.
	FaultSetLabel = "SetLabel"
	// RenameSecretKey moves a Secret's data key to another name (a remote secret whose key is not the
	// cluster's name).
	FaultRenameSecretKey = "RenameSecretKey"
	// SetRemoteSecretServer points every cluster of the kubeconfigs in a Secret at another server.
	FaultSetRemoteSecretServer = "SetRemoteSecretServer"
	// Scale sets a Deployment's replicas.
	FaultScale = "Scale"
	// SetRemoteSecretToken replaces the bearer token of every user of the kubeconfigs in a Secret (a
	// revoked or rotated token).
	FaultSetRemoteSecretToken = "SetRemoteSecretToken"
	// SetRemoteSecretCA replaces the certificate-authority-data of every cluster of the kubeconfigs in a
	// Secret with a CA made at injection that signed nothing (an API server certificate not trusted).
	FaultSetRemoteSecretCA = "SetRemoteSecretCA"
	// Patch applies a JSON merge patch to the object or, with subresource status, to its status.
	FaultPatch = "Patch"
	// Apply creates the object from a manifest, or replaces it (a DestinationRule that should not be
	// there, a conflicting Gateway); reset deletes what did not exist before.
	FaultApply = "Apply"
)

// FaultTypes lists the primitives.
func FaultTypes() []string {
	return []string{FaultDelete, FaultRemoveLabel, FaultSetLabel, FaultRenameSecretKey, FaultSetRemoteSecretServer, FaultSetRemoteSecretToken, FaultSetRemoteSecretCA, FaultScale, FaultPatch, FaultApply}
}

// kinds are the object kinds faults may touch, with their resource and scope.
var kinds = map[string]struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}{
	"Secret":                       {schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	"ConfigMap":                    {schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
	"Service":                      {schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
	"Namespace":                    {schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, false},
	"Deployment":                   {schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true},
	"ClusterRoleBinding":           {schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}, false},
	"Gateway":                      {schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}, true},
	"PeerAuthentication":           {schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}, true},
	"DestinationRule":              {schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}, true},
	"ServiceEntry":                 {schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}, true},
	"WorkloadEntry":                {schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"}, true},
	"EndpointSlice":                {schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, true},
	"MutatingWebhookConfiguration": {schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}, false},
}

func kindNames() []string {
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ObjectRef is a parsed Ref.
type ObjectRef struct {
	Kind, Namespace, Name string
}

func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// ParseRef parses Kind/namespace/name or Kind/name.
func ParseRef(ref string) (ObjectRef, error) {
	parts := strings.Split(ref, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return ObjectRef{}, fmt.Errorf("want Kind/namespace/name or Kind/name, e.g. Secret/istio-system/cacerts")
	}
	k, ok := kinds[parts[0]]
	if !ok {
		return ObjectRef{}, fmt.Errorf("kind %q is not one faults can touch (%s)", parts[0], strings.Join(kindNames(), ", "))
	}
	if k.namespaced != (len(parts) == 3) {
		if k.namespaced {
			return ObjectRef{}, fmt.Errorf("%s is namespaced: write %s/<namespace>/<name>", parts[0], parts[0])
		}
		return ObjectRef{}, fmt.Errorf("%s is cluster-scoped: write %s/<name>", parts[0], parts[0])
	}
	r := ObjectRef{Kind: parts[0], Name: parts[len(parts)-1]}
	if len(parts) == 3 {
		r.Namespace = parts[1]
	}
	if r.Name == "" {
		return ObjectRef{}, fmt.Errorf("the name is empty")
	}
	return r, nil
}

func (f Fault) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !slices.Contains(FaultTypes(), f.Type) {
		errs = append(errs, field.NotSupported(p.Child("type"), f.Type, FaultTypes()))
	}
	errs = append(errs, checkTemplate(p.Child("cluster"), f.Cluster, true)...)
	errs = append(errs, checkTemplate(p.Child("ref"), f.Ref, true)...)
	if ref, err := render(f.Ref, sampleTargets); err == nil && f.Ref != "" {
		r, err := ParseRef(ref)
		if err != nil {
			errs = append(errs, field.Invalid(p.Child("ref"), f.Ref, err.Error()))
		} else {
			switch f.Type {
			case FaultRenameSecretKey, FaultSetRemoteSecretServer, FaultSetRemoteSecretToken, FaultSetRemoteSecretCA:
				if r.Kind != "Secret" {
					errs = append(errs, field.Invalid(p.Child("ref"), f.Ref, f.Type+" changes a Secret"))
				}
			case FaultScale:
				if r.Kind != "Deployment" {
					errs = append(errs, field.Invalid(p.Child("ref"), f.Ref, "Scale changes a Deployment"))
				}
			}
		}
	}
	switch f.Type {
	case FaultRemoveLabel, FaultSetLabel:
		if f.Key == "" {
			errs = append(errs, field.Required(p.Child("key"), "name the label, e.g. topology.istio.io/network"))
		}
		if f.Type == FaultSetLabel && f.Value == "" {
			errs = append(errs, field.Required(p.Child("value"), "give the label's value"))
		}
	case FaultRenameSecretKey:
		if f.Key == "" || f.Value == "" {
			errs = append(errs, field.Required(p.Child("key"), "give key (the data key, e.g. {{.Target}}) and value (its new name)"))
		}
	case FaultSetRemoteSecretServer:
		if !strings.HasPrefix(f.Value, "https://") {
			errs = append(errs, field.Invalid(p.Child("value"), f.Value, "give the API server URL, e.g. https://192.0.2.1:6443 (unreachable) or https://127.0.0.1:6443 (loopback)"))
		}
	case FaultSetRemoteSecretToken:
		if f.Value == "" {
			errs = append(errs, field.Required(p.Child("value"), "give the token that replaces the reader's, e.g. revoked"))
		}
	case FaultScale:
		if f.Replicas == nil || *f.Replicas < 0 {
			errs = append(errs, field.Required(p.Child("replicas"), "give replicas >= 0"))
		}
	case FaultPatch:
		if len(f.Patch) == 0 {
			errs = append(errs, field.Required(p.Child("patch"), "give the merge patch, e.g. {metadata: {labels: {app: other}}}"))
		} else if _, err := f.renderPatch(sampleTargets); err != nil {
			errs = append(errs, field.Invalid(p.Child("patch"), f.Patch, err.Error()))
		}
		if f.Subresource != "" && f.Subresource != "status" {
			errs = append(errs, field.NotSupported(p.Child("subresource"), f.Subresource, []string{"status"}))
		}
	}
	if f.Type == FaultApply {
		if len(f.Object) == 0 {
			errs = append(errs, field.Required(p.Child("object"), "give the manifest to create, with apiVersion, kind and metadata"))
		} else if o, err := f.renderObject(sampleTargets); err != nil {
			errs = append(errs, field.Invalid(p.Child("object"), "", err.Error()))
		} else if ref, err := render(f.Ref, sampleTargets); err == nil {
			if r, err := ParseRef(ref); err == nil && (o.GetKind() != r.Kind || o.GetName() != r.Name || o.GetNamespace() != r.Namespace) {
				errs = append(errs, field.Invalid(p.Child("object"), o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName(), "the manifest must be the object ref names ("+ref+"): set its kind, metadata.namespace and metadata.name"))
			}
		}
	} else if len(f.Object) > 0 {
		errs = append(errs, field.Forbidden(p.Child("object"), "object is for type Apply"))
	}
	if f.Type != FaultPatch && (len(f.Patch) > 0 || f.Subresource != "") {
		errs = append(errs, field.Forbidden(p.Child("patch"), "patch and subresource are for type Patch"))
	}
	return errs
}

// renderObject renders the manifest of Apply.
func (f Fault) renderObject(t Targets) (*unstructured.Unstructured, error) {
	raw, err := json.Marshal(f.Object)
	if err != nil {
		return nil, err
	}
	out, err := render(string(raw), t)
	if err != nil {
		return nil, err
	}
	o := &unstructured.Unstructured{}
	if err := o.UnmarshalJSON([]byte(out)); err != nil {
		return nil, fmt.Errorf("the manifest: %w", err)
	}
	if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
		return nil, fmt.Errorf("the manifest needs apiVersion, kind and metadata.name")
	}
	return o, nil
}

// renderPatch renders the patch's templates and returns it as JSON.
func (f Fault) renderPatch(t Targets) ([]byte, error) {
	raw, err := json.Marshal(f.Patch)
	if err != nil {
		return nil, err
	}
	out, err := render(string(raw), t)
	if err != nil {
		return nil, err
	}
	if !json.Valid([]byte(out)) {
		return nil, fmt.Errorf("the rendered patch is not JSON: %s", out)
	}
	return []byte(out), nil
}

// resource is the dynamic client of a ref's objects.
func resource(d dynamic.Interface, r ObjectRef) dynamic.ResourceInterface {
	k := kinds[r.Kind]
	if k.namespaced {
		return d.Resource(k.gvr).Namespace(r.Namespace)
	}
	return d.Resource(k.gvr)
}

// get returns the object, or nil when it does not exist.
func get(ctx context.Context, d dynamic.Interface, r ObjectRef) (*unstructured.Unstructured, error) {
	o, err := resource(d, r).Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return o, err
}

// apply performs the fault on obj (which exists, except for Delete of a missing object).
func (f Fault) apply(ctx context.Context, d dynamic.Interface, r ObjectRef, obj *unstructured.Unstructured, t Targets) error {
	if f.Type == FaultApply {
		want, err := f.renderObject(t)
		if err != nil {
			return err
		}
		if obj == nil {
			_, err = resource(d, r).Create(ctx, want, metav1.CreateOptions{FieldManager: "mclab-train"})
			return err
		}
		want.SetResourceVersion(obj.GetResourceVersion())
		_, err = resource(d, r).Update(ctx, want, metav1.UpdateOptions{FieldManager: "mclab-train"})
		return err
	}
	if obj == nil {
		return fmt.Errorf("%s does not exist", r)
	}
	value, err := render(f.Value, t)
	if err != nil {
		return err
	}
	key, err := render(f.Key, t)
	if err != nil {
		return err
	}
	obj = obj.DeepCopy()
	switch f.Type {
	case FaultDelete:
		return resource(d, r).Delete(ctx, r.Name, metav1.DeleteOptions{})
	case FaultRemoveLabel:
		labels := obj.GetLabels()
		delete(labels, key)
		obj.SetLabels(labels)
	case FaultSetLabel:
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[key] = value
		obj.SetLabels(labels)
	case FaultRenameSecretKey:
		data, _, _ := unstructured.NestedStringMap(obj.Object, "data")
		v, ok := data[key]
		if !ok {
			return fmt.Errorf("%s has no data key %q", r, key)
		}
		delete(data, key)
		data[value] = v
		if err := unstructured.SetNestedStringMap(obj.Object, data, "data"); err != nil {
			return err
		}
	case FaultSetRemoteSecretServer:
		if err := editKubeconfigs(obj, r, func(kc *clientcmdapi.Config) {
			for _, c := range kc.Clusters {
				c.Server = value
			}
		}); err != nil {
			return err
		}
	case FaultSetRemoteSecretToken:
		if err := editKubeconfigs(obj, r, func(kc *clientcmdapi.Config) {
			for _, u := range kc.AuthInfos {
				u.Token = value
			}
		}); err != nil {
			return err
		}
	case FaultSetRemoteSecretCA:
		other, err := pki.NewRoot("an unrelated CA made by mclab train", 2048)
		if err != nil {
			return err
		}
		if err := editKubeconfigs(obj, r, func(kc *clientcmdapi.Config) {
			for _, c := range kc.Clusters {
				c.CertificateAuthorityData = other.CertPEM
				c.CertificateAuthority = ""
				c.InsecureSkipTLSVerify = false
			}
		}); err != nil {
			return err
		}
	case FaultPatch:
		patch, err := f.renderPatch(t)
		if err != nil {
			return err
		}
		var sub []string
		if f.Subresource != "" {
			sub = []string{f.Subresource}
		}
		_, err = resource(d, r).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "mclab-train"}, sub...)
		return err
	case FaultScale:
		if err := unstructured.SetNestedField(obj.Object, *f.Replicas, "spec", "replicas"); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown fault type %q", f.Type)
	}
	_, err = resource(d, r).Update(ctx, obj, metav1.UpdateOptions{FieldManager: "mclab-train"})
	return err
}

// editKubeconfigs changes every kubeconfig in a Secret's data.
func editKubeconfigs(obj *unstructured.Unstructured, r ObjectRef, edit func(*clientcmdapi.Config)) error {
	data, _, _ := unstructured.NestedStringMap(obj.Object, "data")
	for k, v := range data {
		raw, err := decodeB64(v)
		if err != nil {
			return err
		}
		kc, err := clientcmd.Load(raw)
		if err != nil {
			return fmt.Errorf("%s data %q is not a kubeconfig: %w", r, k, err)
		}
		edit(kc)
		out, err := clientcmd.Write(*kc)
		if err != nil {
			return err
		}
		data[k] = encodeB64(out)
	}
	return unstructured.SetNestedStringMap(obj.Object, data, "data")
}

// restore puts the object back as pre (JSON of the object before the fault; "" when it did not
// exist): it updates the current object to pre's content, re-creates it, or deletes what a fault made.
func restore(ctx context.Context, d dynamic.Interface, r ObjectRef, pre json.RawMessage) error {
	cur, err := get(ctx, d, r)
	if err != nil {
		return err
	}
	if len(pre) == 0 || string(pre) == "null" {
		if cur == nil {
			return nil
		}
		return resource(d, r).Delete(ctx, r.Name, metav1.DeleteOptions{})
	}
	want := &unstructured.Unstructured{}
	if err := want.UnmarshalJSON(pre); err != nil {
		return err
	}
	status, hasStatus := want.Object["status"]
	clean(want)
	switch {
	case cur == nil:
		if cur, err = resource(d, r).Create(ctx, want, metav1.CreateOptions{FieldManager: "mclab-train"}); err != nil {
			return err
		}
	case !sameContent(cur, want):
		want.SetResourceVersion(cur.GetResourceVersion())
		if cur, err = resource(d, r).Update(ctx, want, metav1.UpdateOptions{FieldManager: "mclab-train"}); err != nil {
			return err
		}
	}
	// A status a controller wrote (a LoadBalancer's address) is put back through the status
	// subresource.
	if statusKinds[r.Kind] && hasStatus && !reflect.DeepEqual(cur.Object["status"], status) {
		cur.Object["status"] = status
		_, err = resource(d, r).UpdateStatus(ctx, cur, metav1.UpdateOptions{FieldManager: "mclab-train"})
	}
	return err
}

// statusKinds are the kinds whose status is part of what faults change and snapshots compare (a
// Service's load-balancer address); other kinds' status is their controllers' to write.
var statusKinds = map[string]bool{"Service": true}

// clean strips what the API server owns, so a pre-image can be created again.
func clean(o *unstructured.Unstructured) {
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "status")
}

// content is what a snapshot compares: labels, annotations (less the ones controllers write), data and
// spec.
func content(o *unstructured.Unstructured) map[string]any {
	ann := o.GetAnnotations()
	for k := range ann {
		if k == "deployment.kubernetes.io/revision" || k == "kubectl.kubernetes.io/last-applied-configuration" {
			delete(ann, k)
		}
	}
	out := map[string]any{"labels": o.GetLabels(), "annotations": ann}
	if statusKinds[o.GetKind()] {
		out["status"] = o.Object["status"]
	}
	for _, k := range []string{"data", "stringData", "spec", "subjects", "roleRef", "type", "endpoints", "ports", "addressType", "webhooks"} {
		if v, ok := o.Object[k]; ok {
			out[k] = v
		}
	}
	if len(o.GetLabels()) == 0 {
		out["labels"] = nil
	}
	if len(ann) == 0 {
		out["annotations"] = nil
	}
	return out
}

func sameContent(a, b *unstructured.Unstructured) bool {
	return reflect.DeepEqual(content(a), content(b))
}

// diffContent names the top-level parts of content that differ.
func diffContent(a, b *unstructured.Unstructured) []string {
	ca, cb := content(a), content(b)
	var out []string
	for k := range ca {
		if !reflect.DeepEqual(ca[k], cb[k]) {
			out = append(out, k)
		}
	}
	for k := range cb {
		if _, ok := ca[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Package kube applies manifests to a cluster the way `kubectl apply --server-side` does, without
// kubectl: multi-document YAML is decoded to unstructured objects, mapped to resources through
// discovery, and applied with server-side apply under mclab's field manager. CRDs are applied first and
// waited for, so custom resources in the same manifest apply on the first try.
package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// FieldManager is the server-side apply field manager of everything mclab applies.
const FieldManager = "mclab"

// Client talks to one cluster.
type Client struct {
	// Name is the cluster's name, for messages.
	Name string
	// Config is the REST config.
	Config *rest.Config
	// Kube is the typed clientset.
	Kube kubernetes.Interface
	// Dynamic is the dynamic client.
	Dynamic dynamic.Interface
	// DryRun makes every apply a server-side dry run: validated and admitted, not persisted.
	DryRun bool
	mapper *restmapper.DeferredDiscoveryRESTMapper

	getterOnce sync.Once
	getter     *RESTClientGetter
}

// NewClient builds a client for a REST config.
func NewClient(name string, cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	cfg.UserAgent = "mclab"
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Name: name, Config: cfg, Kube: kc, Dynamic: dc, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}, nil
}

// Decode splits a multi-document YAML manifest into objects, skipping empty documents and Lists'
// wrappers.
func Decode(manifest string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &obj.Object); err != nil {
			return nil, fmt.Errorf("decoding manifest: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, err
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
			continue
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// ApplyManifest decodes and applies a manifest; namespaced objects without a namespace go into ns.
func (c *Client) ApplyManifest(ctx context.Context, manifest, ns string) error {
	objs, err := Decode(manifest)
	if err != nil {
		return err
	}
	return c.Apply(ctx, ns, objs...)
}

// Apply server-side-applies objects: CRDs first (then waits until they are established), then the rest
// in order.
func (c *Client) Apply(ctx context.Context, ns string, objs ...*unstructured.Unstructured) error {
	var crds, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, o := range crds {
		if err := c.applyOne(ctx, ns, o); err != nil {
			return err
		}
	}
	if len(crds) > 0 {
		if err := c.waitEstablished(ctx, crds); err != nil {
			return err
		}
		c.mapper.Reset()
	}
	for _, o := range rest {
		if err := c.applyOne(ctx, ns, o); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) resource(o *unstructured.Unstructured, ns string) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		c.mapper.Reset()
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s in %s: %w (is its CRD installed?)", gvk.Kind, o.GetName(), c.Name, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			o.SetNamespace(ns)
		}
		return c.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.Dynamic.Resource(m.Resource), nil
}

func (c *Client) applyOne(ctx context.Context, ns string, o *unstructured.Unstructured) error {
	ri, err := c.resource(o, ns)
	if err != nil {
		return err
	}
	data, err := o.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
	if c.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
	// An admission webhook that did not answer in time (one istiod injecting and validating for many
	// clusters at once) is a transient refusal: try again a few times before giving up.
	for wait := time.Second; err != nil && webhookTimeout(err) && wait <= 4*time.Second; wait *= 2 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("applying %s %s/%s to %s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), c.Name, err)
		case <-time.After(wait):
		}
		_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
	}
	if err != nil {
		return fmt.Errorf("applying %s %s/%s to %s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), c.Name, err)
	}
	return nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func (c *Client) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, crd := range crds {
		for {
			got, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err == nil && established(got) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established in %s: %w", crd.GetName(), c.Name, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// IgnoreNotFound returns nil for a NotFound error.
func IgnoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ApplyTyped applies a typed object (TypeMeta must be set).
func (c *Client) ApplyTyped(ctx context.Context, obj any) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return c.Apply(ctx, u.GetNamespace(), u)
}

// NewClientFromKubeconfig builds a client from a kubeconfig's current context.
func NewClientFromKubeconfig(name string, kc *clientcmdapi.Config) (*Client, error) {
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", name, err)
	}
	return NewClient(name, cfg)
}

// webhookTimeout reports whether err is the API server's "failed calling webhook" for a webhook that did
// not answer in time.
func webhookTimeout(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed calling webhook") && (strings.Contains(msg, "context deadline exceeded") || strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "i/o timeout"))
}
